"""What consuming prompts.v1 means here: record each new prompt revision and, in the same
transaction, one outbox row per instant subscriber who follows it."""

from __future__ import annotations

import datetime as dt

import asyncpg

from shared.contracts import PromptPublished, PromptRetired, Tombstone

from . import repository as repo

__all__ = ["apply_event"]


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
        prompt_id = event.prompt_id if isinstance(event, PromptRetired) else event.key
        await repo.record_retired(conn, prompt_id, at)
        return 0
