"""Thin Kafka subscriber: prompts.v1 → feeds' tables (fanned out by `listener`); malformed → dead letters."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from shared.contracts import PROMPTS
from shared.service import Runtime
from shared.subscribers import subscribe_contract

from .context import FeedsContext

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "feeds"


def register_handlers(
    broker: KafkaBroker, runtime: Runtime[FeedsContext], group_id: str, consumers: int = 1
) -> None:
    """`FeedsContext.apply` stores an event's effect (and notifies every replica's listener)."""

    subscribe_contract(
        broker,
        PROMPTS,
        service=SERVICE,
        group_id=group_id,
        title="feeds/prompts",
        description="Prompts for action, stored per prompt_id+revision.",
        apply=lambda event: runtime.context.apply(event),  # the context is given at startup
        consumers=consumers,
    )
