"""The live path from outside: council `POST /v1/signals` -> the street's SSE `prompt` event.

Every service runs as in production (ingest, aggregator, prompter, feeds: one process each) on a
fresh database; a probe opens `GET /streets/{id}/events`, posts one place signal for that street
and times the `prompt` event, one sample at a time, at a random moment. Measured idle and while
another client posts ~1,000 signals/s in batches to the same ingest (the background load).
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
import statistics
import tempfile
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

import httpx
from aiokafka.admin import AIOKafkaAdminClient

from bench.aggregator_peer import db, load
from bench.aggregator_peer.procs import Proc, free_port, start
from shared.contracts import (
    CATALOGUE,
    COUNCIL_SIGNALS,
    PROMPTS,
    RESIDENT_RESPONSES,
    STREET_NEEDS,
    Sensitivity,
)
from shared.db import drop_database
from shared.privacy import MIN_STREET_ADDRESSES

__all__ = ["run"]

SAMPLES = int(os.environ.get("BENCH_LIVE_SAMPLES", "100"))  # per condition
BACKGROUND_RATE = 1_000  # signals/s
BACKGROUND_BATCH = 100
IN_FLIGHT = 4
SAMPLE_TIMEOUT_S = 10.0
CORES = os.cpu_count()
PLACE = sorted(str(c) for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE)


def _row(benchmark: str, value: float, unit: str, notes: str = "") -> dict:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit, "notes": notes}


def _signal(street: str, category: str, subject: str) -> dict:
    return {
        "event_id": f"bench-live-{uuid.uuid4()}",
        "category": category,
        "action": "raised",
        "subject_ref": subject,
        "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
        "location": {"street_id": street},
    }


async def _system_key(url: str, logs: Path) -> str:
    """A council system without a rate limit to speak of, made with the ingest CLI."""
    key_file = logs / "keys.env"
    proc = start(
        "create-system",
        [
            *("-m", "services.cli", "ingest", "create-system", "bench live", "--council", "camden"),
            *("--rate-per-minute", "1000000", "--key-file", str(key_file)),
        ],
        {"DATABASE_URL": url},
        logs,
    )
    if await asyncio.to_thread(proc.popen.wait, 60) != 0:
        raise RuntimeError(f"create-system failed:\n{proc.tail()}")
    return key_file.read_text().strip().partition("=")[2]


async def _services(url: str, kafka: str, logs: Path) -> tuple[list[Proc], str, str, str, str]:
    """Ingest, aggregator, prompter, feeds; each group starts at the end of what it consumes."""
    api_key = await _system_key(url, logs)
    tag = secrets.token_hex(5)
    groups = {n: f"bench-live-{n}-{tag}" for n in ("ingest", "aggregator", "prompter", "feeds")}
    await load.commit_group(
        kafka, groups["ingest"], COUNCIL_SIGNALS.name, await load.end_offsets(kafka, COUNCIL_SIGNALS.name)
    )
    for topic in (STREET_NEEDS.name, RESIDENT_RESPONSES.name):
        await load.commit_group(kafka, groups["prompter"], topic, await load.end_offsets(kafka, topic))
    await load.commit_group(kafka, groups["feeds"], PROMPTS.name, await load.end_offsets(kafka, PROMPTS.name))
    common = {"DATABASE_URL": url, "KAFKA_BOOTSTRAP_SERVERS": kafka, "LOG_LEVEL": "WARNING"}
    ports = {n: free_port() for n in groups}
    feeds_base = f"http://127.0.0.1:{ports['feeds']}"
    procs = [
        start(
            "ingest",
            ["-m", "services.ingest"],
            {
                **common,
                "INGEST_PORT": str(ports["ingest"]),
                "INGEST_PSEUDONYM_KEYS": f"1:{secrets.token_hex(24)}",
                "INGEST_PSEUDONYM_KEY_VERSION": "1",
                "INGEST_CONSUMER_GROUP": groups["ingest"],
            },
            logs,
            ports["ingest"],
        ),
        start(
            "aggregator",
            ["-m", "services.aggregator"],
            {
                **common,
                "DATABASE_URL": f"{url}?search_path=aggregator,public",
                "AGGREGATOR_GROUP_ID": groups["aggregator"],
                "AGGREGATOR_PORT": str(ports["aggregator"]),
                "AGGREGATOR_REPLAY_FROM": dt.datetime.now(dt.UTC).isoformat(),
            },
            logs,
            ports["aggregator"],
        ),
        start(
            "prompter",
            ["-m", "services.prompter"],
            {
                **common,
                "PROMPTER_PORT": str(ports["prompter"]),
                "PROMPTER_GROUP_ID": groups["prompter"],
                "PROMPTER_ADMIN_TOKEN": secrets.token_urlsafe(24),
            },
            logs,
            ports["prompter"],
        ),
        start(
            "feeds",
            ["-m", "services.feeds"],
            {
                **common,
                "FEEDS_PORT": str(ports["feeds"]),
                "FEEDS_GROUP_ID": groups["feeds"],
                "FEEDS_BASE_URL": feeds_base,
            },
            logs,
            ports["feeds"],
        ),
    ]
    return procs, f"http://127.0.0.1:{ports['ingest']}", feeds_base, api_key, groups["prompter"]


async def _needs_backlog(kafka: str, group: str) -> tuple[int, int]:
    """(street-needs records written so far, how many of them the prompter has not yet committed):
    where the loaded probe's time goes when the prompter applies fewer needs than arrive."""
    ends = await load.end_offsets(kafka, STREET_NEEDS.name)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.split(","))
    await admin.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
    finally:
        await admin.close()
    done = {tp.partition: m.offset for tp, m in committed.items() if tp.topic == STREET_NEEDS.name}
    return sum(ends.values()), sum(max(0, end - done.get(p, 0)) for p, end in ends.items())


