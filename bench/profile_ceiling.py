"""What bounds the aggregator's rate on this machine, part by part, on N events of the bench's mix:

1. the Python client: aiokafka reading the topic with the aggregator's own fetch settings and doing
   nothing else, then reading and decoding each record as the aggregator does (`decode_record`);
2. PostgreSQL: the fold's raise rows written in the aggregator's batches, by the aggregator's own
   statement into its own schema (`repository.signals.apply_delta`), and the same rows by a bare
   INSERT into a table with the primary key only (no conflict handling, no subject index): the
   least a row of this state costs.

Rates and CPU per record (this process; the database backend's own CPU for part 2). Set against
Kafka's `ConsumerPerformance` in the same bench (`bench/RESULTS.md`): the aggregator cannot be
faster than what reading and storing cost it. Fresh topics and database of its own, removed after.

    .venv/bin/python -m bench.profile_ceiling [events, default 1000000]
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import random
import resource
import sys
import time
import uuid
from collections.abc import Awaitable, Callable
from pathlib import Path

os.environ.setdefault("STREETNEEDS_TOPIC_PREFIX", f"bench-{uuid.uuid4().hex[:8]}.")

from bench.__main__ import _topics, bench_env
from bench.aggregator_peer import db, load
from bench.wrk import cpu_s
from shared.db import apply_migrations, drop_database

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "aggregator" / "migrations"
BARE = """CREATE TABLE bare (street_id text NOT NULL, category text NOT NULL, subject_key text NOT NULL,
                            raised_at timestamptz NOT NULL, PRIMARY KEY (street_id, category, subject_key))"""


def _own_cpu() -> float:
    ru = resource.getrusage(resource.RUSAGE_SELF)
    return ru.ru_utime + ru.ru_stime


async def _read(env: dict[str, str], n: int, decode: bool) -> tuple[float, float]:
    """Seconds and CPU seconds to read `n` records (and decode each when `decode`)."""
    from services.aggregator.consumer import SignalConsumer, topic_partitions
    from services.aggregator.decoding import decode_record
    from services.aggregator.settings import AggregatorSettings

    settings = AggregatorSettings(
        database_url=env["DATABASE_URL"], kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]
    )
    # The aggregator's own client, as it builds it (its pool and areas are not used here).
    consumer = SignalConsumer(None, settings, None, assign_all=True).consumer  # type: ignore[arg-type]
    await consumer.start()
    consumer.assign(await topic_partitions(settings))
    await consumer.seek_to_beginning()
    try:
        got, cpu, started = 0, _own_cpu(), time.perf_counter()
        while got < n:
            fetched = await consumer.getmany(timeout_ms=1000, max_records=settings.batch_max_records)
            for records in fetched.values():
                got += len(records)
                if decode:
                    for record in records:
                        decode_record(record)
        return time.perf_counter() - started, _own_cpu() - cpu
    finally:
        await consumer.stop()


async def _write(url: str, rows: list[tuple[str, str, str, dt.datetime]], batch: int) -> None:
    """The rows by the aggregator's statement, then by a bare INSERT, in `batch`-sized transactions."""
    import asyncpg

    from services.aggregator.repository.cells import columns, micros, stamp, texts
    from services.aggregator.repository.signals import apply_delta
    from services.aggregator.state import BatchDelta

    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        await conn.execute(BARE)
        pid = await conn.fetchval("SELECT pg_backend_pid()")

        async def kept(part: list[tuple[str, str, str, dt.datetime]]) -> None:
            await apply_delta(conn, BatchDelta(raised={(s, c, k): t for s, c, k, t in part}))

        async def bare(part: list[tuple[str, str, str, dt.datetime]]) -> None:
            keys = sorted(part)
            await conn.execute(
                f"""INSERT INTO bare SELECT s, c, k, {stamp("t")}
                    FROM unnest({texts("$1")}, {texts("$2")}, {texts("$3")}, $4::int8[]) AS u(s, c, k, t)""",
                *columns([r[:3] for r in keys], 3),
                micros(r[3] for r in keys),
            )

        ways: list[tuple[str, Callable[[list[tuple[str, str, str, dt.datetime]]], Awaitable[None]]]] = [
            ("the aggregator's upsert into aggregator.signals", kept),
            ("a bare INSERT, primary key only", bare),
        ]
        for name, write in ways:
            cpu, started = cpu_s(pid), time.perf_counter()
            for i in range(0, len(rows), batch):
                async with conn.transaction():
                    await write(rows[i : i + batch])
            took, used = time.perf_counter() - started, cpu_s(pid) - cpu
            print(
                f"PostgreSQL, {name}: {len(rows):,} rows in {took:.2f} s = {len(rows) / took:,.0f}/s, "
                f"backend CPU {used / len(rows) * 1e6:.1f} us/row"
            )
    finally:
        await conn.close()


async def main(n: int) -> None:
    from services.aggregator.decoding import FastSignal, decode_record
    from services.aggregator.settings import AggregatorSettings

    env = bench_env()
    gazetteer = await asyncio.to_thread(db.camden_gazetteer)
    streets = sorted((s.id, s.address_count) for s in gazetteer.streets.values())
    records = load.signal_mix(streets, n, random.Random(3), dt.datetime.now(dt.UTC))
    await _topics(env, create=True)
    try:
        await load.produce(env["KAFKA_BOOTSTRAP_SERVERS"], records, partition_key=gazetteer.partition_key)
        for decode in (False, True, False, True):
            took, cpu = await _read(env, n, decode)
            what = "reading and decoding" if decode else "reading only"
            rate = f"{n / took:,.0f}/s, CPU {cpu / n * 1e6:.2f} us/record"
            print(f"aiokafka, {what}: {n:,} records in {took:.2f} s = {rate}")
    finally:
        await _topics(env, create=False)

    class _Record:  # what decode_record reads of a ConsumerRecord
        def __init__(self, value: bytes) -> None:
            self.value, self.topic, self.key, self.partition, self.offset = value, "", None, 0, 0

    events = [decode_record(_Record(value)) for _, value in records]
    rows = [
        (e.street_id, str(e.category), e.subject_key, e.occurred_at)
        for e in events
        if isinstance(e, FastSignal) and e.action == "raised"
    ]
    url = await db.database_with(env["DATABASE_URL"], gazetteer)  # the aggregator's schema refers to it
    try:
        batch = AggregatorSettings(database_url=url).batch_max_records
        await _write(f"{url}?search_path=aggregator,public", rows, batch)
    finally:
        await drop_database(env["DATABASE_URL"], url)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 1_000_000))
