"""Opaque pagination cursors: the last row's sort key, base64url-encoded JSON."""

from __future__ import annotations

import base64
import binascii
import json
from typing import Any

__all__ = ["decode_cursor", "encode_cursor"]


def encode_cursor(position: Any) -> str:
    return base64.urlsafe_b64encode(json.dumps(position).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> Any:
    """The position a cursor holds; ValueError when it is not one of ours."""
    try:
        return json.loads(base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)))
    except (binascii.Error, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ValueError("not a valid cursor") from exc
