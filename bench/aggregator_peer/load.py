"""Benchmark load: realistic SignalAnonymised events, produced to the registry topic, and its offsets.

Streets are the gazetteer's real ids (the records' keys; partitioned as ingest partitions them when
given the gazetteer's `partition_key`); categories follow the simulator's mix (its per-day baselines,
place categories split by the real FixMyStreet report shares); subjects are random 64-hex pseudonyms;
a share of events withdraw an earlier raise. Times are coarsened as ingest coarsens them and fall in
the last six days, inside every category's lifetime, so every raise not withdrawn is active.
"""

from __future__ import annotations

import datetime as dt
import random
import time
import uuid
from collections.abc import Callable, Sequence
from pathlib import Path

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import OffsetAndMetadata

from shared.contracts import SIGNALS_ANONYMISED, Category, Sensitivity, SignalAnonymised, info
from shared.kafka import partitioned_by
from simulator.model import BASELINE_PER_DAY
from simulator.reference import load_reference

__all__ = [
    "Record",
    "category_weights",
    "commit_group",
    "end_offsets",
    "offsets_at",
    "partitions",
    "place_signals",
    "produce",
    "signal_mix",
]

ROOT = Path(__file__).resolve().parents[2]
Record = tuple[bytes, bytes]  # (key, value)
WITHDRAWN_SHARE = 0.2
SPAN = dt.timedelta(days=6)


def category_weights() -> dict[Category, float]:
    """Arrivals per day of each category at the simulator's baseline."""
    weights = {
        Category.ISOLATION: BASELINE_PER_DAY["isolation"],
        Category.OVERCROWDING: BASELINE_PER_DAY["overcrowding"],
    }
    # The repository's copy, wherever the simulator's default points.
    for category, share in load_reference(ROOT / "data" / "camden").category_mix().items():
        weights[category] = BASELINE_PER_DAY["place"] * share
    return weights


def _coarse(category: Category, at: dt.datetime) -> dt.datetime:
    if info(category).sensitivity is Sensitivity.PERSON:
        return at.replace(hour=0, minute=0, second=0, microsecond=0)
    return at.replace(minute=0, second=0, microsecond=0)


def _event(category: Category, action: str, street_id: str, subject: str, at: dt.datetime) -> Record:
    event = SignalAnonymised(
        event_id=uuid.uuid4(),
        category=category,
        sensitivity=info(category).sensitivity,
        action=action,
        street_id=street_id,
        subject_key=subject,
        key_version=1,
        occurred_at=_coarse(category, at),
        council_id="camden",
        source="kafka",
    )
    return street_id.encode(), event.model_dump_json().encode()


def signal_mix(
    streets: Sequence[tuple[str, int]], n: int, rng: random.Random, now: dt.datetime
) -> list[Record]:
    """`n` events over `streets` ((id, address count)): person signals where people live, place
    signals along any street; WITHDRAWN_SHARE of them withdraw an open raise."""
    weights = category_weights()
    categories, cat_weights = list(weights), list(weights.values())
    ids = [s for s, _ in streets]
    homes = [max(a, 0) + 1 for _, a in streets]
    open_: list[tuple[Category, str, str, dt.datetime]] = []
    out: list[Record] = []
    for _ in range(n):
        if open_ and rng.random() < WITHDRAWN_SHARE:
            category, street_id, subject, raised = open_.pop(rng.randrange(len(open_)))
            at = raised + (now - raised) * rng.random()
            out.append(_event(category, "withdrawn", street_id, subject, at))
            continue
        category = rng.choices(categories, cat_weights)[0]
        person = info(category).sensitivity is Sensitivity.PERSON
        street_id = rng.choices(ids, homes)[0] if person else rng.choice(ids)
        subject, at = rng.randbytes(32).hex(), now - SPAN * rng.random()
        open_.append((category, street_id, subject, at))
        out.append(_event(category, "raised", street_id, subject, at))
    return out


def place_signals(
    street_ids: Sequence[str], per_street: int, rng: random.Random, now: dt.datetime
) -> list[Record]:
    """`per_street` raised place signals (distinct subjects) on every street: all of them active."""
    places = [
        c for c, w in sorted(category_weights().items()) if w and info(c).sensitivity is Sensitivity.PLACE
    ]
    return [
        _event(rng.choice(places), "raised", s, rng.randbytes(32).hex(), now - SPAN * rng.random())
        for s in street_ids
        for _ in range(per_street)
    ]


