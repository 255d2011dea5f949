"""Council-system API keys (generated, hashed, looked up) and a token-bucket rate limit per key.

Keys are 256 bits from `secrets`, so they are stored as a plain SHA-256 hex digest, not with a
slow password hash: slow, salted hashes exist to resist guessing low-entropy passwords, and nobody
can enumerate 2^256 keys however fast the hash. An unsalted digest also lets us find the system by
an indexed equality lookup, with no per-request key-stretching cost on a bulk-loading endpoint.
A leaked table therefore reveals no usable key.
"""

from __future__ import annotations

import hashlib
import math
import secrets
import time
from dataclasses import dataclass

__all__ = ["KEY_PREFIX", "RateLimiter", "generate_key", "hash_key"]

KEY_PREFIX = "sn_"  # lets secret scanners and people recognise a streetneeds key


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


@dataclass
class _Bucket:
    tokens: float
    updated: float


class RateLimiter:
    """Token bucket per key hash: `rate_per_minute` tokens refill evenly; a full minute's burst allowed.

    In memory, so per replica: with N replicas a system may reach N times its rate. That is a
    deliberate trade (no shared store on the hot path); the limit protects each replica.
    """

    def __init__(self, clock=time.monotonic) -> None:
        self._clock = clock
        self._buckets: dict[str, _Bucket] = {}

    def take(self, key_hash: str, rate_per_minute: int) -> float:
        """0.0 when allowed (one token taken), else the seconds to wait before retrying."""
        now, rate = self._clock(), rate_per_minute / 60.0
        bucket = self._buckets.get(key_hash)
        if bucket is None:
            bucket = self._buckets[key_hash] = _Bucket(float(rate_per_minute), now)
        bucket.tokens = min(float(rate_per_minute), bucket.tokens + (now - bucket.updated) * rate)
        bucket.updated = now
        if bucket.tokens >= 1.0:
            bucket.tokens -= 1.0
            return 0.0
        return (1.0 - bucket.tokens) / rate

    @staticmethod
    def retry_after(wait_s: float) -> str:
        return str(max(1, math.ceil(wait_s)))
