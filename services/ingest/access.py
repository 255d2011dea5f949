"""Who is calling: find the council system for an API key (kept in memory while that is safe:
`known_systems`) and apply its rate limit (HTTP, Open311 and Kafka)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING

from .auth import RateLimiter, hash_key
from .repository import System

if TYPE_CHECKING:
    from .context import IngestContext

__all__ = ["Caller", "identify"]


@dataclass(frozen=True)
class Caller:
    system: System | None  # None: unknown or revoked key
    wait_s: float = 0.0  # > 0: over its rate limit, retry after this long


async def identify(ctx: IngestContext, key: str) -> Caller:
    digest = hash_key(key)
    system = await ctx.systems.find(digest)
    if system is None:
        return Caller(None)
    limiter: RateLimiter = ctx.limiter
    rate = system.rate_per_minute or ctx.settings.rate_per_minute
    return Caller(system, limiter.take(digest, rate))
