"""Who is calling: find the council system for an API key and apply its rate limit (HTTP and Open311)."""

from __future__ import annotations

from dataclasses import dataclass

from . import repository
from .auth import RateLimiter, hash_key
from .context import IngestContext
from .repository import System

__all__ = ["Caller", "identify"]


@dataclass(frozen=True)
class Caller:
    system: System | None  # None: unknown or revoked key
    wait_s: float = 0.0  # > 0: over its rate limit, retry after this long


async def identify(ctx: IngestContext, key: str) -> Caller:
    digest = hash_key(key)
    async with ctx.pool.acquire() as conn:
        system = await repository.find_system(conn, digest)
    if system is None:
        return Caller(None)
    limiter: RateLimiter = ctx.limiter
    rate = system.rate_per_minute or ctx.settings.rate_per_minute
    return Caller(system, limiter.take(digest, rate))
