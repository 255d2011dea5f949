"""What consuming prompts.v1 means here: record each new prompt revision and, in the same
transaction, one outbox row per instant subscriber who follows it."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import asyncpg
from pydantic import TypeAdapter

from shared.contracts import PromptEvent, PromptPublished, PromptRetired

from . import repository as repo

__all__ = ["Tombstone", "apply_event", "parse_prompt_record"]

_EVENT = TypeAdapter(PromptEvent)


@dataclass(frozen=True)
class Tombstone:
    """A null value on the compacted topic: the prompt is gone."""

    prompt_id: str


def parse_prompt_record(
    value: bytes | None, key: bytes | None
) -> PromptPublished | PromptRetired | Tombstone:
    """The event a record carries; raises ValueError (incl. pydantic's ValidationError) when malformed."""
    if not value:
        if not key:
            raise ValueError("a tombstone without a key names no prompt")
        return Tombstone(key.decode())
    event = _EVENT.validate_json(value)
    if key is not None and key.decode(errors="replace") != event.prompt_id:
        raise ValueError(f"key {key!r} is not the prompt_id {event.prompt_id!r}")
    return event


async def apply_event(
    pool: asyncpg.Pool, event: PromptPublished | PromptRetired | Tombstone, now: dt.datetime
) -> int:
    """Store the event's effect (idempotent); the number of instant mails it queued."""
    async with pool.acquire() as conn, conn.transaction():
        if isinstance(event, PromptPublished):
            if not await repo.record_change(conn, event, now):
                return 0  # redelivered: its mails were queued the first time
            return await repo.fan_out_instant(conn, event)
        at = event.retired_at if isinstance(event, PromptRetired) else now
        await repo.record_retired(conn, event.prompt_id, at)
        return 0
