"""What the feeds service holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Annotated

import asyncpg
from fastapi import Depends, Request
from faststream.kafka import KafkaBroker

from shared.contracts import PromptPublished, PromptRetired, Tombstone
from shared.gazetteer.selection import Areas
from shared.ratelimit import TokenBucket
from shared.service import running_context

from .consume import apply_events
from .feedcache import BodyCache, Flights, ValidatorCache
from .listener import Listener
from .live import Hub
from .refusals import GazetteerNotLoaded
from .settings import FeedsSettings

if TYPE_CHECKING:
    from .views import FeedTarget

__all__ = ["Context", "FeedsContext", "feeds_context", "ready_context"]


@dataclass
class FeedsContext:
    settings: FeedsSettings
    pool: asyncpg.Pool
    broker: KafkaBroker  # "I can help" responses are published on it
    hub: Hub  # live updates to Server-Sent Events clients
    bodies: BodyCache  # rendered feeds by ETag
    help_limiter: TokenBucket  # "I can help", keyed by client
    areas: Areas | None  # None while the gazetteer is empty: pages answer 503
    listener: Listener  # fans committed changes out to `hub`, this replica's own at once
    validators: ValidatorCache = field(default_factory=ValidatorCache)
    flights: Flights = field(default_factory=Flights)  # feeds' database look-ups under way
    # Streets' and wards' feed targets by path, made once each (the gazetteer does not change while
    # the service runs; only ids it knows are kept).
    targets: dict[str, FeedTarget] = field(default_factory=dict)
    basemaps: dict[str, tuple[bytes, str]] = field(default_factory=dict)  # GeoJSON body and its ETag
    short_codes: dict[str, str] | None = None  # printed notices' codes, built on first use

    def loaded_areas(self) -> Areas:
        """The gazetteer's areas; `GazetteerNotLoaded` (503 at the edge) while it is not loaded."""
        if self.areas is None:
            raise GazetteerNotLoaded
        return self.areas

    async def apply_all(self, events: Sequence[PromptPublished | PromptRetired | Tombstone]) -> None:
        """Store a poll's events in one transaction (and notify every replica's listener at its
        commit); this replica's live clients get them at once."""
        self.listener.offer(await apply_events(self.pool, self.settings, events))


def feeds_context(request: Request) -> FeedsContext:
    """FastAPI dependency: the running feeds service's context."""
    context: FeedsContext = request.app.state.runtime.context
    return context


def ready_context(request: Request) -> FeedsContext:
    """The context of a route that needs the gazetteer: a 503 while it is not loaded."""
    context = feeds_context(request)
    context.loaded_areas()
    return context


# What a route declares to be given the context: `context: Context`.
Context = Annotated[FeedsContext, Depends(running_context)]
