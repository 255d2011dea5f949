"""What consuming prompts.v1 means here: record each new prompt revision and, in the same
transaction, one outbox row per instant subscriber who follows it."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from shared.contracts import PromptPublished, PromptRetired, Tombstone

from . import repository as repo

__all__ = ["apply_event", "apply_events"]

Event = PromptPublished | PromptRetired | Tombstone


async def apply_event(pool: asyncpg.Pool, event: Event, now: dt.datetime) -> int:
    """Store the event's effect (idempotent); the number of instant mails it queued."""
    return await apply_events(pool, [event], now)


async def apply_events(pool: asyncpg.Pool, events: Sequence[Event], now: dt.datetime) -> int:
    """Store a poll's events in order, in one transaction (idempotent); the instant mails queued."""
    async with pool.acquire() as conn, conn.transaction():
        return sum([await _store(conn, event, now) for event in events])


async def _store(conn: asyncpg.Connection, event: Event, now: dt.datetime) -> int:
    if isinstance(event, PromptPublished):
        if not await repo.record_change(conn, event, now):
            return 0  # redelivered: its mails were queued the first time
        return await repo.fan_out_instant(conn, event)
    at = event.retired_at if isinstance(event, PromptRetired) else now
    prompt_id = event.prompt_id if isinstance(event, PromptRetired) else event.key
    await repo.record_retired(conn, prompt_id, at)
    return 0
