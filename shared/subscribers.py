"""A topic's subscriber that decodes by the contract, dead-letters what breaks it and applies the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from .contracts import ContractError, Topic
from .kafka import publish_dead_letter

__all__ = ["subscribe_contract"]


def subscribe_contract(
    broker: KafkaBroker,
    topic: Topic,
    *,
    service: str,
    group_id: str,
    title: str,
    description: str,
    apply: Callable[[Any], Awaitable[object]],
) -> None:
    """Subscribe `group_id` to `topic` from its start; each event (or Tombstone) goes to `apply`.

    A record that breaks the contract is dead-lettered and its offset committed; if `apply` raises,
    nothing is committed and the record is read again.
    """

    @broker.subscriber(
        topic.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title=title,
        description=description,
    )
    async def on_record(msg: KafkaMessage) -> None:
        record = msg.raw_message
        assert not isinstance(record, tuple)  # a single-record subscriber: never a batch
        try:
            event = topic.decode(record.key, record.value)
        except ContractError as exc:
            await publish_dead_letter(
                broker, service=service, record=record, reason=exc.reason, errors=exc.errors
            )
            return
        await apply(event)
