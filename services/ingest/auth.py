"""Council-system API keys (generated, hashed, looked up) and a token-bucket rate limit per key.

Keys are 256 bits from `secrets`, so they are stored as a plain SHA-256 hex digest, not with a
slow password hash: slow, salted hashes exist to resist guessing low-entropy passwords, and nobody
can enumerate 2^256 keys however fast the hash. An unsalted digest also lets us find the system by
an indexed equality lookup, with no per-request key-stretching cost on a bulk-loading endpoint.
A leaked table therefore reveals no usable key.
"""

from __future__ import annotations

import hashlib
import secrets

from shared.ratelimit import TokenBucket

__all__ = ["KEY_PREFIX", "RateLimiter", "generate_key", "hash_key"]

KEY_PREFIX = "sn_"  # lets secret scanners and people recognise a streetneeds key


def generate_key() -> str:
    return KEY_PREFIX + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    return hashlib.sha256(key.encode()).hexdigest()


# One limiter for every service (shared/ratelimit.py): `take(key_hash, rate_per_minute)` as before.
RateLimiter = TokenBucket
