"""Aggregator benchmarks: throughput (1 and 2 replicas) against a Quix Streams peer and against
Kafka's own ConsumerPerformance (the ceiling) on the same broker, a 1,000,000-event bulk load to
published state, ingest-to-street-needs latency for place categories, and memory per 10,000 active
streets.

Everything runs against the real broker and a fresh PostgreSQL database (dropped afterwards). The
aggregator reads the registry topic, so each run stores its position at the first benchmark event
(AGGREGATOR_REPLAY_FROM; the peer's group offsets are pre-committed to the same offsets) and progress
is read from where each system keeps it: the aggregator's offsets table, committed in the same
transaction as its state, and the peer's committed group offsets.
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
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path

import asyncpg
import httpx
from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient

from bench.aggregator_peer import db, load
from bench.aggregator_peer.procs import Proc, free_port, rss_bytes, start
from bench.kafka_tools.perf import kafka_perf
from shared.contracts import COUNCIL_SIGNALS, SIGNALS_ANONYMISED, STREET_NEEDS, Sensitivity, info
from shared.db import drop_database

__all__ = ["run"]

BULK = 100_000  # the side-by-side run with Quix Streams
BULK_LARGE = 1_000_000  # the register load: to published state
LATENCY_SAMPLES = 200
LATENCY_RATE = 20.0  # samples sent per second
ACTIVE_STREETS = 10_000
SIGNALS_PER_STREET = 3
CATCH_UP_TIMEOUT_S = 150.0
# How often `follow` reads the positions. A system that is done is seen done up to one poll late, and
# that lag lands in its rate's time: at 0.2 s, up to 12% of the aggregator's ~1.7 s on the 100k load
# (6% on average), up to 3% of the peer's ~6 s. A poll is one small query (or an admin request) and
# a /proc read.
FOLLOW_POLL_S = 0.05
CORES = os.cpu_count()
MB = 1024 * 1024
PLACE = [c for c in sorted(load.category_weights()) if info(c).sensitivity is Sensitivity.PLACE]


def _row(benchmark: str, value: float, unit: str, notes: str) -> dict:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit, "notes": notes}


@dataclass
class CatchUp:
    events: int  # events between the start and target offsets
    processed: int  # of those, applied when we stopped watching
    wall_s: float  # from process start to caught up (or to giving up)
    rate: float  # events/s between the first progress seen and the end
    peak_rss: int  # largest RSS seen over the watched processes
    published: bool = False  # the outbox was seen empty afterwards (wall_s then counts to that)

    @property
    def done(self) -> bool:
        return self.processed >= self.events


async def follow(
    read: Callable[[], Awaitable[dict[int, int]]],
    begin: dict[int, int],
    target: dict[int, int],
    started: float,
    pids: list[int],
) -> CatchUp:
    """Poll a system's positions until every partition reaches `target` (bounded)."""
    events = sum(target[p] - begin[p] for p in target)
    first: tuple[float, int] | None = None
    peak = 0
    while True:
        positions = await read()
        now = time.perf_counter()
        peak = max([peak, *(rss_bytes(p) for p in pids)])
        done = sum(min(max(positions.get(p, begin[p]), begin[p]), target[p]) - begin[p] for p in target)
        if first is None and done > 0:
            first = (now, done)
        if done >= events or now - started > CATCH_UP_TIMEOUT_S:
            if first is not None and now - first[0] > 1.0 and done > first[1]:
                rate = (done - first[1]) / (now - first[0])
            else:
                rate = done / (now - started)
            return CatchUp(events, done, now - started, rate, peak)
        await asyncio.sleep(FOLLOW_POLL_S)


def _aggregator_env(url: str, kafka: str, group: str, port: int, replay_from: dt.datetime) -> dict:
    # asyncpg passes unknown DSN parameters on as server settings: the service's SQL names its
    # tables without their schema.
    return {
        "DATABASE_URL": f"{url}?search_path=aggregator,public",
        "KAFKA_BOOTSTRAP_SERVERS": kafka,
        "AGGREGATOR_GROUP_ID": group,
        "AGGREGATOR_PORT": str(port),
        "AGGREGATOR_REPLAY_FROM": replay_from.isoformat(),
        "LOG_LEVEL": "WARNING",
    }


