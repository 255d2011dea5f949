"""What the notifier holds while it runs, built at startup; pages take it via `notifier_context`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.contracts import PromptPublished, PromptRetired, Tombstone
from shared.gazetteer.selection import Areas
from shared.ratelimit import TokenBucket

from .consume import apply_event
from .settings import NotifierSettings

__all__ = ["Context", "NotifierContext", "notifier_context"]


@dataclass(frozen=True)
class NotifierContext:
    settings: NotifierSettings
    pool: asyncpg.Pool
    clock: Callable[[], dt.datetime]  # the wall clock, or a test's
    limiter: TokenBucket  # sign-ups, keyed by client
    areas: Areas | None  # None while the gazetteer is empty: sign-ups answer 503

    async def apply(self, event: PromptPublished | PromptRetired | Tombstone) -> int:
        """Store a prompt event's effect (the mails it queues); the offset is committed only after it."""
        return await apply_event(self.pool, event, self.clock())


def notifier_context(request: Request) -> NotifierContext:
    """FastAPI dependency: the running notifier's context."""
    context: NotifierContext = request.app.state.runtime.context
    return context


# What a route declares to be given the context: `context: Context`.
Context = Annotated[NotifierContext, Depends(notifier_context)]