async def _first_prompt(response: httpx.Response, category: str) -> float:
    """perf_counter() when the stream's first `prompt` event of `category` has fully arrived.

    Another category's prompt on the street is the background load's (a signal on a street that
    shares the probe street's place area), not the probe's.
    """
    event, data = None, ""
    async for line in response.aiter_lines():
        if line.startswith("event:"):
            event = line.partition(":")[2].strip()
        elif line.startswith("data:"):
            data += line.partition(":")[2]
        elif line == "":
            if event == "prompt" and json.loads(data).get("category") == category:
                return time.perf_counter()
            event, data = None, ""
    raise RuntimeError("the event stream ended")


async def _probe(
    client: httpx.AsyncClient,
    ingest: str,
    feeds: str,
    key: str,
    samples: list[tuple[str, str]],
    timeline: list[Timed] | None = None,
) -> tuple[list[float], int, list[float]]:
    """Latencies (ms) of the samples, one at a time; how many never arrived; and how long ingest took
    to answer each POST (ms: the first stage, to tell where the time goes). `timeline` receives each
    sample that arrived, with its wall-clock times (for `_stages`)."""
    got, missed, answered = [], 0, []
    for street, category in samples:
        await asyncio.sleep(random.uniform(0.05, 0.3))  # a random phase against any batching
        async with client.stream("GET", f"{feeds}/streets/{street}/events") as stream:
            if stream.status_code != 200:
                raise RuntimeError(f"feeds answered {stream.status_code} for {street}'s events")
            waiter = asyncio.ensure_future(_first_prompt(stream, category))
            await asyncio.sleep(0.05)  # the stream subscribes to the hub once it starts
            sent, sent_at = time.perf_counter(), time.time()
            r = await client.post(
                f"{ingest}/v1/signals",
                json=_signal(street, category, f"bench-live-{uuid.uuid4()}"),
                headers={"Authorization": f"Bearer {key}"},
            )
            answered.append((time.perf_counter() - sent) * 1000)
            if r.status_code != 202:
                waiter.cancel()
                raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:300]}")
            try:
                arrived = await asyncio.wait_for(waiter, SAMPLE_TIMEOUT_S)
            except TimeoutError:
                missed += 1
                continue
            got.append((arrived - sent) * 1000)
            if timeline is not None:
                timeline.append(Timed(street, category, sent_at, sent_at + arrived - sent))
    return got, missed, answered


@dataclass(frozen=True, slots=True)
class Timed:
    """A sample that arrived: its street and category, when it was posted and when its SSE event
    arrived (seconds since the epoch)."""

    street: str
    category: str
    sent: float
    arrived: float


STAGES = ("ingest + aggregator", "prompter", "feeds")


