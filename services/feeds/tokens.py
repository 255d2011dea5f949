"""Subscription capabilities: a 128-bit random token in the URL, only its SHA-256 in the database."""

from __future__ import annotations

import hashlib
import re
import secrets

__all__ = ["hash_token", "new_token", "valid_token"]

_TOKEN = re.compile(r"^[A-Za-z0-9_-]{22}$")


def new_token() -> str:
    return secrets.token_urlsafe(16)  # 16 bytes = 128 bits, 22 URL-safe characters


def valid_token(token: str) -> bool:
    return bool(_TOKEN.match(token))


def hash_token(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()
