"""Thin Kafka subscriber: prompts.v1 → changes + outbox; malformed records → dead letters."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from shared.contracts import PROMPTS
from shared.service import Runtime
from shared.subscribers import subscribe_contract

from .context import NotifierContext

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "notifier"


def register_handlers(
    broker: KafkaBroker, runtime: Runtime[NotifierContext], group_id: str, consumers: int = 1
) -> None:
    """`NotifierContext.apply` stores an event's effect; the offset is committed only after it."""

    subscribe_contract(
        broker,
        PROMPTS,
        service=SERVICE,
        group_id=group_id,
        title="notifier/prompts",
        description="Prompts for action: each new revision queues one mail per instant subscriber.",
        apply=lambda event: runtime.context.apply(event),  # the context is given at startup
        consumers=consumers,
    )
