"""Who is calling: find the council system for an API key and apply its rate limit (HTTP and Open311)."""

from __future__ import annotations

from dataclasses import dataclass

from shared.service import Runtime

from . import repository
from .auth import RateLimiter, hash_key
from .repository import System

__all__ = ["Caller", "identify"]


@dataclass(frozen=True)
class Caller:
    system: System | None  # None: unknown or revoked key
    wait_s: float = 0.0  # > 0: over its rate limit, retry after this long


async def identify(runtime: Runtime, key: str) -> Caller:
    digest = hash_key(key)
    assert runtime.pool is not None
    system = await repository.find_system(runtime.pool, digest)
    if system is None:
        return Caller(None)
    limiter: RateLimiter = runtime.state["limiter"]
    rate = system.rate_per_minute or runtime.settings.rate_per_minute  # type: ignore[attr-defined]
    return Caller(system, limiter.take(digest, rate))
