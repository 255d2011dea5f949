"""What the console reads and writes on Kafka itself: dead letters (list, replay) and consumer lag."""

from __future__ import annotations

import base64
from dataclasses import dataclass

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient

from shared.contracts import ALL_TOPICS, DeadLettered
from shared.dead_letters import scan_dead_letters
from shared.kafka import client_options
from shared.settings import CommonSettings

__all__ = ["GroupLag", "Letter", "consumer_lag", "read_letters", "replay"]


@dataclass(frozen=True)
class Letter:
    partition: int  # its place on the dead-letter topic: the id the console's decisions use
    offset: int
    letter: DeadLettered

    @property
    def id(self) -> str:
        return f"{self.partition}-{self.offset}"


@dataclass(frozen=True)
class GroupLag:
    group: str
    lag: int  # records on the group's partitions not yet committed by it
    partitions: int


async def read_letters(settings: CommonSettings, limit: int = 500) -> list[Letter]:
    """The newest `limit` dead letters per partition, newest first; commits nothing."""

    async def newest(
        consumer: AIOKafkaConsumer, partitions: list[TopicPartition], ends: dict[TopicPartition, int]
    ) -> None:
        starts = await consumer.beginning_offsets(partitions)
        for tp in partitions:
            consumer.seek(tp, max(starts[tp], ends[tp] - limit))

    found = [Letter(p, o, letter) async for p, o, letter in scan_dead_letters(settings, newest)]
    return sorted(found, key=lambda x: x.letter.dead_lettered_at, reverse=True)


async def replay(settings: CommonSettings, letter: DeadLettered) -> None:
    """Re-produce the original bytes (and key) to the topic they came from; raises unless acked."""
    producer = AIOKafkaProducer(**client_options(settings), acks="all", enable_idempotence=True)
    await producer.start()
    try:
        key = base64.b64decode(letter.key_b64) if letter.key_b64 else None
        await producer.send_and_wait(
            letter.source_topic, value=base64.b64decode(letter.original_b64), key=key
        )
    finally:
        await producer.stop()


async def consumer_lag(settings: CommonSettings) -> list[GroupLag]:
    """Each consumer group's lag on the project's topics: committed offsets against end offsets."""
    ours = {t.name for t in ALL_TOPICS}
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        groups = sorted(g[0] for g in await admin.list_consumer_groups())
        result = []
        for group in groups:
            offsets = await admin.list_consumer_group_offsets(group)
            committed = {
                tp: meta.offset for tp, meta in offsets.items() if meta.offset >= 0 and tp.topic in ours
            }
            if not committed:
                continue
            ends = await consumer.end_offsets(list(committed))
            lag = sum(max(0, ends[tp] - off) for tp, off in committed.items())
            result.append(GroupLag(group, lag, len(committed)))
        return result
    finally:
        await consumer.stop()
        await admin.close()
