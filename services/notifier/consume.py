"""What consuming prompts.v1 means here: record each new prompt revision and, in the same
transaction, one outbox row per instant subscriber who follows it."""

from __future__ import annotations

import datetime as dt
import itertools
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
    """Store a poll's events in order, in one transaction (idempotent); the instant mails queued.

    Consecutive published revisions are stored together (a few statements for the lot); a
    retirement is stored where it comes, so a prompt retired and published again in one poll ends
    as it would one event at a time."""
    async with pool.acquire() as conn, conn.transaction():
        queued = 0
        for published, run in itertools.groupby(events, key=lambda e: isinstance(e, PromptPublished)):
            if published:
                fresh = await repo.record_changes(
                    conn, [e for e in run if isinstance(e, PromptPublished)], now
                )
                queued += await repo.fan_out_instant(conn, fresh)
            else:
                for event in run:
                    await _retire(conn, event, now)
        return queued


async def _retire(conn: asyncpg.Connection, event: Event, now: dt.datetime) -> None:
    at = event.retired_at if isinstance(event, PromptRetired) else now
    prompt_id = event.prompt_id if isinstance(event, PromptRetired) else event.key
    await repo.record_retired(conn, prompt_id, at)