def _aggregators(n: int, url: str, kafka: str, replay_from: dt.datetime, logs: Path, tag: str) -> list[Proc]:
    group = f"bench-aggregator-{uuid.uuid4().hex[:10]}"
    procs = []
    for i in range(n):
        port = free_port()
        procs.append(
            start(
                f"aggregator-{tag}-{i}",
                ["-m", "services.aggregator"],
                _aggregator_env(url, kafka, group, port, replay_from),
                logs,
                port,
            )
        )
    return procs


async def _aggregator_catch_up(
    n: int,
    url: str,
    kafka: str,
    replay_from: dt.datetime,
    begin: dict[int, int],
    target: dict[int, int],
    logs: Path,
    *,
    published: bool = False,
) -> CatchUp:
    """`n` replicas from a reset state until every event is applied (and, with `published`, until
    the outbox is empty too: every change is on street-needs, wall_s then counts to that)."""
    await db.reset_aggregator(url)
    conn = await asyncpg.connect(url)
    started = time.perf_counter()
    procs = _aggregators(n, url, kafka, replay_from, logs, f"x{n}")
    try:
        caught = await follow(lambda: db.stored_offsets(conn), begin, target, started, [p.pid for p in procs])
        if published and caught.done:
            while time.perf_counter() - started < CATCH_UP_TIMEOUT_S:
                if not await conn.fetchval("SELECT count(*) FROM aggregator.outbox"):
                    caught.wall_s = time.perf_counter() - started
                    caught.published = True
                    break
                await asyncio.sleep(0.05)
        return caught
    finally:
        for p in procs:
            p.stop()
        await conn.close()


async def _peer_catch_up(
    kafka: str, begin: dict[int, int], target: dict[int, int], logs: Path, guarantee: str = "at-least-once"
) -> CatchUp:
    """The Quix Streams peer from `begin` until its group has committed `target`, with Quix's
    `processing_guarantee` (exactly-once commits outputs, changelog and offsets in one transaction)."""
    tag = uuid.uuid4().hex[:10]
    group, output = f"bench-quix-{tag}", f"bench-quix-{tag}-counts"
    await load.commit_group(kafka, group, SIGNALS_ANONYMISED.name, begin)
    admin = AIOKafkaAdminClient(bootstrap_servers=kafka.split(","))
    await admin.start()

    async def committed() -> dict[int, int]:
        found = await admin.list_consumer_group_offsets(group)
        return {
            tp.partition: om.offset
            for tp, om in found.items()
            if tp.topic == SIGNALS_ANONYMISED.name and om.offset >= 0
        }

    with tempfile.TemporaryDirectory(prefix="bench-quix-") as state_dir:
        started = time.perf_counter()
        proc = start(
            "quix-peer",
            ["bench/aggregator_peer/quix_count.py"],
            {
                "PEER_BOOTSTRAP": kafka,
                "PEER_GROUP": group,
                "PEER_STATE_DIR": state_dir,
                "PEER_OUTPUT_TOPIC": output,
                "PEER_GUARANTEE": guarantee,
            },
            logs,
        )
        try:
            result = await follow(committed, begin, target, started, [proc.pid])
        finally:
            proc.stop()
    try:
        # The peer's own topics (output, changelog) hold nothing anyone needs after the run; its
        # group's offsets expire with the broker's offsets.retention (aiokafka cannot delete groups).
        mine = [t for t in await admin.list_topics() if tag in t]
        if mine:
            await admin.delete_topics(mine)
    finally:
        await admin.close()
    if not result.done:
        raise RuntimeError(f"Quix peer did not catch up:\n{proc.tail()}")
    return result


async def _system_key(url: str, logs: Path) -> str:
    """A council system for the latency samples, made with the ingest CLI (no rate limit to speak of)."""
    key_file = logs / "keys.env"
    proc = start(
        "create-system",
        [
            "-m",
            "services.cli",
            "ingest",
            "create-system",
            "bench latency",
            "--council",
            "camden",
            "--rate-per-minute",
            "1000000",
            "--key-file",
            str(key_file),
        ],
        {"DATABASE_URL": url},
        logs,
    )
    if await asyncio.to_thread(proc.popen.wait, 60) != 0:
        raise RuntimeError(f"create-system failed:\n{proc.tail()}")
    return key_file.read_text().strip().partition("=")[2]


