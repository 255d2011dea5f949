"""Token bucket per client for sign-ups, keyed by a salted hash of the IP, held only in memory."""

from __future__ import annotations

import hashlib
import secrets
import time
from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """`allow(ip)` spends one token; buckets refill at `rate_per_minute` up to `burst` (bounded table)."""

    def __init__(self, rate_per_minute: float, burst: int, max_clients: int = 100_000, clock=time.monotonic):
        self.rate, self.burst, self.max_clients, self._clock = (
            rate_per_minute / 60.0,
            burst,
            max_clients,
            clock,
        )
        self._salt = secrets.token_bytes(16)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def allow(self, ip: str) -> bool:
        key, now = hashlib.sha256(self._salt + ip.encode()).digest(), self._clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        self._buckets[key] = (tokens - 1.0 if allowed else tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed
