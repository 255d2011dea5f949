"""Standard Webhooks signatures (https://www.standardwebhooks.com): sign deliveries, verify them.

The signed content is `{webhook-id}.{webhook-timestamp}.{body}`; the signature is
`v1,<base64 HMAC-SHA256>` keyed with the base64-decoded part of the `whsec_…` secret. Partners can
use `verify_signature` (or any Standard Webhooks library) on their side.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import secrets
import time
from collections.abc import Mapping

__all__ = [
    "SECRET_PREFIX",
    "WebhookVerificationError",
    "new_secret",
    "sign",
    "signed_headers",
    "verify_signature",
]

SECRET_PREFIX = "whsec_"
_SECRET_BYTES = 32  # the spec asks for 24-64 random bytes


class WebhookVerificationError(ValueError):
    """The delivery is not authentic, or too old/new to accept."""


def new_secret() -> str:
    return SECRET_PREFIX + base64.b64encode(secrets.token_bytes(_SECRET_BYTES)).decode()


def _key(secret: str) -> bytes:
    raw = secret.removeprefix(SECRET_PREFIX)
    try:
        key = base64.b64decode(raw + "=" * (-len(raw) % 4), validate=True)
    except ValueError as exc:
        raise ValueError("webhook secret is not base64 after 'whsec_'") from exc
    if not key:
        raise ValueError("webhook secret is empty")
    return key


def sign(secret: str, message_id: str, timestamp: int, body: bytes) -> str:
    """The `webhook-signature` value (`v1,<base64>`) for this message."""
    content = f"{message_id}.{timestamp}.".encode() + body
    digest = hmac.new(_key(secret), content, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed_headers(secret: str, message_id: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The three Standard Webhooks headers for a delivery sent now (or at `timestamp`)."""
    ts = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": message_id,
        "webhook-timestamp": str(ts),
        "webhook-signature": sign(secret, message_id, ts, body),
    }


def verify_signature(
    secret: str,
    headers: Mapping[str, str],
    body: bytes | str,
    tolerance_s: int = 300,
    *,
    now: float | None = None,
) -> None:
    """Raise `WebhookVerificationError` unless one `v1` signature matches and the timestamp is
    within `tolerance_s` seconds of now (either way), which stops old deliveries being replayed."""
    lower = {k.lower(): v for k, v in headers.items()}
    message_id = lower.get("webhook-id")
    timestamp = lower.get("webhook-timestamp")
    signatures = lower.get("webhook-signature")
    if not (message_id and timestamp and signatures):
        raise WebhookVerificationError("missing webhook-id, webhook-timestamp or webhook-signature")
    try:
        ts = int(timestamp)
    except ValueError as exc:
        raise WebhookVerificationError("webhook-timestamp is not an integer") from exc
    current = time.time() if now is None else now
    if ts < current - tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is too old")
    if ts > current + tolerance_s:
        raise WebhookVerificationError("webhook-timestamp is in the future")
    data = body.encode() if isinstance(body, str) else body
    expected = sign(secret, message_id, ts, data).encode()
    # Several space-separated signatures may be sent while a secret is rotated.
    for candidate in signatures.split():
        if candidate.startswith("v1,") and hmac.compare_digest(candidate.encode(), expected):
            return
    raise WebhookVerificationError("no matching signature")
