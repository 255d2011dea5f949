"""Ingest throughput and latency: HTTP batches and Kafka, from send to arrival on signals-anonymised.v1;
then POST /v1/signals under wrk, one signal per request and 100, with the server's CPU per request.

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
import tempfile
import time
import uuid
from itertools import islice
from pathlib import Path

import asyncpg
import httpx
import numpy as np

from bench import wrk
from bench.bench_gazetteer import camden, save
from services.ingest import repository
from services.ingest.anonymise import event_uuid
from services.ingest.auth import generate_key, hash_key
from services.ingest.main import MIGRATIONS
from shared.contracts import CATALOGUE, Category, Sensitivity
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
WRK_BATCHES = (1, 100)  # signals per POST in the wrk runs: one at a time (as Open311 sends), and batched
PLACE = sorted(str(c) for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE)

# Each request a fresh body: new event ids (or ingest would answer "duplicate" without producing),
# a random place category, street and subject, the time as wrk sends it. The values are quoted by
# Python (`_lua_list`) and the ids carry the run's nonce and wrk's thread number.
_LUA = """
local streets = {%(streets)s}
local categories = {%(categories)s}
local nonce, per_request = "%(nonce)s", %(batch)d
local threads, sent = 0, 0
local headers = {["Content-Type"] = "application/json", ["Authorization"] = "Bearer %(key)s"}
function setup(thread)
  threads = threads + 1
  thread:set("thread_id", threads)
end
function request()
  local items, now = {}, os.date("!%%Y-%%m-%%dT%%H:%%M:%%SZ")
  for i = 1, per_request do
    sent = sent + 1
    items[i] = string.format(
      '{"event_id":"wrk-%%s-%%d-%%d","category":"%%s","action":"raised","subject_ref":"wrk-%%d",'
        .. '"occurred_at":"%%s","location":{"street_id":"%%s"}}',
      nonce, thread_id, sent, categories[math.random(#categories)], math.random(1000000), now,
      streets[math.random(#streets)])
  end
  local body = per_request == 1 and items[1] or "[" .. table.concat(items, ",") .. "]"
  return wrk.format("POST", nil, headers, body)
end
"""


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


async def _create_system(url: str) -> tuple[str, uuid.UUID]:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, "ingest", MIGRATIONS)
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


def _lua_list(values: list[str]) -> str:
    return ",".join(f'"{v}"' for v in values)  # ids and category names: no quotes or backslashes


async def _accepted(url: str, system_id: uuid.UUID) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval(
            "SELECT count(*) FROM ingest.accepted_signals WHERE system_id = $1", system_id
        )
    finally:
        await conn.close()


def _wrk_rows(url: str, port: int, pid: int, key: str, system_id: uuid.UUID, gaz) -> list[dict]:
    """POST /v1/signals under wrk (Debian's, not a Python client): one signal per request, then 100;
    each run's new rows in ingest.accepted_signals set beside the signals of the requests wrk saw answered."""
    rows = []
    streets = sorted(s for s, street in gaz.streets.items() if street.address_count > 0)
    for batch in WRK_BATCHES:
        with tempfile.TemporaryDirectory() as tmp:
            script = Path(tmp) / "signals.lua"
            script.write_text(
                _LUA
                % {
                    "streets": _lua_list(streets),
                    "categories": _lua_list(PLACE),
                    "nonce": uuid.uuid4().hex[:12],
                    "batch": batch,
                    "key": key,
                }
            )
            before = asyncio.run(_accepted(url, system_id))
            r = wrk.run(f"http://127.0.0.1:{port}/v1/signals", pid, script=script)
            stored = asyncio.run(_accepted(url, system_id)) - before
        answered = (r["requests"] - r["bad"]) * batch
        name = "one_signal" if batch == 1 else f"batch_{batch}"
        what = "one signal per request" if batch == 1 else f"{batch} signals per request"
        bottleneck = "the server" if r["server_cores"] > 0.85 else "the machine, not the server alone,"
        rows += [
            {
                "benchmark": f"ingest.wrk.{name}.rate",
                "value": r["rate"] * batch,
                "unit": "signals/s",
                "notes": f"wrk {' '.join(wrk.SETTINGS)}, POST /v1/signals, {what} (fresh event ids, random "
                f"Camden streets and place categories, Lua script): {r['rate']:,.0f} requests/s; "
                f"non-2xx {r['bad']}; {stored:,} signals recorded for {answered:,} wrk saw accepted (the "
                f"rest were in flight when wrk stopped); server CPU {r['cpu_ms_per_request']:.2f} ms per "
                f"request ({r['server_cores']:.2f} cores); machine {r['machine_busy']:.0%} busy of "
                f"{os.cpu_count()} cores (wrk, ingest, Kafka, PostgreSQL share them: {bottleneck} is the "
                "bottleneck); each request one transaction that waits for the broker's acks (acks=all) "
                "before it commits; 1 uvicorn process, no other service running",
            },
            {"benchmark": f"ingest.wrk.{name}.p50", "value": r["p50"], "unit": "ms", "notes": ""},
            {"benchmark": f"ingest.wrk.{name}.p99", "value": r["p99"], "unit": "ms", "notes": ""},
            {"benchmark": f"ingest.wrk.{name}.max", "value": r["max"], "unit": "ms", "notes": ""},
        ]
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
        rows = asyncio.run(_bench(env, url, port, key, system_id, gaz))
        return rows + _wrk_rows(url, port, proc.pid, key, system_id, gaz)
    finally:
        if proc is not None:
            proc.terminate()
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
        asyncio.run(drop_database(admin, url))
