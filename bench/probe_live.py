"""Probe a running stack from outside, as a council and a resident meet it: council POST /v1/signals
-> the street's SSE `prompt` event, one sample at a time, idle and under 1,000 signals/s of background
load (the same probe and load as `bench_live`, which starts four services of its own on a fresh
database; this one measures whatever is running, e.g. every service of `make run`). Each condition
is also split by stage (ingest + aggregator, prompter, feeds) from the record times on the topics
between them (`bench_live._stages`).

    make run            # in one terminal
    .venv/bin/python -m bench.probe_live [samples per condition, default 100]

Creates a council system without a rate limit to speak of (the ingest CLI, on DATABASE_URL) and
signals on random Camden streets: run it against a development stack, never a council's.
"""

from __future__ import annotations

import asyncio
import os
import random
import statistics
import sys
import tempfile
import time
from pathlib import Path

import httpx

from bench import bench_live
from bench.__main__ import bench_env
from bench.aggregator_peer import db
from shared.privacy import MIN_STREET_ADDRESSES

INGEST = os.environ.get("PROBE_INGEST_URL", "http://127.0.0.1:8001")
FEEDS = os.environ.get("PROBE_FEEDS_URL", "http://127.0.0.1:8000")


def _show(name: str, latencies: list[float], missed: int) -> None:
    if len(latencies) < 2:
        within = f"within {bench_live.SAMPLE_TIMEOUT_S:.0f} s"
        print(f"{name}: {len(latencies)} arrived, {missed} missed ({within})")
        return
    q = statistics.quantiles(latencies, n=100)
    print(
        f"{name}: p50 {q[49]:.0f} ms, p99 {q[98]:.0f} ms, max {max(latencies):.0f} ms; "
        f"{len(latencies)} arrived, {missed} missed (within {bench_live.SAMPLE_TIMEOUT_S:.0f} s)",
        flush=True,
    )


async def main(samples: int) -> None:
    gazetteer = await asyncio.to_thread(db.camden_gazetteer)
    publishable = sorted(s.id for s in gazetteer.streets.values() if s.address_count >= MIN_STREET_ADDRESSES)
    if not 0 < 2 * samples <= len(publishable):
        # Each sample needs a street of its own, idle and loaded: say so rather than fail in `sample`.
        sys.exit(f"samples per condition: 1 to {len(publishable) // 2} (each takes a street of its own)")
    rng = random.Random(time.time_ns())
    chosen = rng.sample(publishable, 2 * samples)  # streets of their own, as likely as not without a need
    probes = [(s, rng.choice(bench_live.PLACE)) for s in chosen]
    background = sorted(set(gazetteer.streets) - set(chosen))
    env = bench_env()
    kafka = env["KAFKA_BOOTSTRAP_SERVERS"]  # the stack's broker: its record times give the stages
    with tempfile.TemporaryDirectory(prefix="probe-live-") as tmp:
        key = await bench_live._system_key(env["DATABASE_URL"], Path(tmp))
    async with httpx.AsyncClient(timeout=httpx.Timeout(30, read=None)) as client:
        timeline: list[bench_live.Timed] = []
        idle, missed, _ = await bench_live._probe(client, INGEST, FEEDS, key, probes[:samples], timeline)
        _show("idle", idle, missed)
        print(f"  {bench_live.stage_summary(await bench_live._stages(kafka, timeline))}", flush=True)
        stop = asyncio.Event()
        load = asyncio.create_task(
            bench_live._background(INGEST, key, background, stop, seed=rng.getrandbits(32))
        )
        await asyncio.sleep(5)  # let the load settle
        try:
            timeline = []  # the loaded samples' own
            loaded, missed, _ = await bench_live._probe(
                client, INGEST, FEEDS, key, probes[samples:], timeline
            )
        finally:
            stop.set()
            accepted, failed, took = await load
        _show(f"under {accepted / took:,.0f} signals/s ({failed} requests failed)", loaded, missed)
        print(f"  {bench_live.stage_summary(await bench_live._stages(kafka, timeline))}", flush=True)


if __name__ == "__main__":
    asyncio.run(main(int(sys.argv[1]) if len(sys.argv) > 1 else 100))
