"""API keys for organisations and partners: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets

__all__ = ["KEY_PREFIX", "hash_key", "new_key"]

KEY_PREFIX = "snp_"  # recognisable in logs and secret scanners


def new_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # 256 random bits need no slow hash: a plain SHA-256 cannot be brute-forced back to the key.
    return hashlib.sha256(key.encode()).hexdigest()
