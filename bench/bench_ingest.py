"""Ingest throughput and latency: HTTP batches and Kafka, from send to arrival on signals-anonymised.v1.

Runs `python -m services.ingest` as a subprocess on a free loopback port, against a fresh database
holding the Camden gazetteer, with its own consumer group; signals come from the simulator model.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import secrets
import socket
import subprocess
import sys
import time
import uuid
from itertools import islice
from pathlib import Path

import asyncpg
import httpx
import numpy as np

from bench.bench_gazetteer import camden, save
from services.ingest import repository
from services.ingest.anonymise import event_uuid
from services.ingest.auth import generate_key, hash_key
from shared.contracts import Category
from shared.db import apply_migrations, create_database, drop_database
from shared.gazetteer.camden import DATA as CAMDEN
from shared.settings import CommonSettings
from simulator.model import SignalModel
from simulator.reference import load_reference
from simulator.sinks import HttpSink, KafkaSink
from simulator.watch import AnonymisedWatcher

ROOT = Path(__file__).resolve().parents[1]
SIGNALS = 20_000
BATCH = 1_000
WARM_UP = 200
ARRIVAL_TIMEOUT_S = 300
PACED, PACED_BATCH, PACED_INTERVAL_S = 1_000, 10, 0.1  # 100 signals/s for 10 s


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _create_system(url: str) -> tuple[str, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, "ingest", Path(repository.__file__).parent / "migrations")
        key = generate_key()
        system = await repository.create_system(
            conn,
            name="bench",
            council_id="camden",
            key_hash=hash_key(key),
            categories=[c.value for c in Category],
            rate_per_minute=1_000_000,
        )
        return key, system.id
    finally:
        await conn.close()


def _percentiles(latencies: list[float]) -> tuple[float, float]:
    a = np.asarray(latencies) * 1000
    return float(np.percentile(a, 50)), float(np.percentile(a, 99))


async def _measure(sink, signals, system_id, watcher) -> tuple[float, float, float, int]:
    """(signals/s end to end, p50 ms, p99 ms, missing) for sending `signals` in batches."""
    sent_at: dict[uuid.UUID, float] = {}
    # Read while sending, or arrivals would be stamped when reading starts, not when they arrive.
    reading = asyncio.create_task(
        watcher.wait_for([event_uuid(system_id, s.event_id) for s in signals], ARRIVAL_TIMEOUT_S)
    )
    started = time.monotonic()
    for i in range(0, len(signals), BATCH):
        batch = signals[i : i + BATCH]
        now = time.monotonic()
        for s in batch:
            sent_at[event_uuid(system_id, s.event_id)] = now
        await sink.send(batch)
    missing = await reading
    arrived = [watcher.arrivals[e] - t for e, t in sent_at.items() if e in watcher.arrivals]
    last = max(watcher.arrivals[e] for e in sent_at if e in watcher.arrivals)
    p50, p99 = _percentiles(arrived)
    return len(arrived) / (last - started), p50, p99, len(missing)


async def _measure_paced(
    sink, signals, system_id, watcher, per_batch: int, interval_s: float
) -> tuple[float, float, int]:
    """(p50 ms, p99 ms, missing) at a steady rate well below capacity: latency without queueing."""
    sent_at: dict[uuid.UUID, float] = {}
    reading = asyncio.create_task(
        watcher.wait_for([event_uuid(system_id, s.event_id) for s in signals], ARRIVAL_TIMEOUT_S)
    )
    for i in range(0, len(signals), per_batch):
        tick = time.monotonic()
        batch = signals[i : i + per_batch]
        for s in batch:
            sent_at[event_uuid(system_id, s.event_id)] = tick
        await sink.send(batch)
        await asyncio.sleep(max(0.0, interval_s - (time.monotonic() - tick)))
    missing = await reading
    p50, p99 = _percentiles([watcher.arrivals[e] - t for e, t in sent_at.items() if e in watcher.arrivals])
    return p50, p99, len(missing)


async def _bench(env: dict[str, str], url: str, port: int, key: str, system_id: uuid.UUID, gaz) -> list[dict]:
    kafka = CommonSettings(
        database_url=env["DATABASE_URL"], kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"]
    )
    model = SignalModel(gaz, load_reference(CAMDEN), seed=secrets.randbelow(2**31))
    now = dt.datetime.now(dt.UTC)
    # A year of the model's signals, re-dated to now: ingest refuses signals too old to ever count
    # (docs/privacy.md, time tolerance), and throughput does not depend on the date.
    stream = (
        s.model_copy(update={"occurred_at": now})
        for s in model.signals(now - dt.timedelta(days=365), now, warm=False)
    )
    warm = list(islice(stream, 2 * WARM_UP))
    http_signals, kafka_signals = list(islice(stream, SIGNALS)), list(islice(stream, SIGNALS))
    paced = {"HTTP": list(islice(stream, PACED)), "Kafka": list(islice(stream, PACED))}
    watcher = AnonymisedWatcher(kafka)
    await watcher.start()
    rows = []
    try:
        http = HttpSink(f"http://127.0.0.1:{port}", key)
        producer = KafkaSink(kafka, key)
        await producer.start()
        try:
            # Warm both paths (connections, JIT-less caches, the consumer's catch-up on the raw topic).
            await _measure(http, warm[:WARM_UP], system_id, watcher)
            await _measure(producer, warm[WARM_UP:], system_id, watcher)
            for name, sink, signals in (("HTTP", http, http_signals), ("Kafka", producer, kafka_signals)):
                rate, p50, p99, missing = await _measure(sink, signals, system_id, watcher)
                note = f"{len(signals):,} signals, batches of {BATCH:,}; {missing} missing"
                rows += [
                    {
                        "benchmark": f"ingest over {name}: throughput",
                        "value": rate,
                        "unit": "signals/s",
                        "notes": note + "; first send to last arrival on signals-anonymised.v1",
                    },
                    {
                        "benchmark": f"ingest over {name}: latency p50",
                        "value": p50,
                        "unit": "ms",
                        "notes": "batch sent -> event read from signals-anonymised.v1",
                    },
                    {
                        "benchmark": f"ingest over {name}: latency p99",
                        "value": p99,
                        "unit": "ms",
                        "notes": "",
                    },
                ]
            for name, sink in (("HTTP", http), ("Kafka", producer)):
                p50, p99, missing = await _measure_paced(
                    sink, paced[name], system_id, watcher, PACED_BATCH, PACED_INTERVAL_S
                )
                rate = PACED_BATCH / PACED_INTERVAL_S
                note = (
                    f"{PACED:,} signals at a steady {rate:.0f}/s in batches of {PACED_BATCH}; "
                    f"{missing} missing"
                )
                rows += [
                    {
                        "benchmark": f"ingest over {name} at {rate:.0f}/s: latency p50",
                        "value": p50,
                        "unit": "ms",
                        "notes": note + "; sent -> read from signals-anonymised.v1",
                    },
                    {
                        "benchmark": f"ingest over {name} at {rate:.0f}/s: latency p99",
                        "value": p99,
                        "unit": "ms",
                        "notes": "",
                    },
                ]
        finally:
            await http.close()
            await producer.close()
    finally:
        await watcher.stop()
    return rows


def _wait_ready(port: int, proc: subprocess.Popen, timeout_s: float = 90) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"ingest exited with {proc.returncode}")
        try:
            if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.5)
    raise TimeoutError("ingest did not become ready")


def run(env: dict[str, str]) -> list[dict]:
    admin = env["DATABASE_URL"]
    gaz, _ = camden()
    url = asyncio.run(create_database(admin, prefix="bench"))
    proc = None
    try:
        asyncio.run(save(url, gaz))
        key, system_id = asyncio.run(_create_system(url))
        port = _free_port()
        proc_env = {
            **os.environ,
            **env,
            "DATABASE_URL": url,
            "INGEST_PORT": str(port),
            "INGEST_HOST": "127.0.0.1",
            "INGEST_CONSUMER_GROUP": f"bench-{uuid.uuid4().hex[:8]}",
            "INGEST_PSEUDONYM_KEYS": f"1:{secrets.token_hex(32)}",
            "INGEST_PSEUDONYM_KEY_VERSION": "1",
            "LOG_LEVEL": "WARNING",
        }
        log = (ROOT / ".local" / "bench-ingest.log").open("wb")
        proc = subprocess.Popen(
            [sys.executable, "-m", "services.ingest"],
            cwd=ROOT,
            env=proc_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        _wait_ready(port, proc)
        return asyncio.run(_bench(env, url, port, key, system_id, gaz))
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_database(admin, url))
