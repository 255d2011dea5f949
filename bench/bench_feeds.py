"""Feeds benchmark: feed reads/s (200 and 304) with 100,000 subscriptions, and the time from a
`street-needs.v1` change to every affected subscriber's SSE stream and to the street's Atom feed.

The real feeds and prompter services run as subprocesses on a fresh database holding the Camden
gazetteer. Subscriptions are bulk-loaded with COPY into `feeds.subscriptions`, each row made the
way the service makes one (its `Areas` resolves the selection, its `tokens` makes the capability
and its hash); seed prompts are stored through the service's own `consume.apply_event`. Reads come
from an asyncio httpx client with bounded concurrency on the same machine. The latency run leaves
the aggregator out: a StreetNeedChanged goes to `street-needs.v1`, the real prompter turns it into
a prompt on `prompts.v1`, the feeds service consumes it; consumer groups are random and start at
the topics' current end. Every bench key is tombstoned afterwards.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import ipaddress
import json
import os
import random
import secrets
import statistics
import tempfile
import time
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

import services.feeds
from bench import wrk
from bench.aggregator_peer import db, load
from bench.aggregator_peer.procs import Proc, free_port, start
from services.feeds.consume import apply_event
from services.feeds.settings import FeedsSettings
from services.feeds.tokens import hash_token, new_token
from shared.contracts import (
    CATALOGUE,
    PROMPTS,
    RESIDENT_RESPONSES,
    STREET_NEEDS,
    OpportunityLink,
    PromptPublished,
    Sensitivity,
    StreetNeedChanged,
)
from shared.db import apply_migrations, create_pool, drop_database
from shared.gazetteer import repository as gazetteer_repository
from shared.gazetteer.selection import Areas, Selection, UnknownArea
from shared.privacy import MIN_UNIT_ADDRESSES as PERSON_UNIT_MIN_ADDRESSES

__all__ = ["run"]

SUBSCRIPTIONS = 100_000
MIX = (("street", 0.6), ("streets", 0.2), ("ward", 0.1), ("area", 0.1))  # share of each kind
PLACE_PROMPTS = 600  # seeded place prompts, each on its own street
PERSON_PROMPTS = 150  # seeded person prompts on fixed publication units
CONCURRENCY = 32
DURATION_S = 10.0
ETAG_SAMPLE = 1_000  # feeds whose ETag is fetched first for the 304 runs
API_SECONDS = 5.0  # subscriptions created over HTTP, for comparison with the bulk load
CHANGES = 50  # street-needs changes in the latency run, each on a distinct street
SSE_PER_STREET = 10  # subscribers listening live on each changed street
CHANGE_TIMEOUT_S = 10.0
LATENCY_BUDGET_S = 90.0  # no new change is published after this, so a congested stack cannot stall the run
WRK_WARD = "Kentish Town South"
POLL_S = 0.02  # how often the street's Atom feed is polled while a change is pending
CORES = os.cpu_count()
PLACE = sorted(c for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE)
PERSON = sorted(c for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PERSON)


def _row(benchmark: str, value: float, unit: str, notes: str = "") -> dict:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit, "notes": notes}


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# --- data -------------------------------------------------------------------------------------


@dataclass
class Subscriptions:
    tokens: list[str]
    by_street: dict[str, list[str]]  # street-kind subscriptions per street id
    kinds: Counter
    copy_s: float


def _selections(areas: Areas, rng: random.Random) -> dict[str, list[Selection]]:
    """A pool of realistic selections of each kind, made by the service's own resolver."""
    gaz = areas.gazetteer
    ids = sorted(gaz.streets)
    wards = sorted(areas.wards)
    pool: dict[str, list[Selection]] = {"street": [areas.for_streets([i]) for i in ids]}
    pool["ward"] = [areas.for_ward(w) for w in wards]
    by_ward = {w: [s.id for s in areas.ward_streets(w)] for w in wards}
    pool["streets"] = [
        areas.for_streets(rng.sample(by_ward[w], min(len(by_ward[w]), rng.randint(2, 8))))
        for w in (rng.choice(wards) for _ in range(400))
    ]
    pool["area"] = []
    while len(pool["area"]) < 300:
        point = gaz.streets[rng.choice(ids)].geometry.representative_point()
        try:
            pool["area"].append(areas.for_circle(point.y, point.x, rng.choice((200, 400, 800, 1000))))
        except UnknownArea:  # a point outside the boundary: draw again
            continue
    return pool


