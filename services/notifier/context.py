"""What the notifier holds while it runs, built at startup; pages take it as `context: Context`."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.contracts import PromptPublished, PromptRetired, Tombstone
from shared.gazetteer.selection import Areas
from shared.ratelimit import TokenBucket
from shared.service import running_context

from .consume import apply_events
from .settings import NotifierSettings

__all__ = ["Context", "NotifierContext", "notifier_context"]


@dataclass(frozen=True)
class NotifierContext:
    settings: NotifierSettings
    pool: asyncpg.Pool
    clock: Callable[[], dt.datetime]  # the wall clock, or a test's
    limiter: TokenBucket  # sign-ups, keyed by client
    areas: Areas | None  # None while the gazetteer is empty: sign-ups answer 503

    async def apply_all(self, events: Sequence[PromptPublished | PromptRetired | Tombstone]) -> int:
        """Store a poll's events in one transaction (the mails they queue); then the offsets are committed."""
        return await apply_events(self.pool, events, self.clock())


def notifier_context(request: Request) -> NotifierContext:
    """FastAPI dependency: the running notifier's context."""
    context: NotifierContext = request.app.state.runtime.context
    return context


# What a route declares to be given the context: `context: Context`.
Context = Annotated[NotifierContext, Depends(running_context)]
