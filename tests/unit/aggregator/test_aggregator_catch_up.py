"""A consumer far behind folds its batches and leaves the place view to the last of them, or to one
a while later; one keeping up publishes with every batch. Each lane publishes the marks its own
deferred batches left."""

from __future__ import annotations

import time

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.aggregator import consumer as consumer_module
from services.aggregator.consumer import SignalConsumer, _Fetched
from services.aggregator.processing import BatchOutcome
from services.aggregator.settings import AggregatorSettings
from tests.support import OneConnection

TOPIC = "signals-anonymised.v1"


class Watermarks:
    """The broker's high watermarks as the last fetch reported them."""

    def __init__(self, ends: dict[TopicPartition, int]) -> None:
        self.ends = ends

    def highwater(self, tp: TopicPartition) -> int | None:
        return self.ends.get(tp)


def _consumer(ends: dict[TopicPartition, int], **settings: object) -> SignalConsumer:
    consumer = SignalConsumer(
        None,  # type: ignore[arg-type]  # nothing here reaches the database
        AggregatorSettings(
            database_url="postgresql://unused/unused",
            kafka_bootstrap_servers="127.0.0.1:1",
            _env_file=None,
            **settings,
        ),
        None,  # type: ignore[arg-type]
    )
    consumer.consumer = Watermarks(ends)  # type: ignore[assignment]
    return consumer


def _batch(tp: TopicPartition, start: int, n: int) -> _Fetched:
    records = [
        (o, ConsumerRecord(TOPIC, tp.partition, o, 0, 0, b"", b"", None, 0, 0, []))
        for o in range(start, start + n)
    ]
    return _Fetched({tp: 0}, {tp: records})  # type: ignore[dict-item]


async def test_a_batch_with_a_full_batch_behind_it_on_its_lane_defers() -> None:
    p0, p2, p1 = (TopicPartition(TOPIC, p) for p in (0, 2, 1))  # lanes: 0 and 2 share lane 0
    consumer = _consumer({p0: 70_000, p2: 20_000, p1: 900_000}, batch_max_records=30_000)
    consumer.reading = {p0: 0, p2: 10_000, p1: 0}

    # 70,000 - 30,000 left on p0, and none read yet of p2's 10,000: 50,000 behind.
    assert consumer._catching_up(_batch(p0, 0, 30_000), 0)
    # 20,000 left on p0 and 4,000 on p2: less than a full batch, so the lane publishes.
    consumer.reading[p2] = 16_000
    assert not consumer._catching_up(_batch(p0, 20_000, 30_000), 0)
    assert not consumer._catching_up(_batch(p0, 40_000, 30_000), 0)
    # Another lane's backlog (p1) does not hold this lane's view back.
    consumer.reading[p0] = 70_000
    assert not consumer._catching_up(_batch(p2, 16_000, 4_000), 0)
    assert consumer._catching_up(_batch(p1, 0, 30_000), 1)


async def test_a_catch_up_publishes_at_least_every_so_often_and_never_past_where_it_stops() -> None:
    tp = TopicPartition(TOPIC, 0)
    consumer = _consumer({tp: 1_000_000}, batch_max_records=30_000, catchup_publish_seconds=30)
    consumer.reading = {tp: 0}
    assert consumer._catching_up(_batch(tp, 0, 30_000), 0)
    consumer.published[0] = time.monotonic() - 31  # the lane's last publication
    assert not consumer._catching_up(_batch(tp, 0, 30_000), 0)

    consumer.published[0] = time.monotonic()
    consumer.until = {tp: 30_000}  # run(until_end=True): the batch that reaches the end publishes
    assert not consumer._catching_up(_batch(tp, 0, 30_000), 0)


async def test_without_a_catch_up_window_every_batch_publishes() -> None:
    tp = TopicPartition(TOPIC, 0)
    consumer = _consumer({tp: 1_000_000}, catchup_publish_seconds=0)
    consumer.reading = {tp: 0}
    assert not consumer._catching_up(_batch(tp, 0, 30_000), 0)


async def test_an_unknown_high_watermark_is_not_a_backlog() -> None:
    tp = TopicPartition(TOPIC, 0)
    consumer = _consumer({})
    consumer.reading = {tp: 0}
    assert not consumer._catching_up(_batch(tp, 0, 10), 0)


async def test_each_lane_publishes_its_own_marks_and_the_others_leave_them(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    p0, p1 = TopicPartition(TOPIC, 0), TopicPartition(TOPIC, 1)  # lanes 0 and 1
    calls: list[tuple[int, bool, frozenset, frozenset]] = []
    marking = {0: {("s-a", "graffiti"), ("s-b", "litter")}, 1: {("s-c", "graffiti")}}

    async def process_batch(
        conn, parsed, moves, areas, *, now, trend_days, defer=False, own_marks=(), other_marks=()
    ) -> BatchOutcome:
        (partition,) = moves
        calls.append((partition, defer, own_marks, other_marks))
        marked = frozenset(marking[partition]) if defer else frozenset()
        return BatchOutcome(len(parsed), 0, 0, marked)

    monkeypatch.setattr(consumer_module, "process_batch", process_batch)
    consumer = _consumer({})
    consumer.pool = OneConnection()  # type: ignore[assignment]
    consumer.positions = {p0: 0, p1: 0}
    consumer.reading = {p0: 0, p1: 0}

    await consumer._apply(_batch(p0, 0, 10), 0, defer=True)
    await consumer._apply(_batch(p1, 0, 10), 1, defer=True)
    await consumer._apply(_batch(p1, 10, 10), 1)  # lane 1 publishes its own, leaves lane 0's
    marking[0] = {("s-d", "graffiti")}
    await consumer._apply(_batch(p0, 10, 10), 0, defer=True)
    await consumer._apply(_batch(p0, 20, 10), 0)  # lane 0 publishes both of its batches' marks
    await consumer._apply(_batch(p1, 20, 10), 1)

    lane0 = frozenset({("s-a", "graffiti"), ("s-b", "litter")})
    lane1 = frozenset({("s-c", "graffiti")})
    assert calls == [
        (0, True, frozenset(), frozenset()),
        (1, True, frozenset(), lane0),
        (1, False, lane1, lane0),
        (0, True, lane0, frozenset()),
        (0, False, lane0 | {("s-d", "graffiti")}, frozenset()),
        (1, False, frozenset(), frozenset()),
    ]


async def test_a_rebalance_leaves_the_lanes_marks_to_whichever_batch_publishes() -> None:
    consumer = _consumer({})
    consumer.marks[0].add(("s-a", "graffiti"))
    await consumer_module._Rebalance(consumer).on_partitions_revoked([TopicPartition(TOPIC, 0)])
    assert consumer.marks == [set(), set()]