async def _subscribe_bulk(conn: asyncpg.Connection, areas: Areas, rng: random.Random) -> Subscriptions:
    pool = _selections(areas, rng)
    kinds, weights = zip(*MIX, strict=True)
    tokens: list[str] = []
    by_street: dict[str, list[str]] = {}
    records = []
    drawn: Counter = Counter()
    for kind in rng.choices(kinds, weights, k=SUBSCRIPTIONS):
        sel = rng.choice(pool[kind])
        token = new_token()
        tokens.append(token)
        drawn[kind] += 1
        if kind == "street":
            by_street.setdefault(sel.street_ids[0], []).append(token)
        records.append(
            (
                hash_token(token),
                sel.kind,
                sel.label,
                list(sel.street_ids),
                list(sel.unit_ids),
                list(sel.ward_codes),
            )
        )
    began = time.perf_counter()
    await conn.copy_records_to_table(
        "subscriptions",
        schema_name="feeds",
        columns=["token_sha256", "kind", "label", "street_ids", "unit_ids", "ward_codes"],
        records=records,
    )
    return Subscriptions(tokens, by_street, drawn, time.perf_counter() - began)


async def _seed_prompts(url: str, settings: FeedsSettings, areas: Areas, rng: random.Random) -> set[str]:
    """Place prompts on random streets and person prompts on publishable units, stored by the
    service's own consumer function; returns the streets that have a place prompt."""
    gaz = areas.gazetteer
    now = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
    link = OpportunityLink(
        opportunity_id="bench-1",
        title="Saturday clean-up",
        organisation="Bench Group",
        url="https://example.org/clean-up",
        when="Saturdays 10am-12pm",
    )
    events = []
    streets = rng.sample(sorted(gaz.streets), PLACE_PROMPTS)
    for sid in streets:
        s = gaz.streets[sid]
        category = rng.choice(PLACE)
        events.append(
            PromptPublished(
                prompt_id=f"{sid}:{category}",
                revision=1,
                area_id=sid,
                area_kind="street",
                area_name=s.name,
                ward_code=s.ward_code,
                street_ids=(sid,),
                category=category,
                sensitivity=Sensitivity.PLACE,
                title=f"{CATALOGUE[category].name} on {s.name}",
                body=f"Neighbours have reported {CATALOGUE[category].name.lower()} on {s.name}. "
                "Could you help "
                "tidy up, or join the group that does?",
                opportunities=(link,),
                published_at=now - dt.timedelta(minutes=rng.randint(0, 60 * 24 * 14)),
            )
        )
    units = [u for u in gaz.units_for(PERSON_UNIT_MIN_ADDRESSES) if u.publishable and not u.is_ward]
    first = now.date().replace(day=1)
    for u in rng.sample(units, min(PERSON_PROMPTS, len(units))):
        category = rng.choice(PERSON)
        events.append(
            PromptPublished(
                prompt_id=f"{u.id}:{category}",
                revision=1,
                area_id=u.id,
                area_kind="unit",
                area_name=u.name,
                ward_code=u.ward_code,
                street_ids=u.street_ids,
                category=category,
                sensitivity=Sensitivity.PERSON,
                title=f"Some neighbours around {u.name} may need company",
                body="A lunch club nearby needs hosts. Could you help?",
                opportunities=(link,),
                published_at=dt.datetime.combine(first, dt.time(), tzinfo=dt.UTC),
            )
        )
    pool = await create_pool(url, max_size=2)
    try:
        for event in events:
            await apply_event(pool, settings, event)
    finally:
        await pool.close()
    return set(streets)


# --- load ---------------------------------------------------------------------------------------


@dataclass
class Load:
    reads: int
    other: Counter
    elapsed_s: float
    latencies_ms: list[float]
    server_cpu_s: float
    client_cpu_s: float
    machine_busy: float  # share of all cores busy during the run, whoever used them

    @property
    def rate(self) -> float:
        return self.reads / self.elapsed_s


