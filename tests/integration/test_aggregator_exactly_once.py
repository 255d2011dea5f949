"""The aggregator applies every signal exactly once, though SIGKILLed mid-batch again and again."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from services.aggregator.cli import rebuild_state
from services.aggregator.consumer import topic_partitions
from services.aggregator.repository import snapshot
from services.aggregator.settings import AggregatorSettings
from services.aggregator.state import SignalState, active_subjects
from shared.contracts import CATALOGUE, SIGNALS_ANONYMISED, SignalAnonymised
from shared.gazetteer import repository as gazetteer_repo
from shared.settings import CommonSettings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]
ROOT = Path(__file__).resolve().parents[2]
TOPIC = SIGNALS_ANONYMISED.name


async def with_gazetteer(main_url: str, url: str) -> list[str]:
    """Street ids of the database's gazetteer, copying the main database's one in if it has none."""
    conn = await asyncpg.connect(url)
    try:
        await gazetteer_repo.migrate(conn)
        gazetteer = await gazetteer_repo.load(conn)
        if not gazetteer.streets:
            source = await asyncpg.connect(main_url)
            try:
                gazetteer = await gazetteer_repo.load(source)
            finally:
                await source.close()
            await gazetteer_repo.save(conn, gazetteer)
        return sorted(gazetteer.streets)
    finally:
        await conn.close()


def make_events(streets: list[str], n: int, rnd: random.Random) -> list[SignalAnonymised]:
    now = dt.datetime.now(dt.UTC).replace(minute=0, second=0, microsecond=0)
    subjects = [uuid.UUID(int=rnd.getrandbits(128)).hex * 2 for _ in range(n // 4)]
    events = []
    for _ in range(n):
        category = rnd.choice(list(CATALOGUE))
        cinfo = CATALOGUE[category]
        at = now - dt.timedelta(hours=rnd.randrange(0, 24 * min(cinfo.lifetime_days, 10)))
        if cinfo.sensitivity == "person":
            at = at.replace(hour=0)
        events.append(
            SignalAnonymised(
                event_id=uuid.uuid4(),
                category=category,
                sensitivity=cinfo.sensitivity,
                action="withdrawn" if rnd.random() < 0.2 else "raised",
                street_id=rnd.choice(streets),
                subject_key=rnd.choice(subjects),
                key_version=1,
                occurred_at=at,
                council_id="test",
                source="kafka",
            )
        )
    return events


def start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.aggregator"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def topic_records(settings: CommonSettings, since_ms: int) -> tuple[int, dict[int, int]]:
    """Data records on the topic from `since_ms` to its current end (what the aggregator must apply),
    and the end offset of each partition that has any."""
    parts = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign(parts)
        starts = await consumer.offsets_for_times({tp: since_ms for tp in parts})
        ends = await consumer.end_offsets(parts)
        total, windows = 0, {}
        for tp in parts:
            begin = starts[tp].offset if starts.get(tp) else ends[tp]
            if begin < ends[tp]:
                windows[tp.partition] = ends[tp]
            consumer.seek(tp, begin)
            while await consumer.position(tp) < ends[tp]:
                got = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                total += sum(1 for r in got.get(tp, []) if r.offset < ends[tp])
        return total, windows
    finally:
        await consumer.stop()


async def applied(url: str) -> tuple[dict[int, int], int]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT partition, next_offset, records FROM aggregator.consumer_offsets")
        return {r["partition"]: r["next_offset"] for r in rows}, sum(r["records"] for r in rows)
    except asyncpg.UndefinedTableError:
        return {}, 0
    finally:
        await conn.close()


def mine(state: SignalState, subjects: set[str]) -> SignalState:
    return SignalState(
        {k: v for k, v in state.raised.items() if k[2] in subjects},
        {k: v for k, v in state.withdrawn.items() if k[0] in subjects},
    )


async def test_sigkill_mid_batch_neither_loses_nor_double_counts(
    stack, kafka_settings, fresh_database_url, random_id
):
    rnd = random.Random(random_id)
    streets = rnd.sample(await with_gazetteer(stack["database"], fresh_database_url), 60)
    replay_from = dt.datetime.now(dt.UTC) - dt.timedelta(seconds=2)
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "AGGREGATOR_GROUP_ID": f"test-{random_id}",
        "AGGREGATOR_PORT": str(rnd.randrange(20000, 30000)),
        "AGGREGATOR_REPLAY_FROM": replay_from.isoformat(),
        "AGGREGATOR_BATCH_MAX_RECORDS": "200",
        "AGGREGATOR_BATCH_TIMEOUT_MS": "50",
        "LOG_LEVEL": "WARNING",
    }
    events = make_events(streets, 3000, rnd)
    producer = AIOKafkaProducer(
        bootstrap_servers=stack["kafka"], acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    try:
        chunks = [events[i : i + 500] for i in range(0, len(events), 500)]
        for chunk in chunks[:2]:
            for e in chunk:
                await producer.send(TOPIC, e.model_dump_json().encode(), key=e.street_id.encode())
        await producer.flush()
        # Kill the service at random moments while more events keep arriving.
        for chunk in chunks[2:]:
            proc = start(env)
            for e in chunk:
                await producer.send(TOPIC, e.model_dump_json().encode(), key=e.street_id.encode())
            await producer.flush()
            await asyncio.sleep(rnd.uniform(1.5, 4.0))
            proc.send_signal(signal.SIGKILL)
            proc.wait()
    finally:
        await producer.stop()

    expected_records, ends = await topic_records(kafka_settings, int(replay_from.timestamp() * 1000))
    proc = start(env)
    try:
        for _ in range(600):
            positions, _ = await applied(fresh_database_url)
            if all(positions.get(p, -1) >= end for p, end in ends.items()):
                break
            await asyncio.sleep(0.2)
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=30)

    _, records = await applied(fresh_database_url)
    assert records == expected_records  # every record applied once: none lost, none twice
    subjects = {e.subject_key for e in events}
    expected = SignalState()
    expected.apply(events)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        live = mine(await snapshot(conn), subjects)
    finally:
        await conn.close()
    assert live == expected
    now = dt.datetime.now(dt.UTC)
    assert active_subjects(live.rows(), now) == active_subjects(expected.rows(), now)

    # Rebuild: replaying the topic into fresh state arrives at exactly the same result.
    settings = AggregatorSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers=stack["kafka"],
        replay_from=replay_from,
        group_id=f"test-{random_id}",
    )
    await rebuild_state(settings, publish=False)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        assert mine(await snapshot(conn), subjects) == live
    finally:
        await conn.close()
