"""Token bucket per client for residents' offers of contact, keyed by a salted hash of the IP, in memory.

The IP is never stored: only a hash under a per-process random salt. The table is bounded.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict

from fastapi import Request

from shared.http import Problem

__all__ = ["RateLimiter", "check_offer_rate", "client_key"]


class RateLimiter:
    """`allow(key)` spends one token; buckets refill at `rate_per_minute` up to `burst`."""

    def __init__(self, rate_per_minute: float, burst: int, max_clients: int = 100_000, clock=time.monotonic):
        self.rate, self.burst, self.max_clients, self._clock = (
            rate_per_minute / 60.0,
            burst,
            max_clients,
            clock,
        )
        self._salt = secrets.token_bytes(16)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, key: str) -> tuple[bool, int]:
        """(allowed, seconds until the next token when refused)."""
        digest, now = hashlib.sha256(self._salt + key.encode()).digest(), self._clock()
        tokens, then = self._buckets.pop(digest, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[digest] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed, 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))


def client_key(request: Request) -> str:
    """What the limit counts by (one call, so a forwarded-header/IPv6-aware key can replace it)."""
    return request.client.host if request.client else ""


def check_offer_rate(request: Request) -> None:
    """429 (with Retry-After) when this client has sent too many offers of contact."""
    limiter: RateLimiter = request.app.state.runtime.state["offer_limiter"]
    allowed, retry_after = limiter.allow(client_key(request))
    if not allowed:
        raise Problem(
            429,
            "Too many offers",
            "Thank you! Please try again a little later.",
            headers={"Retry-After": str(retry_after)},
        )