async def _hammer(
    client: httpx.AsyncClient,
    requests: list[tuple[str, dict]],
    expect: int,
    server_pid: int,
    rng: random.Random,
    duration_s: float = DURATION_S,
) -> Load:
    """CONCURRENCY workers each GET a random request of the list until the time is up."""
    latencies: list[float] = []
    other: Counter = Counter()
    cpu0, client0, machine0 = wrk.cpu_s(server_pid), time.process_time(), wrk.machine_busy_s()
    began = time.perf_counter()
    stop = began + duration_s

    async def worker() -> None:
        while time.perf_counter() < stop:
            target, headers = rng.choice(requests)
            t = time.perf_counter()
            try:
                response = await client.get(target, headers=headers)
            except httpx.HTTPError as exc:
                other[type(exc).__name__] += 1
                continue
            if response.status_code == expect:
                latencies.append((time.perf_counter() - t) * 1000)
            else:
                other[response.status_code] += 1

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    elapsed = time.perf_counter() - began
    machine1 = wrk.machine_busy_s()
    return Load(
        len(latencies),
        other,
        elapsed,
        latencies,
        wrk.cpu_s(server_pid) - cpu0,
        time.process_time() - client0,
        (machine1[0] - machine0[0]) / (machine1[1] - machine0[1]),
    )


async def _etags(client: httpx.AsyncClient, urls: list[str]) -> list[tuple[str, dict]]:
    """(url, If-None-Match) for each feed that answered, fetched with bounded concurrency."""
    gate = asyncio.Semaphore(CONCURRENCY)

    async def one(target: str) -> tuple[str, dict] | None:
        async with gate:
            try:
                response = await client.get(target)
            except httpx.HTTPError:  # an overloaded moment: that feed is left out of the sample
                return None
        return (target, {"If-None-Match": response.headers["etag"]}) if response.status_code == 200 else None

    return [r for r in await asyncio.gather(*(one(u) for u in urls)) if r is not None]


async def _api_subscribe(
    client: httpx.AsyncClient, base: str, street_ids: list[str], rng: random.Random
) -> tuple[int, float]:
    """Subscriptions created over the JSON API in API_SECONDS (created, elapsed)."""
    created = 0
    began = time.perf_counter()
    stop = began + API_SECONDS

    async def worker() -> None:
        nonlocal created
        while time.perf_counter() < stop:
            # Each sign-up from its own resident (a distinct address forwarded by a trusted proxy):
            # one client address is held to a few sign-ups a minute, which would measure the limit.
            resident = ipaddress.IPv4Address(0x0A000000 + created + rng.randrange(1 << 20))
            response = await client.post(
                f"{base}/v1/subscriptions",
                json={"kind": "street", "street_id": rng.choice(street_ids)},
                headers={"X-Forwarded-For": str(resident)},
            )
            created += response.status_code == 201

    await asyncio.gather(*(worker() for _ in range(CONCURRENCY)))
    return created, time.perf_counter() - began


def _load_rows(name: str, what: str, result: Load, notes: str) -> list[dict]:
    errors = f"; other answers {dict(result.other)}" if result.other else ""
    server, client = result.server_cpu_s / result.elapsed_s, result.client_cpu_s / result.elapsed_s
    return [
        _row(
            f"feeds.read.{name}.rate",
            result.rate,
            "reads/s",
            f"{what}; {CONCURRENCY} concurrent clients for {result.elapsed_s:.0f} s; CPU: server "
            f"{server:.2f} cores ({result.server_cpu_s / max(result.reads, 1) * 1000:.1f} ms per read), "
            f"client {client:.2f} cores, machine {result.machine_busy:.0%} busy of {CORES} cores{errors}; "
            f"{notes}",
        ),
        _row(f"feeds.read.{name}.p50", _pct(result.latencies_ms, 50), "ms"),
        _row(f"feeds.read.{name}.p99", _pct(result.latencies_ms, 99), "ms"),
    ]


# --- change -> SSE and Atom -------------------------------------------------------------------------


