"""Passwords (scrypt), session and CSRF tokens, and roles: the console's small security core."""

from __future__ import annotations

import base64
import hashlib
import hmac
import re
import secrets

__all__ = [
    "DUMMY_HASH",
    "ROLES",
    "USERNAME",
    "can",
    "generate_password",
    "hash_password",
    "hash_token",
    "new_token",
    "tokens_match",
    "verify_password",
]

USERNAME = re.compile(r"^[a-z0-9][a-z0-9._-]{1,62}$")  # as the operators table checks
ROLES = ("viewer", "operator", "admin")  # each role may do what the ones before it may
# scrypt at n=2^15, r=8 (OWASP's minimum): ~32 MiB and tens of milliseconds per guess.
_N, _R, _P = 2**15, 8, 1
_MAXMEM = 64 * 1024 * 1024


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def hash_password(password: str) -> str:
    salt = secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode(), salt=salt, n=_N, r=_R, p=_P, maxmem=_MAXMEM, dklen=32)
    return f"scrypt${_N}${_R}${_P}${_b64(salt)}${_b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    try:
        scheme, n, r, p, salt, digest = stored.split("$")
        if scheme != "scrypt":
            return False
        found = hashlib.scrypt(
            password.encode(), salt=_unb64(salt), n=int(n), r=int(r), p=int(p), maxmem=_MAXMEM, dklen=32
        )
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(found, _unb64(digest))


# A well-formed hash of a random password: signing in as an unknown user costs as much as a known one.
DUMMY_HASH = hash_password(secrets.token_urlsafe(16))


def generate_password() -> str:
    """A random password (144 bits), shown once to whoever creates the operator."""
    return secrets.token_urlsafe(18)


def new_token() -> str:
    return secrets.token_urlsafe(32)


def hash_token(token: str) -> str:
    # 256 random bits: a plain SHA-256 cannot be reversed or guessed, and it allows an indexed lookup.
    return hashlib.sha256(token.encode()).hexdigest()


def tokens_match(given: str | None, expected: str | None) -> bool:
    if not given or not expected:
        return False
    return hmac.compare_digest(given.encode(), expected.encode())


def can(role: str, needed: str) -> bool:
    """Whether `role` may do what `needed` may (unknown roles may do nothing)."""
    return role in ROLES and ROLES.index(role) >= ROLES.index(needed)
