"""A seek makes what was handed out before it stale, even when it is held after it.

The race behind a lost range: a fetch hands out records read from position X; before the consumer
loop holds them, a rebalance (or a failed batch) seeks the partition back to its stored position S
< X. Tagged with the seek count of the moment they are held, the records would pass for records
read after the seek, and a batch starting at X would move the stored position from S past records
[S, X) that were never applied.
"""

from __future__ import annotations

import pytest
from aiokafka.structs import ConsumerRecord, TopicPartition

from services.aggregator import consumer as consumer_module
from services.aggregator.consumer import SignalConsumer
from services.aggregator.processing import BatchOutcome
from services.aggregator.settings import AggregatorSettings
from tests.support import OneConnection

TP = TopicPartition("signals-anonymised.v1", 1)


def _record(offset: int) -> ConsumerRecord:
    return ConsumerRecord(TP.topic, TP.partition, offset, 0, 0, b"s1", b"{}", None, 2, 2, [])


class FakeConsumer:
    """Hands out the offsets it is given, from where it was last sought."""

    def __init__(self) -> None:
        self.position = 0
        self.log_start = 0  # retention has deleted nothing

    async def getmany(self, *, timeout_ms: int, max_records: int) -> dict:
        records = [_record(o) for o in range(self.position, self.position + 5)]
        self.position += 5
        return {TP: records}

    def seek(self, tp: TopicPartition, offset: int) -> None:
        self.position = offset

    async def beginning_offsets(self, partitions: list[TopicPartition]) -> dict[TopicPartition, int]:
        return dict.fromkeys(partitions, self.log_start)


class ReachedTheDatabase(BaseException):  # not an Exception: `_apply` would catch and retry that
    pass


class NoDatabase:
    def acquire(self) -> None:
        raise ReachedTheDatabase("a batch of stale records was applied")


def _consumer() -> tuple[SignalConsumer, FakeConsumer]:
    settings = AggregatorSettings(
        database_url="postgresql://unused/unused", kafka_bootstrap_servers="127.0.0.1:1", _env_file=None
    )
    consumer = SignalConsumer(NoDatabase(), settings, None)  # type: ignore[arg-type]  # no batch may reach them
    fake = FakeConsumer()
    consumer.consumer = fake  # type: ignore[assignment]
    return consumer, fake


async def test_records_handed_out_before_a_seek_are_skipped_though_held_after_it() -> None:
    consumer, fake = _consumer()
    consumer._seek(TP, 0)
    fake.seek(TP, 10)  # the consumer read ahead: records 0-9 were fetched, not yet applied
    batches, seeks = await consumer._fetch(100)  # records 10-14 handed out
    consumer._seek(TP, 0)  # meanwhile: back to the stored position (rebalance or failed batch)

    pending: dict = {}
    consumer._hold(pending, batches, seeks)
    lane = TP.partition % consumer.lanes
    await consumer._apply(pending.pop(lane), lane)  # skipped: stale, and nothing reaches the database

    assert consumer.positions[TP] == 0 and consumer.reading[TP] == 0
    # Read again from the stored position, the records are held as current.
    batches, seeks = await consumer._fetch(100)
    consumer._hold(pending, batches, seeks)
    held = pending[lane]
    assert [offset for offset, _ in held.records[TP]] == [0, 1, 2, 3, 4]
    assert held.seeks[TP] == consumer.seeks[TP]


async def test_records_held_in_a_lane_before_a_seek_give_way_to_those_read_after_it() -> None:
    consumer, _ = _consumer()
    consumer._seek(TP, 0)
    pending: dict = {}
    consumer._hold(pending, *await consumer._fetch(100))  # 0-4, waiting for the lane
    consumer._seek(TP, 2)  # the lane's batch failed after storing 0-1: back to 2
    consumer._hold(pending, *await consumer._fetch(100))

    held = pending[TP.partition % consumer.lanes]
    assert [offset for offset, _ in held.records[TP]] == [2, 3, 4, 5, 6]
    assert held.seeks[TP] == consumer.seeks[TP]


async def test_current_records_that_skip_past_the_stored_position_are_read_again() -> None:
    """Whatever made them skip, a batch never moves the stored position past records not applied."""
    consumer, fake = _consumer()
    consumer._seek(TP, 0)
    fake.position = 10  # the consumer lost its place without a seek
    pending: dict = {}
    consumer._hold(pending, *await consumer._fetch(100))
    lane = TP.partition % consumer.lanes
    await consumer._apply(pending.pop(lane), lane)

    assert consumer.positions[TP] == 0 and fake.position == 0  # sought back to the stored position


async def test_records_past_a_stored_position_that_retention_deleted_are_applied() -> None:
    consumer, fake = _consumer()
    consumer._seek(TP, 0)
    fake.log_start = fake.position = 10  # offsets 0-9 are past retention: gone from the log
    pending: dict = {}
    consumer._hold(pending, *await consumer._fetch(100))
    lane = TP.partition % consumer.lanes
    with pytest.raises(ReachedTheDatabase):  # the batch from 10 goes on to be applied
        await consumer._apply(pending.pop(lane), lane)


async def test_a_batch_with_an_offset_missing_is_applied_up_to_it_and_read_again_after(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    applied: list[dict] = []

    async def process_batch(
        conn, parsed, moves, areas, *, now, trend_days, defer=False, own_marks=(), other_marks=()
    ) -> BatchOutcome:
        applied.append(dict(moves))
        return BatchOutcome(len(parsed), 0, 0)

    monkeypatch.setattr(consumer_module, "process_batch", process_batch)
    consumer, fake = _consumer()
    consumer.pool = OneConnection()  # type: ignore[assignment]
    consumer._seek(TP, 0)
    pending: dict = {}
    consumer._hold(pending, *await consumer._fetch(100))  # 0-4
    fake.position = 8  # 5-7 never handed out, and no seek said so
    consumer._hold(pending, *await consumer._fetch(100))  # 8-12, joining 0-4 in the lane
    lane = TP.partition % consumer.lanes
    await consumer._apply(pending.pop(lane), lane)

    assert applied == [{TP.partition: (0, 5, 5)}]  # 0-4 only: the stored position stops at 5
    assert consumer.positions[TP] == 5 and fake.position == 5  # and reading resumes there