class Listeners:
    """SSE clients on subscription streams; notes when each receives each prompt id."""

    def __init__(self) -> None:
        self.arrivals: dict[str, list[float]] = {}
        self.wanted: dict[str, tuple[int, asyncio.Event]] = {}
        self.connected = 0
        self.foreign = 0  # events for a street the subscription does not cover (must stay 0)
        self.tasks: list[asyncio.Task] = []

    def expect(self, prompt_id: str, clients: int) -> asyncio.Event:
        event = asyncio.Event()
        self.wanted[prompt_id] = (clients, event)
        return event

    async def listen(self, client: httpx.AsyncClient, target: str, street_id: str, resident: str) -> None:
        # Each stream from its own resident address (forwarded by a trusted proxy): the feeds cap
        # live connections per client, so one address would measure the cap, not the path.
        headers = {"accept": "text/event-stream", "x-forwarded-for": resident}
        async with client.stream("GET", target, headers=headers) as response:
            response.raise_for_status()
            self.connected += 1
            async for line in response.aiter_lines():
                if not line.startswith("data:"):
                    continue
                now = time.perf_counter()
                data = json.loads(line[5:])
                # Ward-level prompts rightly reach every street subscription in the ward; a
                # retirement names only the prompt.
                if data.get("area_kind", "ward") != "ward" and street_id not in data.get("street_ids", ()):
                    self.foreign += 1
                times = self.arrivals.setdefault(data.get("prompt_id", ""), [])
                times.append(now)
                want = self.wanted.get(data.get("prompt_id", ""))
                if want and len(times) >= want[0]:
                    want[1].set()


async def _poll_until(client: httpx.AsyncClient, target: str, needle: str, deadline: float) -> float | None:
    while time.perf_counter() < deadline:
        try:
            if needle in (await client.get(target)).text:
                return time.perf_counter()
        except httpx.HTTPError:  # try again on the next poll
            pass
        await asyncio.sleep(POLL_S)
    return None


async def _changes(
    kafka: str, base: str, gaz, subs: Subscriptions, rng: random.Random, keys: list[tuple[str, str]]
) -> dict:
    """Publish CHANGES street needs one after another; time each to all its SSE clients and to
    the street's Atom feed. `keys` collects (topic, key) pairs to tombstone afterwards."""
    streets = rng.sample(sorted(s for s, t in subs.by_street.items() if len(t) >= SSE_PER_STREET), CHANGES)
    listeners = Listeners()
    tag = secrets.token_hex(4)
    sse = httpx.AsyncClient(timeout=httpx.Timeout(10, read=None), limits=httpx.Limits(max_connections=None))
    poll = httpx.AsyncClient(timeout=10)
    producer = AIOKafkaProducer(bootstrap_servers=kafka.split(","), acks="all", enable_idempotence=True)
    await producer.start()
    out = {"all": [], "each": [], "atom": [], "missed": 0, "clients": 0, "published": 0}
    before, began = sum((await load.end_offsets(kafka, STREET_NEEDS.name)).values()), time.perf_counter()
    try:
        for sid in streets:
            for token in subs.by_street[sid][:SSE_PER_STREET]:
                resident = str(ipaddress.IPv4Address(0x0B000000 + len(listeners.tasks)))
                listeners.tasks.append(
                    asyncio.create_task(listeners.listen(sse, f"{base}/s/{token}/events", sid, resident))
                )
        out["clients"] = len(listeners.tasks)
        for _ in range(300):  # up to 30 s for every stream to answer
            if listeners.connected >= len(listeners.tasks):
                break
            await asyncio.sleep(0.1)
        await asyncio.sleep(1.0)  # every stream has subscribed to the hub after its headers
        today = dt.datetime.now(dt.UTC)
        stop = time.perf_counter() + LATENCY_BUDGET_S
        for i, sid in enumerate(streets):
            if time.perf_counter() > stop:
                break
            out["published"] = i + 1
            s = gaz.streets[sid]
            category = PLACE[i % len(PLACE)]
            need = StreetNeedChanged(
                area_id=f"bench-{tag}-{i:03d}",
                area_kind="street",
                area_name=s.name,
                ward_code=s.ward_code,
                street_ids=(sid,),
                category=category,
                sensitivity=Sensitivity.PLACE,
                count=3,
                since=today.date(),
                period="live",
                published_at=today.replace(second=0, microsecond=0),
                version=1,
            )
            keys += [(STREET_NEEDS.name, need.key), (PROMPTS.name, need.key)]
            done = listeners.expect(need.key, SSE_PER_STREET)
            t0 = time.perf_counter()
            await producer.send_and_wait(
                STREET_NEEDS.name, need.model_dump_json().encode(), key=need.key.encode()
            )
            atom_at = await _poll_until(
                poll, f"{base}/streets/{sid}.atom", need.area_id, t0 + CHANGE_TIMEOUT_S
            )
            try:
                await asyncio.wait_for(done.wait(), max(0.01, t0 + CHANGE_TIMEOUT_S - time.perf_counter()))
            except TimeoutError:
                out["missed"] += 1
            times = listeners.arrivals.get(need.key, [])
            if len(times) >= SSE_PER_STREET:
                out["all"].append((max(times) - t0) * 1000)
            out["each"] += [(t - t0) * 1000 for t in times]
            if atom_at is not None:
                out["atom"].append((atom_at - t0) * 1000)
            await asyncio.sleep(0.2)
    finally:
        for task in listeners.tasks:
            task.cancel()
        await asyncio.gather(*listeners.tasks, return_exceptions=True)
        await producer.stop()
        await sse.aclose()
        await poll.aclose()
    out["foreign"] = listeners.foreign
    after = sum((await load.end_offsets(kafka, STREET_NEEDS.name)).values())
    out["others_per_s"] = (after - before - CHANGES) / (time.perf_counter() - began)
    return out