async def _latency(
    url: str, kafka: str, streets: list[tuple[str, int]], logs: Path
) -> tuple[list[float], int, int]:
    """Post place signals to ingest, each on its own street, and time each until a
    StreetNeedChanged for its street and category is read from street-needs by a real consumer.
    Returns (latencies in ms, samples sent, aggregator RSS at rest)."""
    api_key = await _system_key(url, logs)
    ingest_group = f"bench-ingest-{uuid.uuid4().hex[:10]}"
    # Start the ingest group at the end of the raw topic: it must not re-read others' raw input.
    await load.commit_group(
        kafka, ingest_group, COUNCIL_SIGNALS.name, await load.end_offsets(kafka, COUNCIL_SIGNALS.name)
    )
    port = free_port()
    ingest = start(
        "ingest",
        ["-m", "services.ingest"],
        {
            "DATABASE_URL": url,
            "KAFKA_BOOTSTRAP_SERVERS": kafka,
            "INGEST_PORT": str(port),
            "INGEST_PSEUDONYM_KEYS": f"1:{secrets.token_hex(24)}",
            "INGEST_PSEUDONYM_KEY_VERSION": "1",
            "INGEST_CONSUMER_GROUP": ingest_group,
            "LOG_LEVEL": "WARNING",
        },
        logs,
        port,
    )
    (aggregator,) = _aggregators(1, url, kafka, dt.datetime.now(dt.UTC), logs, "latency")
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka.split(","), enable_auto_commit=False)
    try:
        await asyncio.gather(ingest.ready(), aggregator.ready())
        await asyncio.sleep(2)
        rest_rss = rss_bytes(aggregator.pid)
        await consumer.start()
        consumer.assign(await load.partitions(kafka, STREET_NEEDS.name))
        await consumer.seek_to_end()
        for tp in consumer.assignment():
            await consumer.position(tp)
        rng = random.Random(7)
        chosen = rng.sample([s for s, a in streets if a >= 8], LATENCY_SAMPLES)
        samples = [(s, rng.choice(PLACE)) for s in chosen]
        sent: dict[tuple[str, str], float] = {}
        seen: dict[tuple[str, str], float] = {}

        async def post(client: httpx.AsyncClient, i: int, street: str, category: str) -> None:
            await asyncio.sleep(i / LATENCY_RATE)
            body = {
                "event_id": f"bench-latency-{uuid.uuid4()}",
                "category": str(category),
                "action": "raised",
                "subject_ref": f"bench-{uuid.uuid4()}",
                "occurred_at": dt.datetime.now(dt.UTC).isoformat(),
                "location": {"street_id": street},
            }
            sent[(street, str(category))] = time.perf_counter()
            r = await client.post(
                f"http://127.0.0.1:{port}/v1/signals",
                json=body,
                headers={"Authorization": f"Bearer {api_key}"},
            )
            if r.status_code != 202:
                raise RuntimeError(f"ingest answered {r.status_code}: {r.text[:300]}")

        async def watch() -> None:
            deadline = time.perf_counter() + LATENCY_SAMPLES / LATENCY_RATE + 30
            while len(seen) < len(samples) and time.perf_counter() < deadline:
                batches = await consumer.getmany(timeout_ms=100)
                now = time.perf_counter()
                for rec in (r for rs in batches.values() for r in rs if r.value):
                    need = json.loads(rec.value)
                    for street in need["street_ids"]:
                        key = (street, need["category"])
                        if key in sent and key not in seen and sent[key] < now:
                            seen[key] = now

        async with httpx.AsyncClient(timeout=30) as client:
            await asyncio.gather(watch(), *(post(client, i, s, c) for i, (s, c) in enumerate(samples)))
        return [(seen[k] - sent[k]) * 1000 for k in seen], len(sent), rest_rss
    finally:
        await consumer.stop()
        aggregator.stop()
        ingest.stop()


