"""Thin Kafka subscriber: prompts.v1 → feeds' tables (fanned out by `listener`); malformed → dead letters."""

from __future__ import annotations

from functools import partial

from shared.contracts import PROMPTS
from shared.subscribers import subscribe_to_context

__all__ = ["register_handlers"]

# `register_handlers(broker, runtime, group_id, max_records)`: each poll's events go to
# `FeedsContext.apply_all`, which stores their effect in one transaction (and notifies every replica's
# listener).
register_handlers = partial(
    subscribe_to_context,
    topic=PROMPTS,
    title="feeds/prompts",
    description="Prompts for action, stored per prompt_id+revision.",
)
