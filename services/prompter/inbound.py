"""Reading `street-needs.v1` records: a need, a tombstone, or a rejection with its reasons (pure)."""

from __future__ import annotations

from dataclasses import dataclass

from pydantic import ValidationError

from shared.contracts import Category, StreetNeedChanged
from shared.kafka import validation_errors

__all__ = ["Rejected", "Tombstone", "read_need"]


@dataclass(frozen=True, slots=True)
class Tombstone:
    """The key's need is no longer publishable."""

    prompt_id: str


class Rejected(ValueError):
    """A record that cannot be accepted; goes to the dead-letter topic."""

    def __init__(self, reason: str, errors: tuple[str, ...] = ()) -> None:
        super().__init__(reason)
        self.reason, self.errors = reason, errors


def _key(key: bytes | None) -> str:
    try:
        text = (key or b"").decode()
    except UnicodeDecodeError as exc:
        raise Rejected("key is not UTF-8") from exc
    area_id, sep, category = text.rpartition(":")
    if not sep or not area_id:
        raise Rejected("key is not {area_id}:{category}", (f"key: {text[:100]!r}",))
    if category not in Category.__members__.values():
        raise Rejected("key names an unknown category", (f"key: unknown category {category[:50]!r}",))
    return text


def read_need(key: bytes | None, value: bytes | None) -> StreetNeedChanged | Tombstone:
    """Parse one record; raises Rejected for a bad key, bad JSON, a contract breach or a key mismatch."""
    if not value:
        return Tombstone(_key(key))
    try:
        need = StreetNeedChanged.model_validate_json(value)
    except ValidationError as exc:
        raise Rejected("value is not a valid StreetNeedChanged", validation_errors(exc)) from exc
    if key is not None and key != need.key.encode():
        raise Rejected(
            "key does not match the value's {area_id}:{category}", (f"key: expected {need.key!r}",)
        )
    return need