async def produce(
    bootstrap: str,
    records: Sequence[Record],
    topic: str = SIGNALS_ANONYMISED.name,
    *,
    partition_key: Callable[[str], str] | None = None,
) -> None:
    """Produce everything and wait for every acknowledgement (the producer settings ingest uses);
    `partition_key`: partition by it of each record's key, as ingest partitions by the gazetteer's
    `partition_key` (Kafka's default otherwise: by the key)."""
    options = {"partitioner": partitioned_by(partition_key)} if partition_key is not None else {}
    producer = AIOKafkaProducer(
        bootstrap_servers=bootstrap.split(","),
        acks="all",
        enable_idempotence=True,
        linger_ms=20,
        max_batch_size=512 * 1024,
        client_id="bench-aggregator-load",
        **options,
    )
    await producer.start()
    try:
        pending = []
        for key, value in records:
            pending.append(await producer.send(topic, value=value, key=key))
            if len(pending) >= 20_000:  # bound what is in flight
                for fut in pending:
                    await fut
                pending.clear()
        for fut in pending:
            await fut
    finally:
        await producer.stop()


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    # The admin client: a consumer's partitions_for_topic knows only topics it already follows.
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap.split(","))
    await admin.start()
    try:
        (found,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(found["partitions"], key=lambda p: p["partition"])
    ]


async def end_offsets(bootstrap: str, topic: str = SIGNALS_ANONYMISED.name) -> dict[int, int]:
    """The next offset to be written, per partition."""
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    await consumer.start()
    try:
        return {tp.partition: o for tp, o in (await consumer.end_offsets(tps)).items()}
    finally:
        await consumer.stop()


async def offsets_at(bootstrap: str, at: dt.datetime, topic: str = SIGNALS_ANONYMISED.name) -> dict[int, int]:
    """Per partition, the first offset written at or after `at` (the end offset when none was)."""
    tps = await partitions(bootstrap, topic)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    await consumer.start()
    try:
        found = await consumer.offsets_for_times({tp: int(at.timestamp() * 1000) for tp in tps})
        ends = await consumer.end_offsets(tps)
        return {tp.partition: (found[tp].offset if found.get(tp) else ends[tp]) for tp in tps}
    finally:
        await consumer.stop()


async def records_since(bootstrap: str, at: dt.datetime, topic: str) -> list[tuple[int, bytes | None]]:
    """(timestamp in ms, value) of every record written to `topic` at or after `at`, up to its end now."""
    start, ends = await offsets_at(bootstrap, at, topic), await end_offsets(bootstrap, topic)
    tps = [TopicPartition(topic, p) for p, offset in start.items() if offset < ends[p]]
    if not tps:
        return []
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap.split(","), enable_auto_commit=False)
    await consumer.start()
    found: list[tuple[int, bytes | None]] = []
    try:
        consumer.assign(tps)
        for tp in tps:
            consumer.seek(tp, start[tp.partition])
        left, deadline = set(tps), time.monotonic() + 120
        while left and time.monotonic() < deadline:
            for tp, records in (await consumer.getmany(*left, timeout_ms=1000)).items():
                found += [(r.timestamp, r.value) for r in records if r.offset < ends[tp.partition]]
            # By position, not by the last record's offset: the end may lie past records a consumer
            # is never given (a transaction's markers).
            left = {tp for tp in left if await consumer.position(tp) < ends[tp.partition]}
    finally:
        await consumer.stop()
    return found


async def commit_group(bootstrap: str, group: str, topic: str, offsets: dict[int, int]) -> None:
    """Store a consumer group's positions before it first runs, so it starts exactly there."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group, enable_auto_commit=False
    )
    await consumer.start()
    try:
        consumer.assign([TopicPartition(topic, p) for p in offsets])
        await consumer.commit(
            {TopicPartition(topic, p): OffsetAndMetadata(o, "") for p, o in offsets.items()}
        )
    finally:
        await consumer.stop()
