"""At-least-once delivery with de-duplication, shown on the real broker by killing a consumer.

Council signals are produced to `council-signals.v1`; the ingest service (a real process) consumes
them, records each event id and produces the anonymised event, and commits its Kafka offsets only
after that. We SIGKILL it several times mid-stream — so some batches are processed but not committed
and are redelivered on restart — and then check there is exactly one effect per event.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
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

from services.ingest.anonymise import event_uuid
from services.ingest.auth import generate_key, hash_key
from services.ingest.repository import create_system
from shared.contracts import CATALOGUE, COUNCIL_SIGNALS, SIGNALS_ANONYMISED, CouncilSignal, Location
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]
EVENTS = 3000


def _start(env: dict[str, str]) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.ingest"],
        cwd=ROOT,
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )


async def _accepted(conn: asyncpg.Connection, system_id: uuid.UUID) -> int:
    return await conn.fetchval("SELECT count(*) FROM ingest.accepted_signals WHERE system_id = $1", system_id)


async def _wait_for(conn, system_id, at_least: int, proc: subprocess.Popen, within: float) -> int:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        count = await _accepted(conn, system_id)
        if count >= at_least:
            return count
        assert proc.poll() is None, "ingest exited by itself"
        await asyncio.sleep(0.05)
    return await _accepted(conn, system_id)


async def test_killed_consumer_restarts_with_one_effect_per_event(
    stack, kafka_bootstrap, fresh_database_url, camden_gazetteer, random_id, unused_tcp_port
):
    conn = await asyncpg.connect(fresh_database_url)
    await apply_migrations(conn, "ingest", ROOT / "services/ingest/migrations")
    key = generate_key()
    system = await create_system(
        conn,
        name=f"kill-test {random_id}",
        council_id="camden",
        key_hash=hash_key(key),
        categories=[c.value for c in CATALOGUE],
        rate_per_minute=None,
    )

    streets = sorted(camden_gazetteer.streets)
    rng = random.Random(random_id)
    now = dt.datetime.now(dt.UTC)
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all", linger_ms=20)
    await producer.start()
    event_ids = [f"{random_id}-{i}" for i in range(EVENTS)]
    try:
        for event_id in event_ids:
            signal_ = CouncilSignal(
                event_id=event_id,
                category=rng.choice(["isolation", "fly_tipping", "graffiti"]),
                action="raised",
                subject_ref=f"S-{rng.randrange(10**9)}",
                occurred_at=now,
                location=Location(street_id=rng.choice(streets)),
                name="Test Resident",
            )
            await producer.send(
                COUNCIL_SIGNALS.name,
                signal_.model_dump_json().encode(),
                key=event_id.encode(),
                headers=[("x-api-key", key.encode())],
            )
        await producer.flush()
    finally:
        await producer.stop()

    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": kafka_bootstrap,
        "INGEST_PORT": str(unused_tcp_port),
        "INGEST_CONSUMER_GROUP": f"kill-{random_id}",
        "INGEST_PSEUDONYM_KEYS": f"1:{'k' * 40}",
        "INGEST_PSEUDONYM_KEY_VERSION": "1",
        "LOG_LEVEL": "WARNING",
    }
    kills = 0
    try:
        for threshold in (300, 1200, 2100):
            proc = _start(env)
            try:
                reached = await _wait_for(conn, system.id, threshold, proc, within=60)
                assert reached >= threshold, f"ingest stalled at {reached} accepted signals"
            finally:
                proc.send_signal(signal.SIGKILL)  # no shutdown hook: offsets of the batch in flight are lost
                proc.wait()
                kills += 1
        proc = _start(env)
        try:
            final = await _wait_for(conn, system.id, EVENTS, proc, within=90)
            await asyncio.sleep(2)  # any redelivery still in flight would add rows now
            final = await _accepted(conn, system.id)
        finally:
            proc.terminate()
            proc.wait(timeout=30)
    finally:
        await conn.close()
    assert kills == 3
    assert final == EVENTS, "one recorded effect per event: nothing lost, nothing twice"

    expected = {str(event_uuid(system.id, e)) for e in event_ids}
    seen: dict[str, int] = {}
    consumer = AIOKafkaConsumer(
        SIGNALS_ANONYMISED.name,
        bootstrap_servers=kafka_bootstrap,
        group_id=f"check-{random_id}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        async with asyncio.timeout(90):
            while not expected <= seen.keys():
                for records in (await consumer.getmany(timeout_ms=1000)).values():
                    for record in records:
                        eid = json.loads(record.value)["event_id"]
                        if eid in expected:
                            seen[eid] = seen.get(eid, 0) + 1
    finally:
        await consumer.stop()
    assert set(seen) == expected, "every accepted signal reached the anonymised topic"
    # A kill between the broker's ack and the database commit can republish a batch; the events are
    # identical (deterministic ids) and the aggregator is idempotent on them. Kills land mid-batch far
    # more often than in that window, so most events must appear exactly once.
    assert sum(1 for n in seen.values() if n == 1) >= EVENTS * 0.5
