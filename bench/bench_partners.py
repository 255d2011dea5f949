"""Partner benchmark: changes stored per second, deliveries/s and publish-to-receipt latency of webhooks.

The real partner service runs as a subprocess on a fresh database, with its consumer group's
positions stored at the end of `street-needs.v1`, so it starts with this run (other producers' records
arriving meanwhile are consumed too; the webhook filters on a ward of our own). A backlog of changes
published before the service starts gives the consumer's store rate (its first stored batch to its
last, read from the database). A partner is then created with `create-partner`, a webhook
registered over HTTP points at a receiver subprocess on loopback that verifies every Standard
Webhooks signature with the `standardwebhooks` library and notes when each delivery arrived. A burst
of changes published at once gives publish-to-receipt latency (consumption, storage, queueing and
delivery together); replaying that burst through the webhook replay endpoint, which queues it in one
transaction, gives the delivery worker's own rate; changes sent one at a time give the latency of an
idle queue.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import os
import random
import secrets
import statistics
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import asyncpg
import httpx
from aiokafka import AIOKafkaProducer

from bench.aggregator_peer import load
from bench.aggregator_peer.procs import Proc, free_port, start
from services.partners.delivery import PIPELINE
from services.partners.handlers import MAX_RECORDS
from services.partners.settings import PartnersSettings
from shared.contracts import CATALOGUE, STREET_NEEDS, Sensitivity, StreetNeedChanged, info
from shared.db import create_database, drop_database

__all__ = ["run"]

BACKLOG = 20_000  # changes waiting on the topic when the service starts: the store rate
BURST = 5_000
SINGLES = 20  # changes published one at a time, each once the previous one was delivered
WAIT_S = 150.0  # give up waiting for deliveries after this long
CORES = os.cpu_count()
PLACE = sorted(c for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE)


def _default(field: str) -> Any:
    return PartnersSettings.model_fields[field].default


def _row(benchmark: str, value: float, unit: str, notes: str = "") -> dict:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit, "notes": notes}


def _pct(values: list[float], q: int) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1] if len(values) > 1 else values[0]


# --- the receiver (runs in its own process: `python -m bench.bench_partners receive PORT`) ---------


def _receiver_app(secret: str):
    from standardwebhooks import Webhook
    from starlette.applications import Starlette
    from starlette.requests import Request
    from starlette.responses import JSONResponse, Response
    from starlette.routing import Route

    verifier = Webhook(secret)
    arrivals: list[tuple[str, str, float]] = []  # (webhook-id, area_id, arrival time), repeats kept
    counts = {"requests": 0, "bad_signature": 0}

    async def hook(request: Request) -> Response:
        body = await request.body()
        now = time.time()
        counts["requests"] += 1
        try:
            payload = verifier.verify(body, dict(request.headers))
        except Exception:  # any verification failure is counted, and refused like a real partner would
            counts["bad_signature"] += 1
            return Response(status_code=400)
        arrivals.append((request.headers["webhook-id"], payload["data"]["area_id"], now))
        return Response(status_code=204)

    async def stats(request: Request) -> Response:
        return JSONResponse({**counts, "arrivals": arrivals})

    async def ready(request: Request) -> Response:
        return Response("ok")

    return Starlette(
        routes=[Route("/hook", hook, methods=["POST"]), Route("/stats", stats), Route("/readyz", ready)]
    )


def _receive(port: int) -> None:
    import uvicorn

    uvicorn.run(
        _receiver_app(os.environ["RECEIVER_SECRET"]),
        host="127.0.0.1",
        port=port,
        log_level="warning",
        access_log=False,
    )


# --- the benchmark ------------------------------------------------------------------------------


def _need(area_id: str, ward: str, i: int, now: dt.datetime) -> StreetNeedChanged:
    category = PLACE[i % len(PLACE)]
    return StreetNeedChanged(
        area_id=area_id,
        area_kind="street",
        area_name=f"Bench Street {i}",
        ward_code=ward,
        street_ids=(area_id,),
        category=category,
        sensitivity=info(category).sensitivity,
        count=1 + i % 7,
        since=now.date(),
        period="live",
        published_at=now.replace(second=0, microsecond=0),
        version=1,
    )


async def _publish(kafka: str, ward: str, tag: str, n: int) -> tuple[dict[str, float], list[str]]:
    """Publish `n` changes on new area ids at once: (area id -> send time, keys)."""
    now = dt.datetime.now(dt.UTC)
    producer = AIOKafkaProducer(
        bootstrap_servers=kafka.split(","), acks="all", enable_idempotence=True, linger_ms=5
    )
    await producer.start()
    sent: dict[str, float] = {}
    keys: list[str] = []
    try:
        pending = []
        for i in range(n):
            need = _need(f"bench-{tag}-{i:05d}", ward, i, now)
            sent[need.area_id] = time.time()
            keys.append(need.key)
            pending.append(
                await producer.send(STREET_NEEDS.name, need.model_dump_json().encode(), key=need.key.encode())
            )
        await asyncio.gather(*pending)
    finally:
        await producer.stop()
    return sent, keys


async def _tombstone(kafka: str, keys: list[str]) -> None:
    """Leave the compacted topic as we found it: every bench key no longer publishable."""
    producer = AIOKafkaProducer(bootstrap_servers=kafka.split(","), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        await asyncio.gather(*[await producer.send(STREET_NEEDS.name, None, key=k.encode()) for k in keys])
    finally:
        await producer.stop()


async def _stats(client: httpx.AsyncClient, port: int) -> dict:
    return (await client.get(f"http://127.0.0.1:{port}/stats")).json()


async def _wait_for(client: httpx.AsyncClient, port: int, prefix: str, n: int, after: float) -> dict:
    """Poll the receiver until `n` distinct deliveries for area ids starting with `prefix` arrived
    after `after` (or WAIT_S passed)."""
    deadline = time.monotonic() + WAIT_S
    while True:
        stats = await _stats(client, port)
        mine = [a for a in stats["arrivals"] if a[1].startswith(prefix) and a[2] >= after]
        if len({a[0] for a in mine}) >= n or time.monotonic() > deadline:
            return {**stats, "arrivals": mine}
        await asyncio.sleep(0.2)


async def _history_rows(url: str) -> int:
    conn = await asyncpg.connect(url)
    try:
        return await conn.fetchval("SELECT count(*) FROM partners.needs_history")
    finally:
        await conn.close()


@dataclass
class Drain:
    stored: int  # history rows of the backlog's ward at the end
    counted: int  # rows stored between the first look that found some and the last
    seconds: float
    complete: bool


async def _drain(url: str, ward: str, n: int, service: Proc) -> Drain:
    """Watch the service store a backlog of `n` changes: from the first look that finds rows stored to
    the first that finds `n` (the highest history id, an index look-up, so watching costs little)."""
    conn = None
    first: tuple[float, int] | None = None
    deadline = time.monotonic() + WAIT_S
    try:
        while time.monotonic() < deadline:
            if service.popen.poll() is not None:
                raise RuntimeError(f"the partner service exited:\n{service.tail()}")
            try:
                conn = conn or await asyncpg.connect(url)
                top = await conn.fetchval("SELECT coalesce(max(id), 0) FROM partners.needs_history")
            except asyncpg.UndefinedTableError:  # the service has not migrated its schema yet
                top = 0
            now = time.monotonic()
            if top and first is None:
                first = (now, top)
            if first is not None and top >= n:
                break
            await asyncio.sleep(0.02)
        assert conn is not None
        stored = await conn.fetchval("SELECT count(*) FROM partners.needs_history WHERE ward_code = $1", ward)
    finally:
        if conn is not None:
            await conn.close()
    if first is None:
        return Drain(0, 0, float("nan"), False)
    return Drain(stored, top - first[1], now - first[0], stored == n)


@dataclass
class Burst:
    tag: str
    sent: int
    arrived: int
    duplicates: int
    bad_signature: int
    latencies_ms: list[float]
    end_to_end_s: float
    others_per_s: float  # other producers' records per second on the topic meanwhile
    stored_per_s: float  # changes the service stored per second (ours and everyone else's)
    keys: list[str]


async def _burst(kafka: str, url: str, ward: str, port: int, n: int) -> Burst:
    tag = secrets.token_hex(4)
    before = sum((await load.end_offsets(kafka, STREET_NEEDS.name)).values())
    stored = await _history_rows(url)
    began = time.time()
    async with httpx.AsyncClient(timeout=10) as client:
        sent, keys = await _publish(kafka, ward, tag, n)
        stats = await _wait_for(client, port, f"bench-{tag}-", n, began)
    took = time.time() - began
    after = sum((await load.end_offsets(kafka, STREET_NEEDS.name)).values())
    stored = await _history_rows(url) - stored
    first: dict[str, float] = {}
    for _, area, at in stats["arrivals"]:
        first.setdefault(area, at)
    return Burst(
        tag,
        n,
        len(first),
        len(stats["arrivals"]) - len(first),
        stats["bad_signature"],
        [(first[a] - sent[a]) * 1000 for a in sent if a in first],
        max(first.values()) - min(sent.values()) if first else float("nan"),
        (after - before - n) / took,
        stored / took,
        keys,
    )


async def _replay(
    client: httpx.AsyncClient, base: str, api_key: str, webhook_id: str, port: int, since: dt.datetime
) -> tuple[int, int, float]:
    """Queue every change since `since` again at once; (queued, delivered, first-to-last seconds)."""
    asked = time.time()
    response = await client.post(
        f"{base}/v1/webhooks/{webhook_id}/replay",
        headers={"Authorization": f"Bearer {api_key}"},
        params={"since": since.isoformat()},
    )
    response.raise_for_status()
    queued = response.json()["queued"]
    stats = await _wait_for(client, port, "bench-", queued, asked)
    times = sorted(a[2] for a in stats["arrivals"])
    return queued, len(times), (times[-1] - times[0]) if len(times) > 1 else float("nan")


async def _partner_and_webhook(
    service: Proc, env: dict[str, str], logs: Path, hook_port: int, ward: str
) -> tuple[str, str, str]:
    """`create-partner` (the documented CLI), then a webhook for our ward: (api key, id, secret)."""
    key_file = logs / "partner.env"
    cli = start(
        "create-partner",
        ["-m", "services.partners.cli", "create-partner", "Bench Partner", "--key-file", str(key_file)],
        env,
        logs,
    )
    if await asyncio.to_thread(cli.popen.wait, 60) != 0:
        raise RuntimeError(f"create-partner failed:\n{cli.tail()}")
    api_key = key_file.read_text().strip().split("=", 1)[1]
    await service.ready()
    async with httpx.AsyncClient(timeout=10) as client:
        response = await client.post(
            f"http://127.0.0.1:{service.port}/v1/webhooks",
            headers={"Authorization": f"Bearer {api_key}"},
            json={"url": f"http://127.0.0.1:{hook_port}/hook", "wards": [ward]},
        )
        response.raise_for_status()
    body = response.json()
    return api_key, body["id"], body["secret"]


async def _run(env: dict[str, str]) -> list[dict]:
    kafka, admin_url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    url = await create_database(admin_url, prefix="bench")
    group = f"bench-partners-{secrets.token_hex(6)}"
    # The topic is shared with whatever else runs: a ward code of our own makes the webhook match
    # only this run's changes (the service still consumes, stores and filters everything else).
    ward = f"BENCH{secrets.token_hex(5)}"
    procs: list[Proc] = []
    keys: list[str] = []
    with tempfile.TemporaryDirectory(prefix="bench-partners-") as tmp:
        logs = Path(tmp)
        try:
            # Positions stored first, so the service skips whatever the topic already holds.
            await load.commit_group(
                kafka, group, STREET_NEEDS.name, await load.end_offsets(kafka, STREET_NEEDS.name)
            )
            # The backlog waits on the topic before the service starts (its ward matches no webhook).
            store_ward = f"BENCH{secrets.token_hex(5)}"
            _, backlog_keys = await _publish(kafka, store_ward, secrets.token_hex(4), BACKLOG)
            keys += backlog_keys
            port, hook_port = free_port(), free_port()
            service_env = {
                "DATABASE_URL": url,
                "KAFKA_BOOTSTRAP_SERVERS": kafka,
                "PARTNERS_PORT": str(port),
                "PARTNERS_GROUP_ID": group,
                "PARTNERS_WEBHOOK_ALLOW_LOOPBACK": "true",
                "PARTNERS_LOAD_GAZETTEER": "false",
                "LOG_LEVEL": "WARNING",
            }
            service = start("partners", ["-m", "services.partners"], service_env, logs, port)
            procs.append(service)
            drain = await _drain(url, store_ward, BACKLOG, service)
            api_key, webhook_id, secret = await _partner_and_webhook(
                service, service_env, logs, hook_port, ward
            )
            receiver = start(
                "receiver",
                ["-m", "bench.bench_partners", "receive", str(hook_port)],
                {"RECEIVER_SECRET": secret},
                logs,
                hook_port,
            )
            procs.append(receiver)
            await receiver.ready()

            # Warm-up: the consumer group joins and the first delivery round runs before measuring.
            warm = await _burst(kafka, url, ward, hook_port, 5)
            keys += warm.keys
            singles = []
            for _ in range(SINGLES):
                # A random pause, so publishing is not in step with the worker's 1 s poll.
                await asyncio.sleep(random.random())
                one = await _burst(kafka, url, ward, hook_port, 1)
                keys += one.keys
                singles += one.latencies_ms
            since = dt.datetime.now(dt.UTC).replace(second=0, microsecond=0)
            burst = await _burst(kafka, url, ward, hook_port, BURST)
            keys += burst.keys
            async with httpx.AsyncClient(timeout=30) as client:
                queued, replayed, drain_s = await _replay(
                    client, f"http://127.0.0.1:{port}", api_key, webhook_id, hook_port, since
                )
        finally:
            for proc in reversed(procs):
                proc.stop()
            await drop_database(admin_url, url)
            if keys:
                await _tombstone(kafka, keys)

    setup = (
        f"partners service (1 process, default delivery settings: batch {_default('webhook_batch_size')}, "
        f"{PIPELINE} batches in flight, {_default('webhook_partner_concurrency')} per partner at once on "
        f"keep-alive connections, woken by NOTIFY when deliveries are queued and polling every "
        f"{_default('webhook_poll_interval_s'):g} s besides, timeout {_default('webhook_timeout_s'):g} s) "
        f"-> loopback receiver verifying every signature with standardwebhooks; {CORES} cores shared "
        f"by Kafka, PostgreSQL, the service, the receiver, the publisher and whatever else ran"
    )
    lost = (
        f"{burst.sent - burst.arrived} missing, {burst.duplicates} duplicates, "
        f"{burst.bad_signature} bad signatures"
    )
    shared = (
        f"meanwhile other producers wrote {burst.others_per_s:.0f} records/s to the shared topic, "
        f"which the service consumed and stored too ({burst.stored_per_s:.0f} changes/s stored and "
        "delivered over the burst's end-to-end time)"
    )
    how = (
        f"{burst.sent:,} StreetNeedChanged (place categories, new area ids, one ward the webhook filters "
        f"on) published to {STREET_NEEDS.name} at once; {lost}; {shared}"
    )
    complete = burst.arrived == burst.sent
    rows = [
        _row(
            "partners.webhooks.delivery_rate",
            replayed / drain_s,
            "deliveries/s",
            f"the delivery worker draining {queued:,} queued deliveries (POST /v1/webhooks/{{id}}/replay "
            f"queues them in one transaction), first to last received ({drain_s:.1f} s, {replayed:,} "
            f"received{'' if complete else '; originals of the burst were still arriving'}); {setup}",
        ),
        _row(
            "partners.webhooks.burst_end_to_end",
            burst.end_to_end_s,
            "s",
            f"{how}; first publish to last delivery received"
            if complete
            else f"{how}; NOT complete: time to the last of {burst.arrived:,} received in {WAIT_S:.0f} s",
        ),
        _row(
            "partners.consumer.store_rate",
            drain.counted / drain.seconds,
            "changes/s",
            f"a backlog of {BACKLOG:,} StreetNeedChanged waiting on {STREET_NEEDS.name} when the service "
            f"started, consumed and stored (needs upserted, history rows, the delivery-queue join, which "
            f"matched no webhook; one transaction per polled batch of up to {MAX_RECORDS}, offsets "
            f"committed after it): {drain.counted:,} rows from the first stored batch to the last in "
            f"{drain.seconds:.2f} s, read from the database every 20 ms; "
            + (
                f"{drain.stored:,}/{BACKLOG:,} stored"
                if drain.complete
                else f"NOT complete: {drain.stored:,}/{BACKLOG:,} stored in {WAIT_S:.0f} s"
            )
            + f"; {CORES} cores shared by Kafka, PostgreSQL, the service and the watcher",
        ),
    ]
    if burst.latencies_ms:
        rows += [
            _row(
                "partners.webhooks.latency.p50",
                _pct(burst.latencies_ms, 50),
                "ms",
                f"publish -> signed POST received, same burst ({burst.arrived:,} received)",
            ),
            _row("partners.webhooks.latency.p99", _pct(burst.latencies_ms, 99), "ms"),
        ]
    if singles:
        rows += [
            _row(
                "partners.webhooks.idle_latency.p50",
                _pct(singles, 50),
                "ms",
                f"publish -> signed POST received for {len(singles)}/{SINGLES} changes sent one at a "
                "time, at a random moment (an idle worker is woken by the NOTIFY of the transaction that "
                "queued the delivery)",
            ),
            _row("partners.webhooks.idle_latency.p99", _pct(singles, 99), "ms"),
        ]
    return rows


def run(env: dict[str, str]) -> list[dict]:
    return asyncio.run(_run(env))


if __name__ == "__main__":
    if sys.argv[1:2] == ["receive"]:
        _receive(int(sys.argv[2]))
    else:
        from bench.__main__ import bench_env

        for row in run(bench_env()):
            print(json.dumps(row))
