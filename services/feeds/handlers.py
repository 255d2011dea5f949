"""Thin Kafka subscriber: prompts.v1 → feeds' tables (fanned out by `listener`); malformed → dead letters."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import PROMPTS, ContractError
from shared.kafka import publish_dead_letter
from shared.service import Runtime

from .context import FeedsContext

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "feeds"


def register_handlers(broker: KafkaBroker, runtime: Runtime[FeedsContext], group_id: str) -> None:
    """`FeedsContext.apply` stores an event's effect (and notifies every replica's listener)."""

    @broker.subscriber(
        PROMPTS.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="feeds/prompts",
        description="Prompts for action, stored per prompt_id+revision.",
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
