"""Tokens in links: random single-use confirmation tokens (stored hashed) and signed manage links."""

from __future__ import annotations

import hashlib
import hmac
import secrets
import uuid

__all__ = ["address_hmac", "confirm_token", "link_token", "read_link_token", "sha256"]


def confirm_token() -> tuple[str, bytes]:
    """A fresh confirmation token and the SHA-256 that is all the database keeps of it."""
    token = secrets.token_urlsafe(32)
    return token, sha256(token)


def sha256(token: str) -> bytes:
    return hashlib.sha256(token.encode()).digest()


def _mac(secret: str, purpose: str, message: str) -> str:
    return hmac.new(secret.encode(), f"{purpose}:{message}".encode(), hashlib.sha256).hexdigest()[:32]


def link_token(secret: str, subscription_id: uuid.UUID) -> str:
    """The manage/unsubscribe token of a subscription: its id signed with the link secret.

    Signed rather than stored, so every mail can carry it without the database keeping a usable copy;
    it stops working when the subscription is deleted (or the secret changes).
    """
    return f"{subscription_id.hex}.{_mac(secret, 'manage', subscription_id.hex)}"


def read_link_token(secret: str, token: str) -> uuid.UUID | None:
    """The subscription id a manage token names, or None when it is not one of ours."""
    sid, _, mac = token.partition(".")
    try:
        parsed = uuid.UUID(hex=sid)
    except ValueError:
        return None
    if parsed.hex != sid or not hmac.compare_digest(mac, _mac(secret, "manage", sid)):
        return None
    return parsed


def address_hmac(secret: str, email: str) -> bytes:
    """How a suppressed address is remembered: matchable, but not readable or guessable offline."""
    return hmac.new(secret.encode(), f"address:{email.lower()}".encode(), hashlib.sha256).digest()