async def _stages(kafka: str, timeline: list[Timed]) -> dict[str, list[float]]:
    """Where each sample's time went (ms per stage of `STAGES`), from the record times Kafka keeps:
    POST -> the area's change on street-needs (ingest, then the aggregator and its outbox relay) ->
    the prompt on prompts (the prompter) -> the SSE event (feeds). Each record's time is its
    producer's clock when it was sent, on this machine as the probe's.

    A sample is matched to the first change and then the first prompt of its street and category
    written after it was posted. A background signal on another street of the same publication area
    can come first: that sample's later stages then read longer and its first shorter (the end to end
    figure, measured directly, is unaffected). Samples with no match are left out."""
    if not timeline:
        return {stage: [] for stage in STAGES}
    since = dt.datetime.fromtimestamp(min(t.sent for t in timeline) - 1, dt.UTC)
    written: dict[str, dict[tuple[str, str], list[int]]] = {}
    for topic in (STREET_NEEDS.name, PROMPTS.name):
        times: dict[tuple[str, str], list[int]] = {}
        for at, value in await load.records_since(kafka, since, topic):
            if value:  # tombstones name no street
                doc = json.loads(value)
                for street in doc.get("street_ids", ()):
                    times.setdefault((street, doc.get("category")), []).append(at)
        written[topic] = {k: sorted(v) for k, v in times.items()}

    def first(topic: str, key: tuple[str, str], after_ms: float) -> int | None:
        return next((at for at in written[topic].get(key, ()) if at >= after_ms), None)

    out: dict[str, list[float]] = {stage: [] for stage in STAGES}
    for t in timeline:
        key, sent_ms = (t.street, t.category), t.sent * 1000
        needs = first(STREET_NEEDS.name, key, int(sent_ms))
        prompt = first(PROMPTS.name, key, needs) if needs is not None else None
        if needs is None or prompt is None:
            continue
        spans = (needs - sent_ms, prompt - needs, t.arrived * 1000 - prompt)
        for stage, ms in zip(STAGES, spans, strict=True):
            out[stage].append(max(0.0, ms))  # record times are whole milliseconds
    return out


def stage_summary(stages: dict[str, list[float]]) -> str:
    """p50 / p99 / max per stage, in one line."""
    parts = []
    for stage, ms in stages.items():
        if len(ms) > 1:
            q = statistics.quantiles(ms, n=100, method="inclusive")
            parts.append(f"{stage} p50 {q[49]:.0f} / p99 {q[98]:.0f} / max {max(ms):.0f} ms")
    if not parts:
        return "no sample matched on the topics"
    n = min(len(ms) for ms in stages.values())
    return f"per stage ({n} samples matched on the topics): " + "; ".join(parts)


async def _background(
    ingest: str, key: str, streets: list[str], stop: asyncio.Event, seed: int = 5
) -> tuple[int, int, float]:
    """POST batches of signals aiming at BACKGROUND_RATE until `stop`, at most IN_FLIGHT requests at
    once (an overloaded ingest slows the load down instead of piling up requests);
    (signals accepted, requests failed, seconds).

    `seed` draws the streets and names the subjects: the same seed sends the same raises again, which
    change nothing on a state that already holds them (a subject counts once per street and
    category). The bench's fresh database takes the default; a probe of a running stack passes a
    seed of its own per run, or its second run would load the pipeline with no work at all."""
    rng = random.Random(seed)
    subjects = [f"bench-live-bg-{seed}-{i}" for i in range(5_000)]
    accepted = failed = 0
    started = time.perf_counter()
    interval = BACKGROUND_BATCH / BACKGROUND_RATE
    slots = asyncio.Semaphore(IN_FLIGHT)
    async with httpx.AsyncClient(timeout=30, headers={"Authorization": f"Bearer {key}"}) as client:
        pending: set[asyncio.Task] = set()

        async def post(batch: list[dict]) -> None:
            nonlocal accepted, failed
            try:
                r = await client.post(f"{ingest}/v1/signals", json=batch)
                if r.status_code in (200, 202, 207):
                    accepted += len(batch)
                else:
                    failed += 1
            except httpx.HTTPError:
                failed += 1
            finally:
                slots.release()

        tick = started
        while not stop.is_set():
            batch = [
                _signal(rng.choice(streets), rng.choice(PLACE), rng.choice(subjects))
                for _ in range(BACKGROUND_BATCH)
            ]
            await slots.acquire()
            task = asyncio.create_task(post(batch))
            pending.add(task)
            task.add_done_callback(pending.discard)
            tick = max(tick + interval, time.perf_counter() - 1.0)  # no catch-up bursts after a stall
            await asyncio.sleep(max(0.0, tick - time.perf_counter()))
        await asyncio.gather(*pending, return_exceptions=True)
    return accepted, failed, time.perf_counter() - started


