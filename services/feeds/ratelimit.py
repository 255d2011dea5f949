"""Token bucket per client for "I can help", keyed by a salted hash of the IP, held only in memory."""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from collections import OrderedDict

__all__ = ["RateLimiter"]


class RateLimiter:
    """`allow(ip)` spends one token; buckets refill at `rate_per_minute` up to `burst`.

    The IP is never stored: only a hash under a per-process random salt, so the table cannot be
    matched against logs or another replica. The table is bounded; the oldest buckets go first.
    """

    def __init__(
        self, rate_per_minute: float, burst: int, max_clients: int = 100_000, clock=time.monotonic
    ) -> None:
        self.rate = rate_per_minute / 60.0
        self.burst = burst
        self.max_clients = max_clients
        self._clock = clock
        self._salt = secrets.token_bytes(16)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def _key(self, ip: str) -> bytes:
        return hashlib.sha256(self._salt + ip.encode()).digest()

    def allow(self, ip: str) -> tuple[bool, int]:
        """(allowed, seconds until the next token when refused)."""
        key, now = self._key(ip), self._clock()
        tokens, then = self._buckets.pop(key, (float(self.burst), now))
        tokens = min(float(self.burst), tokens + (now - then) * self.rate)
        allowed = tokens >= 1.0
        if allowed:
            tokens -= 1.0
        self._buckets[key] = (tokens, now)
        while len(self._buckets) > self.max_clients:
            self._buckets.popitem(last=False)
        return allowed, 0 if allowed else max(1, math.ceil((1.0 - tokens) / self.rate))
