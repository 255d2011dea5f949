"""Thin Kafka subscriber: prompts.v1 → changes + outbox; malformed records → dead letters."""

from __future__ import annotations

from functools import partial

from shared.contracts import PROMPTS
from shared.subscribers import subscribe_to_context

__all__ = ["register_handlers"]

# `register_handlers(broker, runtime, group_id, max_records)`: each poll's events go to
# `NotifierContext.apply_all`, which stores their effect in one transaction; the offsets are committed
# only after it.
register_handlers = partial(
    subscribe_to_context,
    topic=PROMPTS,
    title="notifier/prompts",
    description="Prompts for action: each new revision queues one mail per instant subscriber.",
)
