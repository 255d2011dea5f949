"""Kafka subscriber: batches from `council-signals.v1` into the shared pipeline (see kafka_input.py)."""

from __future__ import annotations

from functools import partial

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import COUNCIL_SIGNALS
from shared.kafka import publish_dead_letters as shared_publish_dead_letters
from shared.service import Runtime

from . import repository
from .auth import hash_key
from .context import IngestContext
from .kafka_input import handle_records

__all__ = ["register"]

MAX_RECORDS = 500  # one transaction and one round of acks per poll: bulk loads go fast


def register(broker: KafkaBroker, runtime: Runtime[IngestContext], group_id: str) -> None:
    async def find_system(key: str) -> repository.System | None:
        return await runtime.context.systems.find(hash_key(key))

    publish_dead_letters = partial(shared_publish_dead_letters, broker)

    @broker.subscriber(
        COUNCIL_SIGNALS.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        batch=True,
        max_records=MAX_RECORDS,
        title="council-signals (ingest)",
        description="Raw council signals; `x-api-key` header names the producing system.",
    )
    async def on_council_signals(msg: KafkaMessage) -> None:
        records = msg.raw_message if isinstance(msg.raw_message, tuple) else (msg.raw_message,)
        await handle_records(
            records,
            pipeline=runtime.context.pipeline,
            find_system=find_system,
            publish_dead_letters=publish_dead_letters,
        )
