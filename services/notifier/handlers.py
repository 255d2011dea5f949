"""Thin Kafka subscriber: prompts.v1 → changes + outbox; malformed records → dead letters."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import PROMPTS, ContractError
from shared.kafka import publish_dead_letter
from shared.service import Runtime

from .context import NotifierContext

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "notifier"


def register_handlers(broker: KafkaBroker, runtime: Runtime[NotifierContext], group_id: str) -> None:
    """`NotifierContext.apply` stores an event's effect; the offset is committed only after it."""

    @broker.subscriber(
        PROMPTS.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="notifier/prompts",
        description="Prompts for action: each new revision queues one mail per instant subscriber.",
    )
    async def on_prompt(msg: KafkaMessage) -> None:
        record = msg.raw_message
        try:
            event = PROMPTS.decode(record.key, record.value)
        except ContractError as exc:
            await publish_dead_letter(
                broker, service=SERVICE, record=record, reason=exc.reason, errors=exc.errors
            )
            return
        await runtime.context.apply(event)
