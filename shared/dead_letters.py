"""Reading the dead-letter topic for operators: what could not be accepted, from where, and why."""

from __future__ import annotations

import base64
import datetime as dt
from collections.abc import AsyncIterator, Awaitable, Callable

from aiokafka import AIOKafkaConsumer, TopicPartition

from .contracts import DEAD_LETTERS, DeadLettered
from .kafka import client_options
from .settings import CommonSettings

__all__ = ["Start", "original_text", "read_dead_letters", "scan_dead_letters"]

# Seeks each partition of the dead-letter topic to where reading begins, given the end offsets.
Start = Callable[[AIOKafkaConsumer, list[TopicPartition], dict[TopicPartition, int]], Awaitable[None]]


async def scan_dead_letters(
    settings: CommonSettings, start: Start
) -> AsyncIterator[tuple[int, int, DeadLettered]]:
    """(partition, offset, letter) from where `start` seeks to the end each partition had when reading
    began (letters arriving meanwhile wait for the next read); commits nothing."""
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        partitions = [TopicPartition(DEAD_LETTERS.name, p) for p in range(DEAD_LETTERS.partitions)]
        consumer.assign(partitions)
        ends = await consumer.end_offsets(partitions)
        await start(consumer, partitions, ends)
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                for record in records:
                    if record.offset < ends[TopicPartition(record.topic, record.partition)]:
                        yield record.partition, record.offset, DeadLettered.model_validate_json(record.value)
    finally:
        await consumer.stop()


async def read_dead_letters(
    settings: CommonSettings, *, since: dt.datetime | None = None, service: str | None = None
) -> AsyncIterator[DeadLettered]:
    """Every dead letter on the topic (from `since`, of `service`), oldest first; commits nothing."""

    async def from_since(
        consumer: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> None:
        if since is None:
            await consumer.seek_to_beginning(*partitions)
            return
        found = await consumer.offsets_for_times({tp: int(since.timestamp() * 1000) for tp in partitions})
        for tp in partitions:
            offset = found.get(tp)
            consumer.seek(tp, offset.offset if offset else ends[tp])

    async for _, _, letter in scan_dead_letters(settings, from_since):
        if service is None or letter.service == service:
            yield letter


def original_text(letter: DeadLettered, limit: int = 2000) -> str:
    """The original bytes as text (raw council input: may hold personal data — operators only)."""
    return base64.b64decode(letter.original_b64)[:limit].decode("utf-8", errors="replace")
