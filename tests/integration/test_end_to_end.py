"""End to end on the real stack: a council's signals become a resident's feed, with privacy intact.

All five services run as real processes (random ports, random consumer groups, a fresh database with
the Camden gazetteer) on the real Kafka broker. A burst of fly-tipping reports on one street becomes a
prompt in that street's subscriber's feed; closing the reports makes it disappear. Isolation flags
from last month, on the streets of one publication unit, are released monthly as a band only. Then
every public output — feeds, CAP, the aggregator's and partners' APIs, the public topics — and every
database table is scanned for anything personal.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import re
import socket
import subprocess
import sys
from collections.abc import AsyncIterator, Callable
from pathlib import Path

import asyncpg
import feedparser
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.ingest.auth import generate_key, hash_key
from services.ingest.repository import create_system
from services.partners import keys as partner_keys
from shared.contracts import CATALOGUE, PROMPTS, SIGNALS_ANONYMISED, STREET_NEEDS
from shared.migrations import migrate_all

pytestmark = [pytest.mark.integration, pytest.mark.slow, pytest.mark.timeout(420)]

ROOT = Path(__file__).resolve().parents[2]
SERVICES = ("ingest", "aggregator", "prompter", "feeds", "partners")
PERSONAL = {
    "name": "Test Resident Ninety",
    "email": "ninety@example.invalid",
    "phone": "07700 900090",
    "notes": "lives alone at number 9, door code 4455",
}


LONG_ADDRESS = ("Flat 9, Ninety Court, 90 Nonesuch Lane, London NW1 9ZZ; " * 10).strip()  # > 500 chars


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _eventually(check: Callable, what: str, within: float = 120.0, every: float = 1.0):
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            raise AssertionError(f"timed out waiting for {what}")
        await asyncio.sleep(every)


@pytest.fixture
async def system(stack, fresh_database_url, random_id, tmp_path) -> AsyncIterator[dict]:
    """Every service running against a fresh database; yields URLs and keys."""
    await migrate_all(fresh_database_url)
    conn = await asyncpg.connect(fresh_database_url)
    council_key, partner_key = generate_key(), None
    try:
        await create_system(
            conn,
            name="e2e council",
            council_id="camden",
            key_hash=hash_key(council_key),
            categories=[c.value for c in CATALOGUE],
            rate_per_minute=None,
        )
        partner_key = partner_keys.new_key()
        await conn.execute(
            "INSERT INTO partners.partners (id, name, key_hash) VALUES "
            "(gen_random_uuid(), 'e2e partner', $1)",
            partner_keys.hash_key(partner_key),
        )
    finally:
        await conn.close()
    ports = {name: _free_port() for name in SERVICES}
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "LOG_LEVEL": "INFO",
        "INGEST_PSEUDONYM_KEYS": f"1:{'e' * 48}",
        "INGEST_PSEUDONYM_KEY_VERSION": "1",
        "AGGREGATOR_OPERATOR_TOKEN": "o" * 32,
        "AGGREGATOR_REFRESH_INTERVAL_SECONDS": "2",
        "PROMPTER_ADMIN_TOKEN": "p" * 32,
        # Topics of its own: the services see only this test's events, as on a new deployment.
        "STREETNEEDS_TOPIC_PREFIX": f"{os.environ['STREETNEEDS_TOPIC_PREFIX']}e2e-{random_id}.",
        "FEEDS_BASE_URL": f"http://127.0.0.1:{ports['feeds']}",
    }
    for name in SERVICES:
        env[f"{name.upper()}_PORT"] = str(ports[name])
        group_var = "INGEST_CONSUMER_GROUP" if name == "ingest" else f"{name.upper()}_GROUP_ID"
        env[group_var] = f"e2e-{name}-{random_id}"
    procs = [
        subprocess.Popen(  # noqa: ASYNC220 - a quick fork at set-up, nothing to await
            [sys.executable, "-m", f"services.{name}"],
            cwd=ROOT,
            env=env,
            stdout=(tmp_path / f"{name}.log").open("wb"),
            stderr=subprocess.STDOUT,
        )
        for name in SERVICES
    ]
    urls = {name: f"http://127.0.0.1:{port}" for name, port in ports.items()}
    try:
        async with httpx.AsyncClient(timeout=10) as client:
            for name, url in urls.items():

                async def ready(url=url) -> bool:
                    try:
                        return (await client.get(f"{url}/readyz")).status_code == 200
                    except httpx.TransportError:
                        return False

                await _eventually(ready, f"{name} to be ready", within=90, every=0.5)
        yield {
            "urls": urls,
            "council_key": council_key,
            "partner_key": partner_key,
            "database": fresh_database_url,
            "topic_prefix": env["STREETNEEDS_TOPIC_PREFIX"],
            "env": env,
            "logs": tmp_path,
        }
    finally:
        for proc in procs:
            proc.terminate()
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        for name in SERVICES:  # shown by pytest only when the test fails
            print(f"--- {name} log (tail) ---\n" + (tmp_path / f"{name}.log").read_text()[-3000:])


def _signal(
    event_id: str, category: str, action: str, subject: str, when: dt.datetime, lon: float, lat: float
) -> dict:
    return {
        "event_id": event_id,
        "category": category,
        "action": action,
        "subject_ref": subject,
        "occurred_at": when.isoformat(),
        "location": {"lat": lat, "lon": lon},
        **PERSONAL,
    }


def _point_on(gazetteer, street, rng: random.Random) -> tuple[float, float] | None:
    """A point on the street, inside the borough, that no crossing street is nearer to (or None:
    some streets run mostly outside the borough or are overlapped by others)."""
    for _ in range(200):
        point = street.geometry.interpolate(rng.uniform(0.0, 1.0), normalized=True)
        lon, lat = round(point.x, 6), round(point.y, 6)
        if gazetteer.contains(lon, lat) and gazetteer.snapper.snap_one(lon, lat)[0] == street.id:
            return lon, lat
    return None


def _pointable(gazetteer, streets, rng: random.Random) -> list:
    """The streets, in order, on which points can be placed."""
    return [s for s in streets if _point_on(gazetteer, s, rng) is not None]


async def _topic_values(
    bootstrap: str,
    topic: str,
    keep: Callable[[bytes | None, bytes | None], bool],
) -> list[bytes]:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        group_id=None,
    )
    await consumer.start()
    try:
        await consumer.seek_to_beginning()
        ends = await consumer.end_offsets(list(consumer.assignment()))
        out = []
        while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                out.extend(r.value for r in records if keep(r.key, r.value))
        return out
    finally:
        await consumer.stop()


async def test_council_signal_to_resident_feed_with_privacy_intact(  # noqa: C901 - one scenario, read in order
    system, stack, camden_gazetteer, random_id
):
    rng = random.Random(random_id)
    urls = system["urls"]
    council = {"Authorization": f"Bearer {system['council_key']}"}
    now = dt.datetime.now(dt.UTC)
    # A street that is published on its own or in a small place unit, and one person unit of streets.
    big = sorted((s for s in camden_gazetteer.streets.values() if s.address_count >= 40), key=lambda s: s.id)
    rng.shuffle(big)
    street = _pointable(camden_gazetteer, big[:20], rng)[0]

    def streets_of(unit) -> list:
        return _pointable(camden_gazetteer, [camden_gazetteer.streets[i] for i in unit.street_ids], rng)

    person_unit = next(
        u
        for u in sorted(camden_gazetteer.units_for(40), key=lambda u: u.id)
        if u.publishable and street.id not in u.street_ids and len(streets_of(u)) >= 2
    )
    members = streets_of(person_unit)
    last_month = (now.replace(day=1) - dt.timedelta(days=1)).replace(day=10, hour=11)
    sent_coordinates: list[tuple[float, float]] = []

    async with httpx.AsyncClient(timeout=30) as client:
        sub = (await client.post(f"{urls['feeds']}/v1/subscriptions", json={"street_id": street.id})).json()
        unit_sub = (
            await client.post(
                f"{urls['feeds']}/v1/subscriptions", json={"street_id": person_unit.street_ids[0]}
            )
        ).json()

        # 1. A burst of fly-tipping reports on the street (place category: near real time).
        reports = []
        for i in range(5):
            lon, lat = _point_on(camden_gazetteer, street, rng)
            sent_coordinates.append((lon, lat))
            reports.append(
                _signal(
                    f"{random_id}-ft-{i}",
                    "fly_tipping",
                    "raised",
                    f"FT-{random_id}-{i}",
                    now - dt.timedelta(minutes=5),
                    lon,
                    lat,
                )
            )
        # 2. Isolation flags from last month on the person unit's streets (released monthly, as a band).
        flags = []
        for i in range(40):
            lon, lat = _point_on(camden_gazetteer, rng.choice(members), rng)
            sent_coordinates.append((lon, lat))
            flags.append(
                _signal(
                    f"{random_id}-iso-{i}",
                    "isolation",
                    "raised",
                    f"ASC-{random_id}-{i}",
                    last_month,
                    lon,
                    lat,
                )
            )
        answer = await client.post(f"{urls['ingest']}/v1/signals", json=reports + flags, headers=council)
        assert answer.status_code == 202, answer.text
        assert answer.json()["accepted"] == 45, answer.json()

        async def entries(feed_url: str):
            parsed = feedparser.parse((await client.get(feed_url)).content)
            assert parsed.bozo == 0
            return parsed.entries

        atom = sub["feeds"]["atom"]
        # Place categories may show exact counts; the prompt is revised as the reports are counted.
        await _eventually(
            lambda: _matching(entries(atom), "5 reports of fly-tipping"),
            "the fly-tipping prompt, with all five reports, in the street's feed",
        )

        # Last month is released once, after it ends: the operator's command, once the flags are in.
        conn = await asyncpg.connect(system["database"])
        try:

            async def flags_counted() -> bool:
                return (
                    await conn.fetchval(
                        "SELECT count(*) FROM aggregator.signals WHERE category = 'isolation'"
                    )
                    >= 40
                )

            await _eventually(flags_counted, "the aggregator to count the isolation flags")
        finally:
            await conn.close()
        released = await asyncio.create_subprocess_exec(
            sys.executable,
            "-m",
            "services.cli",
            "aggregator",
            "release",
            "--period",
            last_month.strftime("%Y-%m"),
            cwd=ROOT,
            env=system["env"],
            stdout=asyncio.subprocess.PIPE,
            stderr=asyncio.subprocess.STDOUT,
        )
        output, _ = await released.communicate()
        assert released.returncode == 0, output.decode()

        isolation = await _eventually(
            lambda: _matching(entries(unit_sub["feeds"]["atom"]), "lonely"),
            "the monthly isolation prompt in the unit's feed",
        )
        text = f"{isolation.title} {isolation.summary}"
        assert not re.search(r"\d", isolation.title), "person categories never show a number"
        assert any(band in text.lower() for band in ("some", "several", "many")), text

        # 3. The council closes the reports: the prompt leaves the feed.
        closures = [
            {
                **r,
                "event_id": r["event_id"] + "-closed",
                "action": "withdrawn",
                "occurred_at": now.isoformat(),
            }
            for r in reports
        ]
        answer = await client.post(f"{urls['ingest']}/v1/signals", json=closures, headers=council)
        assert answer.json()["accepted"] == 5, answer.json()

        async def gone():
            return not await _matching(entries(atom), "fly-tipping")

        await _eventually(gone, "the fly-tipping prompt to leave the feed")

        # Input that is refused must not reach a log line either (docs/privacy.md rule 1): an address
        # over the contract's 500 characters, by the JSON API and by Open311.
        too_long = {**flags[0], "event_id": f"{random_id}-long", "location": {"address": LONG_ADDRESS}}
        refused = await client.post(f"{urls['ingest']}/v1/signals", json=[too_long], headers=council)
        assert refused.status_code == 422, refused.text
        form = {"api_key": system["council_key"], "service_code": "graffiti", "address_string": LONG_ADDRESS}
        refused = await client.post(f"{urls['ingest']}/open311/v2/requests.json", data=form)
        assert refused.status_code == 400, refused.text

        # 4. Privacy: collect every public output and scan it.
        public = [
            (await client.get(f"{urls['feeds']}/streets/{street.id}")).text,
            (await client.get(unit_sub["feeds"]["atom"])).text,
            (await client.get(unit_sub["feeds"]["json_feed"])).text,
            (await client.get(f"{urls['feeds']}/cap/alerts.xml")).text,
            (
                await client.get(f"{urls['aggregator']}/v1/needs.geojson", params={"ward": street.ward_code})
            ).text,
            (
                await client.get(
                    f"{urls['partners']}/v1/needs.csv",
                    headers={"Authorization": f"Bearer {system['partner_key']}"},
                )
            ).text,
            (
                await client.get(
                    f"{urls['partners']}/v1/needs/history",
                    headers={"Authorization": f"Bearer {system['partner_key']}"},
                )
            ).text,
            (await client.get(f"{urls['ingest']}/open311/v2/requests.json")).text,
        ]
    ours = {street.id, *person_unit.street_ids}
    prefix = system["topic_prefix"]
    for topic in (STREET_NEEDS.base_name, PROMPTS.base_name):
        public += [
            v.decode()
            for v in await _topic_values(
                stack["kafka"],
                prefix + topic,
                lambda k, v: v is not None and any(s in v.decode() for s in ours),
            )
        ]

    anonymised = await _topic_values(
        stack["kafka"],
        prefix + SIGNALS_ANONYMISED.base_name,
        lambda k, v: k is not None and k.decode() in ours,
    )
    pseudonyms = {json.loads(v)["subject_key"] for v in anonymised}
    assert len(pseudonyms) == 45, "one pseudonym per subject on the anonymised topic"
    forbidden = [*PERSONAL.values(), f"FT-{random_id}", f"ASC-{random_id}", *pseudonyms]
    # A sent coordinate counts only as a whole number: the points lie on streets, so one can be the
    # prefix of a published OpenStreetMap vertex (-0.144706 in -0.1447065) without leaking anything.
    coordinates = [rf"(?<![\d.]){re.escape(f'{v:.6f}')}(?!\d)" for point in sent_coordinates for v in point]

    def leaks(text: str, values: list[str]) -> list[str]:
        found = [v for v in values if v in text]
        return found + [c for c in coordinates if re.search(c, text)]

    for output in public:
        assert not leaks(output, forbidden), f"public output leaks {leaks(output, forbidden)}"
        assert not re.search(r"\b\d+ (older neighbours|neighbours)\b.*lonely", output)

    # The anonymised topic carries pseudonyms (the aggregator counts with them), nothing else personal.
    personal = [v for v in forbidden if v not in pseudonyms]
    for record in anonymised:
        found = leaks(record.decode(), personal)
        assert not found, f"anonymised topic leaks {found}"

    conn = await asyncpg.connect(system["database"])
    try:
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_schema = ANY($1)",
            ["ingest", "aggregator", "prompter", "feeds", "partners"],
        )
        for table in tables:
            rows = await conn.fetch(f'SELECT t::text AS row FROM "{table[0]}"."{table[1]}" t')
            dump = "\n".join(r["row"] for r in rows)
            # Pseudonyms may live only in the aggregator's internal state, nowhere else.
            scan = forbidden if table[0] != "aggregator" else personal
            assert not leaks(dump, scan), f"{table[0]}.{table[1]} holds {leaks(dump, scan)}"
    finally:
        await conn.close()

    # Logs: no personal value in any service's log, ever — pseudonyms included.
    for name in SERVICES:
        log = (system["logs"] / f"{name}.log").read_text(errors="replace")
        assert log.strip(), f"{name} logged nothing: the scan would prove nothing"
        found = leaks(log, [*forbidden, LONG_ADDRESS[:40]])
        assert not found, f"{name}'s log holds {found}"


async def _matching(entries_coro, word: str):
    for entry in await entries_coro:
        if word in f"{entry.title} {entry.get('summary', '')}".lower():
            return entry
    return None