def _rows(name: str, latencies: list[float], missed: int, answered: list[float], notes: str) -> list[dict]:
    if not latencies:
        return [_row(f"{name}: FAILED", float("nan"), "", f"no sample arrived ({missed} missed)")]
    q = (
        statistics.quantiles(latencies, n=100, method="inclusive")
        if len(latencies) > 1
        else [latencies[0]] * 99
    )
    return [
        _row(
            f"{name}.p50",
            q[49],
            "ms",
            f"{len(latencies)}/{len(latencies) + missed} arrived within {SAMPLE_TIMEOUT_S:.0f} s; ingest "
            f"answered the POST in p50 {statistics.median(answered):.0f} ms, max {max(answered):.0f} ms; "
            f"{notes}",
        ),
        _row(f"{name}.p99", q[98], "ms"),
        _row(f"{name}.max", max(latencies), "ms"),
    ]


async def _run(env: dict[str, str]) -> list[dict]:
    kafka, admin_url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    gazetteer = await asyncio.to_thread(db.camden_gazetteer)
    publishable = sorted(s.id for s in gazetteer.streets.values() if s.address_count >= MIN_STREET_ADDRESSES)
    rng = random.Random(11)
    chosen = rng.sample(publishable, 2 * SAMPLES)
    samples = [(s, rng.choice(PLACE)) for s in chosen]
    background_streets = sorted(set(gazetteer.streets) - set(chosen))
    url = await db.database_with(admin_url, gazetteer)
    procs: list[Proc] = []
    rows: list[dict] = []
    setup = (
        "council POST /v1/signals (one place signal on a street of its own) -> ingest -> "
        "signals-anonymised -> aggregator -> street-needs -> prompter -> prompts -> feeds -> "
        "GET /streets/{id}/events receives the `prompt` event; one process per service, default "
        f"settings; probe one sample at a time at a random moment; {CORES} cores shared by Kafka, "
        "PostgreSQL, the four services and the clients"
    )
    try:
        with tempfile.TemporaryDirectory(prefix="bench-live-") as tmp:
            procs, ingest, feeds, key, prompter_group = await _services(url, kafka, Path(tmp))
            try:
                for proc in procs:
                    await proc.ready(120)
                await asyncio.sleep(3)  # consumers join their groups
                async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
                    idle, missed, answered = await _probe(client, ingest, feeds, key, samples[:SAMPLES])
                    rows += _rows("live.council_post_to_sse.idle", idle, missed, answered, setup)
                    stop = asyncio.Event()
                    needs_before, _ = await _needs_backlog(kafka, prompter_group)
                    load_started = time.perf_counter()
                    background = asyncio.create_task(_background(ingest, key, background_streets, stop))
                    await asyncio.sleep(5)  # let the load settle
                    try:
                        timeline: list[Timed] = []
                        loaded, missed, answered = await _probe(
                            client, ingest, feeds, key, samples[SAMPLES:], timeline
                        )
                        needs_after, backlog = await _needs_backlog(kafka, prompter_group)
                        needs_rate = (needs_after - needs_before) / (time.perf_counter() - load_started)
                    finally:
                        stop.set()
                        accepted, failed, took = await background
                    rows += _rows(
                        "live.council_post_to_sse.loaded",
                        loaded,
                        missed,
                        answered,
                        f"meanwhile another client POSTed batches of {BACKGROUND_BATCH} place signals "
                        f"aiming at {BACKGROUND_RATE:,}/s (at most {IN_FLIGHT} requests in flight): "
                        f"{accepted / took:,.0f} signals/s accepted, {failed} requests failed; "
                        f"street-needs changes written {needs_rate:,.0f}/s, {backlog:,} not yet applied "
                        "by the prompter when the last probe ended; "
                        f"{stage_summary(await _stages(kafka, timeline))}",
                    )
            except Exception as exc:
                alive = ", ".join(f"{p.name} {'up' if p.popen.poll() is None else 'exited'}" for p in procs)
                tails = "; ".join(f"{p.name}: {p.tail(3)}" for p in procs if p.popen.poll() is not None)
                rows.append(
                    _row(
                        "live: FAILED",
                        float("nan"),
                        "",
                        f"{type(exc).__name__}: {exc} ({alive}) {tails}"[:400],
                    )
                )
            finally:
                for proc in reversed(procs):
                    proc.stop()
    finally:
        await drop_database(admin_url, url)
    return rows


def run(env: dict[str, str]) -> list[dict]:
    return asyncio.run(_run(env))


if __name__ == "__main__":
    from bench.__main__ import bench_env

    os.environ.setdefault("STREETNEEDS_TOPIC_PREFIX", f"bench-{uuid.uuid4().hex[:8]}.")
    for row in run(bench_env()):
        print(json.dumps(row))
