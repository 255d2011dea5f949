"""Profile the aggregator's consumer in-process on N events: CPU per event (this process and its
PostgreSQL backends), for py-spy (`py-spy record -o bench/profiles/aggregator.svg -- python -m
bench.profile_aggregator 100000`). Fresh database and topics of its own; both removed afterwards.
Also prints the wall time per batch as the state grows (by fifths of the run) and the plan of the place
refresh's counts over the whole final state (EXPLAIN ANALYZE)."""

from __future__ import annotations

import asyncio
import contextlib
import datetime as dt
import gc
import os
import random
import resource
import sys
import time
import uuid
from pathlib import Path

os.environ.setdefault("STREETNEEDS_TOPIC_PREFIX", f"bench-{uuid.uuid4().hex[:8]}.")

from bench.__main__ import _topics, bench_env
from bench.aggregator_peer import db, load
from bench.aggregator_peer.procs import rss_bytes
from bench.wrk import cpu_s
from shared.db import apply_migrations, create_pool, drop_database

MIGRATIONS = Path(__file__).resolve().parents[1] / "services" / "aggregator" / "migrations"


def _cpu_s(pids: set[int]) -> float:
    total = 0.0
    for pid in pids:
        with contextlib.suppress(FileNotFoundError):  # a backend that has gone
            total += cpu_s(pid)
    return total


def _timed(batches: list[tuple[float, int, float]]) -> object:
    """consumer.process_batch, recording (start, events, seconds) per call."""
    from services.aggregator import consumer

    original = consumer.process_batch

    async def process_batch(*args: object, **kwargs: object) -> object:
        started = time.perf_counter()
        outcome = await original(*args, **kwargs)  # type: ignore[arg-type]
        batches.append((started, outcome.events, time.perf_counter() - started))
        return outcome

    consumer.process_batch = process_batch  # type: ignore[assignment]
    return original


def _per_batch(batches: list[tuple[float, int, float]]) -> None:
    batches.sort()
    fifth = max(1, len(batches) // 5)
    done = 0
    for i in range(0, len(batches), fifth):
        part = batches[i : i + fifth]
        events = sum(b[1] for b in part)
        took = sum(b[2] for b in part)
        print(
            f"  batches {i + 1}-{i + len(part)} (after {done:,} events): {len(part)} of "
            f"{events / len(part):,.0f} events, {took / len(part) * 1e3:,.0f} ms each, "
            f"{took / max(events, 1) * 1e6:.1f} us/event"
        )
        done += events


async def _explain(conn: object) -> None:
    """The plan of the place counts over every place category of every street (a large batch's scope)."""
    from services.aggregator.processing import PLACE_CATEGORIES
    from services.aggregator.repository import signals

    captured: list[str] = []

    class Capture:
        def __init__(self, conn: object) -> None:
            self.conn = conn

        def is_in_transaction(self) -> bool:
            return False

        async def fetch(self, sql: str, *args: object) -> list[object]:
            rows = await self.conn.fetch("EXPLAIN (ANALYZE, BUFFERS) " + sql, *args)  # type: ignore[attr-defined]
            captured.extend(r[0][:160] for r in rows)  # the streets' list is long
            return []

    streets = [r[0] for r in await conn.fetch("SELECT DISTINCT street_id FROM aggregator.signals")]  # type: ignore[attr-defined]
    await signals.place_stats(Capture(conn), dt.datetime.now(dt.UTC), 7, PLACE_CATEGORIES, streets)  # type: ignore[arg-type]
    print("place_stats over the whole state:\n  " + "\n  ".join(captured))


async def main(n: int) -> None:
    from services.aggregator import repository as repo
    from services.aggregator.areas import load_areas
    from services.aggregator.consumer import SignalConsumer
    from services.aggregator.settings import AggregatorSettings
    from shared.service import YOUNG_GC_THRESHOLD

    env = bench_env()
    await _topics(env, create=True)
    gaz = await asyncio.to_thread(db.camden_gazetteer)
    url = await db.database_with(env["DATABASE_URL"], gaz)
    try:
        settings = AggregatorSettings(
            database_url=f"{url}?search_path=aggregator,public",
            kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        )
        streets = sorted((s.id, s.address_count) for s in gaz.streets.values())
        records = load.signal_mix(streets, n, random.Random(3), dt.datetime.now(dt.UTC))
        await load.produce(env["KAFKA_BOOTSTRAP_SERVERS"], records, partition_key=gaz.partition_key)
        pool = await create_pool(settings.database_url, server_settings=repo.SESSION_SETTINGS)
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            areas = await load_areas(conn, settings.policy())
            database = await conn.fetchval("SELECT current_database()")
        gc.freeze()
        gc.set_threshold(YOUNG_GC_THRESHOLD, 20, 100)  # as a service's own process does (shared.service)
        consumer = SignalConsumer(pool, settings, areas, group_id=None, assign_all=True)
        await consumer.start()

        async def backends() -> set[int]:
            async with pool.acquire() as conn:
                rows = await conn.fetch("SELECT pid FROM pg_stat_activity WHERE datname = $1", database)
            return {r[0] for r in rows}

        batches: list[tuple[float, int, float]] = []
        _timed(batches)
        pids = await backends()
        rest = rss_bytes(os.getpid())
        pg0, ru0 = _cpu_s(pids), resource.getrusage(resource.RUSAGE_SELF)
        started = time.perf_counter()
        await consumer.run(until_end=True)
        took = time.perf_counter() - started
        ru1 = resource.getrusage(resource.RUSAGE_SELF)
        pg = _cpu_s(pids | await backends()) - pg0
        py = ru1.ru_utime + ru1.ru_stime - ru0.ru_utime - ru0.ru_stime
        print(
            f"{n} events in {took:.2f} s = {n / took:,.0f}/s; CPU per event: this process "
            f"{py / n * 1e6:.1f} us, PostgreSQL {pg / n * 1e6:.1f} us; {settings.parallel_batches} lanes"
        )
        gc.collect()
        print(
            f"RSS at rest {rest / 2**20:.0f} MB, after applying {rss_bytes(os.getpid()) / 2**20:.0f} MB "
            f"(peak {ru1.ru_maxrss / 1024:.0f} MB); batches up to {settings.batch_max_records:,} per lane"
        )
        _per_batch(batches)
        async with pool.acquire() as conn:
            await _explain(conn)
        await consumer.stop()
        await pool.close()
    finally:
        await drop_database(env["DATABASE_URL"], url)
        await _topics(env, create=False)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100_000))