async def _memory(admin_url: str, kafka: str, gazetteer, logs: Path) -> dict:
    """RSS and table sizes of one aggregator before and after every street of a ~10k-street
    gazetteer has active place signals."""
    copies = -(-ACTIVE_STREETS // len(gazetteer.streets))
    big = db.cloned(gazetteer, copies)
    url = await db.database_with(admin_url, big)
    try:
        replay_from = dt.datetime.now(dt.UTC)
        (proc,) = _aggregators(1, url, kafka, replay_from, logs, "memory")
        conn = await asyncpg.connect(url)
        try:
            await proc.ready(120)
            await asyncio.sleep(3)
            rest = rss_bytes(proc.pid)
            records = load.place_signals(
                sorted(big.streets), SIGNALS_PER_STREET, random.Random(11), dt.datetime.now(dt.UTC)
            )
            begin = await load.end_offsets(kafka)
            started = time.perf_counter()
            await load.produce(kafka, records, partition_key=big.partition_key)
            target = await load.end_offsets(kafka)
            caught = await follow(lambda: db.stored_offsets(conn), begin, target, started, [proc.pid])
            for _ in range(120):  # let the outbox relay finish publishing (at most a minute)
                if not await conn.fetchval("SELECT count(*) FROM aggregator.outbox"):
                    break
                await asyncio.sleep(0.5)
            await asyncio.sleep(2)
            loaded = rss_bytes(proc.pid)
            active = await conn.fetchval("SELECT count(DISTINCT street_id) FROM aggregator.signals")
            sizes = await db.table_bytes(conn)
        finally:
            await conn.close()
            proc.stop()
        return {
            "streets": len(big.streets),
            "active": active,
            "rest": rest,
            "loaded": loaded,
            "peak": caught.peak_rss,
            "sizes": sizes,
            "events": len(records),
            "caught": caught,
        }
    finally:
        await drop_database(admin_url, url)


async def _large_bulk(
    url: str,
    kafka: str,
    streets: list[tuple[str, int]],
    partition_key: Callable[[str], str],
    logs: Path,
    machine: str,
    rate_100k: float,
) -> list[dict]:
    """BULK_LARGE events (partitioned by `partition_key` of their streets, as ingest does) to published
    state with 1 and 2 replicas; then Kafka's own ConsumerPerformance on as many records of the same
    size, same broker: the ceiling."""
    now = dt.datetime.now(dt.UTC)
    records = await asyncio.to_thread(load.signal_mix, streets, BULK_LARGE, random.Random(5), now)
    size = sum(len(v) for _, v in records) // len(records)
    replay_from = dt.datetime.now(dt.UTC)
    begin = await load.end_offsets(kafka)
    await load.produce(kafka, records, partition_key=partition_key)
    del records
    target = await load.end_offsets(kafka)
    begin = {p: min(o, begin[p]) for p, o in (await load.offsets_at(kafka, replay_from)).items()}
    rows = []
    results = {}
    for n in (1, 2):
        c = await _aggregator_catch_up(n, url, kafka, replay_from, begin, target, logs, published=True)
        results[n] = c
        state = (
            ""
            if c.published
            else f" NOT published within {CATCH_UP_TIMEOUT_S:.0f} s ({c.processed:,} applied);"
        )
        rows.append(
            _row(
                f"aggregator.bulk_1m_to_published.{n}_replica{'s' if n > 1 else ''}",
                c.wall_s,
                "s",
                f"{c.events:,} SignalAnonymised events already on the topic (the simulator's mix, "
                f"{len(streets)} Camden streets): from process start (incl. start-up) until every "
                f"event is applied and the outbox is empty (every change on street-needs);{state} "
                f"{c.rate:,.0f} events/s while applying; peak RSS {c.peak_rss / MB:.0f} MB; {machine}",
            )
        )
    perf = await asyncio.to_thread(kafka_perf, kafka, records=BULK_LARGE, record_size=size)
    tools = (
        f"Apache Kafka's own tools (kafka-tools, the broker's version) on the same broker: "
        f"{perf.records:,} records of {perf.record_size} B (the signals' mean size), "
        f"{perf.partitions} partitions"
    )
    rows += [
        _row(
            "kafka.producer_performance",
            perf.produced_per_s,
            "records/s",
            f"{tools}; ProducerPerformance acks=all, idempotent, linger 20 ms, avg latency "
            f"{perf.produce_latency_avg_ms:.0f} ms",
        ),
        _row(
            "kafka.consumer_performance",
            perf.fetch_per_s,
            "records/s",
            f"{tools}; ConsumerPerformance fetch.nMsg.sec (over the whole run incl. joining the "
            f"group: {perf.consumed_per_s:,.0f}/s); reads and counts, applies nothing",
        ),
        _row(
            "aggregator.vs_kafka_consumer_performance",
            100 * results[1].rate / perf.fetch_per_s,
            "%",
            f"aggregator 1 replica {results[1].rate:,.0f} events/s on the 1M load (100k run: "
            f"{rate_100k:,.0f}/s; 2 replicas: {results[2].rate:,.0f}/s = "
            f"{100 * results[2].rate / perf.fetch_per_s:.1f}%) / ConsumerPerformance "
            f"{perf.fetch_per_s:,.0f} records/s",
        ),
    ]
    return rows


async def _run(env: dict[str, str]) -> list[dict]:
    kafka, admin_url = env["KAFKA_BOOTSTRAP_SERVERS"], env["DATABASE_URL"]
    rows: list[dict] = []
    machine = f"{CORES} CPU cores shared by broker, PostgreSQL and the processes measured"
    gazetteer = await asyncio.to_thread(db.camden_gazetteer)
    streets = sorted((s.id, s.address_count) for s in gazetteer.streets.values())
    with tempfile.TemporaryDirectory(prefix="bench-aggregator-") as tmp:
        logs = Path(tmp)
        url = await db.database_with(admin_url, gazetteer)
        try:
            latencies, sent, camden_rest = await _latency(url, kafka, streets, logs)
            if latencies:
                q = statistics.quantiles(latencies, n=100)
                how = (
                    f"{len(latencies)}/{sent} place signals POSTed one by one to ingest at "
                    f"{LATENCY_RATE:.0f}/s, each on its own street; time to the StreetNeedChanged "
                    f"read by a real consumer; default settings (the outbox relay wakes on commit)"
                )
                rows += [
                    _row("aggregator.latency.ingest_to_street_needs.p50", q[49], "ms", how),
                    _row("aggregator.latency.ingest_to_street_needs.p99", q[98], "ms", how),
                ]

            now = dt.datetime.now(dt.UTC)
            records = load.signal_mix(streets, BULK, random.Random(3), now)
            raised = sum(b'"raised"' in v for _, v in records)
            begin = await load.end_offsets(kafka)
            replay_from = dt.datetime.now(dt.UTC)
            t = time.perf_counter()
            await load.produce(kafka, records, partition_key=gazetteer.partition_key)
            produce_s = time.perf_counter() - t
            target = await load.end_offsets(kafka)
            begin = {p: min(o, begin[p]) for p, o in (await load.offsets_at(kafka, replay_from)).items()}
            events = sum(target.values()) - sum(begin.values())
            mix = (
                f"{events} SignalAnonymised events ({raised} raised, {BULK - raised} withdrawn; "
                f"{len(streets)} Camden streets, the simulator's category mix)"
            )
            rows.append(
                _row(
                    "aggregator.load.produce_rate",
                    BULK / produce_s,
                    "events/s",
                    f"aiokafka producer, acks=all, idempotent: {mix}",
                )
            )

            one = await _aggregator_catch_up(1, url, kafka, replay_from, begin, target, logs)
            two = await _aggregator_catch_up(2, url, kafka, replay_from, begin, target, logs)
            peer = await _peer_catch_up(kafka, begin, target, logs)
            peer_eos = await _peer_catch_up(kafka, begin, target, logs, "exactly-once")
            for n, c in ((1, one), (2, two)):
                state = "" if c.done else f" NOT caught up: {c.processed}/{c.events} in the time limit;"
                rows.append(
                    _row(
                        f"aggregator.throughput.{n}_replica{'s' if n > 1 else ''}",
                        c.rate,
                        "events/s",
                        f"{mix}, folded into PostgreSQL with offsets in the same transaction;"
                        f"{state} peak RSS {c.peak_rss / MB:.0f} MB; ratio to Quix Streams "
                        f"{c.rate / peer.rate:.2f}; {machine}",
                    )
                )
                rows.append(
                    _row(
                        f"aggregator.bulk_100k.{n}_replica{'s' if n > 1 else ''}",
                        c.wall_s,
                        "s",
                        f"from process start (incl. start-up) until all {c.events} events were "
                        f"applied; {machine}",
                    )
                )
            rows.append(
                _row(
                    "peer.quixstreams.throughput",
                    peer.rate,
                    "events/s",
                    "Quix Streams 3 on the same events, broker and run: per street key, 7-day "
                    "tumbling window reducing to distinct subject_keys per category (raised adds, "
                    "withdrawn removes), RocksDB + changelog, at-least-once (Quix's default), one "
                    f"output per event; peak RSS {peer.peak_rss / MB:.0f} MB; {machine}",
                )
            )
            rows.append(
                _row(
                    "peer.quixstreams.exactly_once.throughput",
                    peer_eos.rate,
                    "events/s",
                    "the same Quix Streams job with processing_guarantee exactly-once (outputs, "
                    "changelog and offsets in one Kafka transaction per commit, every 1 s), as the "
                    "aggregator commits its state and offsets together; "
                    f"peak RSS {peer_eos.peak_rss / MB:.0f} MB; {machine}",
                )
            )
            rows.append(
                _row(
                    "aggregator.vs_quixstreams.ratio",
                    one.rate / peer.rate,
                    "x",
                    f"aggregator 1 replica {one.rate:.0f} events/s / Quix Streams at-least-once "
                    f"{peer.rate:.0f} events/s (2 replicas: {two.rate / peer.rate:.2f}x)",
                )
            )
            rows.append(
                _row(
                    "aggregator.vs_quixstreams.exactly_once.ratio",
                    one.rate / peer_eos.rate,
                    "x",
                    f"the same guarantee on both sides: aggregator 1 replica {one.rate:.0f} events/s / "
                    f"Quix Streams exactly-once {peer_eos.rate:.0f} events/s (2 replicas: "
                    f"{two.rate / peer_eos.rate:.2f}x)",
                )
            )
            rows += await _large_bulk(url, kafka, streets, gazetteer.partition_key, logs, machine, one.rate)
        finally:
            await drop_database(admin_url, url)

        mem = await _memory(admin_url, kafka, gazetteer, logs)
        per = ACTIVE_STREETS / mem["active"]
        rows.append(
            _row(
                "aggregator.memory.rss_per_10k_active_streets",
                (mem["loaded"] - mem["rest"]) * per / MB,
                "MB",
                f"RSS after {mem['events']} active place signals on {mem['active']} streets "
                f"minus RSS at rest ({mem['rest'] / MB:.0f} MB with a {mem['streets']}-street "
                f"gazetteer: Camden x{-(-ACTIVE_STREETS // len(streets))}); peak "
                f"{mem['peak'] / MB:.0f} MB; state lives in PostgreSQL",
            )
        )
        rows.append(
            _row(
                "aggregator.memory.gazetteer_rss_per_10k_streets",
                (mem["rest"] - camden_rest) / (mem["streets"] - len(streets)) * 10_000 / MB,
                "MB",
                f"RSS at rest with {mem['streets']} vs {len(streets)} gazetteer streets "
                f"({mem['rest'] / MB:.0f} vs {camden_rest / MB:.0f} MB): the in-memory areas",
            )
        )
        sizes = mem["sizes"]
        rows.append(
            _row(
                "aggregator.postgres.bytes_per_10k_active_streets",
                sum(sizes.values()) * per / MB,
                "MB",
                "pg_total_relation_size of "
                + ", ".join(f"{t} {b / MB:.1f}" for t, b in sizes.items())
                + f" MB for {mem['active']} active streets x {SIGNALS_PER_STREET} signals",
            )
        )
    return rows


def run(env: dict[str, str]) -> list[dict]:
    return asyncio.run(_run(env))


if __name__ == "__main__":
    for row in run(dict(os.environ)):
        print(json.dumps(row))