async def _tombstone(kafka: str, keys: list[tuple[str, str]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=kafka.split(","), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(topic, None, key=key.encode()) for topic, key in keys])
    finally:
        await producer.stop()


# --- the run ------------------------------------------------------------------------------------

MIGRATIONS = Path(services.feeds.__file__).parent / "migrations"  # applied by the service at start too


async def _services(kafka: str, url: str, base: str, port: int, logs: Path) -> list[Proc]:
    """Feeds and prompter, their groups positioned at the end of what they consume."""
    feeds_group, prompter_group = (f"bench-{n}-{secrets.token_hex(6)}" for n in ("feeds", "prompter"))
    await load.commit_group(kafka, feeds_group, PROMPTS.name, await load.end_offsets(kafka, PROMPTS.name))
    for topic in (STREET_NEEDS.name, RESIDENT_RESPONSES.name):
        await load.commit_group(kafka, prompter_group, topic, await load.end_offsets(kafka, topic))
    common = {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": kafka, "LOG_LEVEL": "WARNING"}
    feeds = start(
        "feeds",
        ["-m", "services.feeds"],
        {
            **common,
            "FEEDS_PORT": str(port),
            "FEEDS_GROUP_ID": feeds_group,
            "FEEDS_BASE_URL": base,
            # The sign-up clients stand for many residents behind a proxy (each is rate-limited).
            "TRUSTED_PROXIES": "127.0.0.1/32",
        },
        logs,
        port,
    )
    prompter_port = free_port()
    prompter = start(
        "prompter",
        ["-m", "services.prompter"],
        {
            **common,
            "PROMPTER_PORT": str(prompter_port),
            "PROMPTER_GROUP_ID": prompter_group,
            "PROMPTER_ADMIN_TOKEN": secrets.token_urlsafe(24),
        },
        logs,
        prompter_port,
    )
    return [feeds, prompter]


async def _reads(
    base: str, feeds: Proc, gaz, subs: Subscriptions, place_streets: set[str], rng: random.Random
) -> list[dict]:
    setup = (
        f"feeds: 1 uvicorn process (python -m services.feeds, LOG_LEVEL=WARNING); the client, "
        f"server, Kafka and PostgreSQL share {CORES} cores"
    )
    seeded = (
        f"{SUBSCRIPTIONS:,} subscriptions; {PLACE_PROMPTS} place prompts on distinct streets and "
        f"{PERSON_PROMPTS} person prompts on publishable units; {setup}"
    )
    rows = []
    limits = httpx.Limits(max_connections=CONCURRENCY, max_keepalive_connections=CONCURRENCY)
    async with httpx.AsyncClient(timeout=30, limits=limits) as client:
        created, took = await _api_subscribe(client, base, sorted(gaz.streets), rng)
        rows.append(
            _row(
                "feeds.subscriptions.api_rate",
                created / took,
                "subscriptions/s",
                f"POST /v1/subscriptions (kind street) from {CONCURRENCY} concurrent clients, each request "
                f"from a distinct resident address through a trusted proxy, for "
                f"{took:.0f} s, on top of {SUBSCRIPTIONS:,}; {setup}",
            )
        )
        sub_urls = [f"{base}/s/{t}.atom" for t in subs.tokens]
        result = await _hammer(client, [(u, {}) for u in sub_urls], 200, feeds.pid, rng)
        rows += _load_rows(
            "subscription_atom_200",
            f"GET /s/{{token}}.atom, a random one of the {SUBSCRIPTIONS:,} tokens each time",
            result,
            seeded,
        )
        conditional = await _etags(client, rng.sample(sub_urls, ETAG_SAMPLE))
        result = await _hammer(client, conditional, 304, feeds.pid, rng)
        rows += _load_rows(
            "subscription_atom_304",
            "GET /s/{token}.atom with If-None-Match (the ETag of "
            f"the current document), a random one of {ETAG_SAMPLE:,} tokens",
            result,
            "the service validates from memory (or, after a change, with one small query) and answers 304 "
            "without rendering",
        )
        street_urls = [f"{base}/streets/{s}.atom" for s in sorted(gaz.streets)]
        result = await _hammer(client, [(u, {}) for u in street_urls], 200, feeds.pid, rng)
        rows += _load_rows(
            "street_atom_200",
            "GET /streets/{id}.atom, a random one of "
            f"{len(street_urls):,} streets ({len(place_streets)} with a place prompt)",
            result,
            seeded,
        )
        conditional = await _etags(client, street_urls)
        result = await _hammer(client, conditional, 304, feeds.pid, rng)
        rows += _load_rows(
            "street_atom_304", "GET /streets/{id}.atom with If-None-Match, a random street", result, ""
        )
    return rows


async def _wrk_rows(base: str, feeds: Proc, gaz, place_streets: set[str], token: str) -> list[dict]:
    """The issue's table, measured with wrk: a street's Atom (200 and 304), its HTML page, a ward's Atom,
    and one subscription's private Atom among the 100,000."""
    street = sorted(place_streets)[0]
    ward = next((w for w in gaz.wards if w.name == WRK_WARD), gaz.wards[0])
    async with httpx.AsyncClient(timeout=30) as client:
        etag = (await client.get(f"{base}/streets/{street}.atom")).headers["etag"]
        entries = (await client.get(f"{base}/wards/{ward.code}.atom")).text.count("<entry")
    runs = [
        ("street_atom_304", f"{base}/streets/{street}.atom", {"If-None-Match": etag}, "304 (If-None-Match)"),
        ("street_atom_200", f"{base}/streets/{street}.atom", {}, "200"),
        ("street_html_200", f"{base}/streets/{street}", {}, "200, the HTML page"),
        ("ward_atom_200", f"{base}/wards/{ward.code}.atom", {}, f"200, {ward.name} ({entries} entries)"),
        (
            "street_atom_200_gzip",
            f"{base}/streets/{street}.atom",
            {"Accept-Encoding": "gzip"},
            "200 asking for gzip",
        ),
        (
            "subscription_atom_200",
            f"{base}/s/{token}.atom",
            {},
            f"200, one subscription's Atom (a street subscription) among {SUBSCRIPTIONS:,}",
        ),
    ]
    rows = []
    for name, url, headers, what in runs:
        r = await asyncio.to_thread(wrk.run, url, feeds.pid, headers)
        rows += [
            _row(
                f"feeds.wrk.{name}.rate",
                r["rate"],
                "requests/s",
                f"wrk {' '.join(wrk.SETTINGS)} on one URL, {what}; non-2xx/3xx {r['bad']}; server CPU "
                f"{r['cpu_ms_per_request']:.2f} ms per request ({r['server_cores']:.2f} cores); machine "
                f"{r['machine_busy']:.0%} busy of {CORES} cores (wrk, server, Kafka, PostgreSQL share them: "
                f"{'the server' if r['server_cores'] > 0.85 else 'the machine, not the server alone,'} is "
                "the bottleneck); feeds: 1 uvicorn process",
            ),
            _row(f"feeds.wrk.{name}.p50", r["p50"], "ms"),
            _row(f"feeds.wrk.{name}.p99", r["p99"], "ms"),
            _row(f"feeds.wrk.{name}.max", r["max"], "ms"),
        ]
    return rows


def _latency_rows(changes: dict) -> list[dict]:
    how = (
        f"{changes['published']} StreetNeedChanged (place; {CHANGES} planned, "
        f"{LATENCY_BUDGET_S:.0f} s budget) on distinct Camden streets, one at a time -> the real "
        f"prompter -> prompts.v1 -> feeds; {changes['clients']} SSE clients on /s/{{token}}/events "
        f"({SSE_PER_STREET} street subscriptions per changed street, among {SUBSCRIPTIONS:,}); "
        f"{changes['missed']} changes not seen by all within {CHANGE_TIMEOUT_S:.0f} s; "
        f"{changes['foreign']} events reached a subscription not covering the street; other producers "
        f"wrote {changes['others_per_s']:.0f} records/s to street-needs.v1 meanwhile, which the "
        f"prompter consumed too"
    )
    rows = []
    if changes["all"]:
        rows += [
            _row(
                "feeds.latency.change_to_all_sse.p50",
                _pct(changes["all"], 50),
                "ms",
                f"publish to street-needs.v1 -> the last of the street's {SSE_PER_STREET} SSE clients "
                f"has the event; {how}",
            ),
            _row("feeds.latency.change_to_all_sse.p99", _pct(changes["all"], 99), "ms"),
            _row(
                "feeds.latency.change_to_each_sse.p50",
                _pct(changes["each"], 50),
                "ms",
                f"per client ({len(changes['each'])} receipts)",
            ),
            _row("feeds.latency.change_to_each_sse.p99", _pct(changes["each"], 99), "ms"),
        ]
    if changes["atom"]:
        rows += [
            _row(
                "feeds.latency.change_to_atom.p50",
                _pct(changes["atom"], 50),
                "ms",
                f"publish -> GET /streets/{{id}}.atom (polled every {POLL_S * 1000:.0f} ms) shows the "
                f"entry; {len(changes['atom'])}/{changes['published']} seen",
            ),
            _row("feeds.latency.change_to_atom.p99", _pct(changes["atom"], 99), "ms"),
        ]
    return rows


async def _run(env: dict[str, str]) -> list[dict]:
    kafka, admin_url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    rng = random.Random(7)
    conn = await asyncpg.connect(admin_url)
    try:
        gaz = await gazetteer_repository.load(conn)
    finally:
        await conn.close()
    if not gaz.streets:
        gaz = await asyncio.to_thread(db.camden_gazetteer)
    areas = Areas(gaz)
    rows: list[dict] = []
    keys: list[tuple[str, str]] = []
    procs: list[Proc] = []
    url = await db.database_with(admin_url, gaz)
    port = free_port()
    base = f"http://127.0.0.1:{port}"
    settings = FeedsSettings(database_url=url, kafka_bootstrap_servers=kafka, base_url=base)
    try:
        with tempfile.TemporaryDirectory(prefix="bench-feeds-") as tmp:
            conn = await asyncpg.connect(url)
            try:
                await apply_migrations(conn, "feeds", MIGRATIONS)
                subs = await _subscribe_bulk(conn, areas, rng)
            finally:
                await conn.close()
            rows.append(
                _row(
                    "feeds.subscriptions.bulk_load",
                    SUBSCRIPTIONS / subs.copy_s,
                    "rows/s",
                    f"{SUBSCRIPTIONS:,} subscriptions COPYed into feeds.subscriptions in "
                    f"{subs.copy_s:.1f} s ("
                    + ", ".join(f"{k} {v:,}" for k, v in subs.kinds.items())
                    + "); selections resolved by shared.gazetteer.selection.Areas, "
                    "tokens and hashes by services.feeds.tokens",
                )
            )
            place_streets = await _seed_prompts(url, settings, areas, rng)
            procs = await _services(kafka, url, base, port, Path(tmp))
            for proc in procs:
                await proc.ready(120)
            # A subscription to a street with prompts, so its Atom has entries to render.
            with_prompts = [tokens for street, tokens in subs.by_street.items() if street in place_streets]
            street_token = (with_prompts or list(subs.by_street.values()))[0][0]
            rows += await _wrk_rows(base, procs[0], gaz, place_streets, street_token)
            rows += await _reads(base, procs[0], gaz, subs, place_streets, rng)
            try:
                rows += _latency_rows(await _changes(kafka, base, gaz, subs, rng, keys))
            except Exception as exc:  # keep the read figures when the latency run breaks
                alive = ", ".join(f"{p.name} {'up' if p.popen.poll() is None else 'exited'}" for p in procs)
                rows.append(
                    _row(
                        "feeds.latency: FAILED",
                        float("nan"),
                        "",
                        f"{type(exc).__name__}: {exc} ({alive})"[:300],
                    )
                )
    finally:
        for proc in reversed(procs):
            proc.stop()
        await drop_database(admin_url, url)
        if keys:
            await _tombstone(kafka, keys)
    return rows


def run(env: dict[str, str]) -> list[dict]:
    return asyncio.run(_run(env))


if __name__ == "__main__":
    from bench.__main__ import bench_env

    for row in run(bench_env()):
        print(json.dumps(row))
