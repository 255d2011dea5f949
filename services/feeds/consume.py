"""What consuming prompts.v1 means: parse (or refuse) a record, then store its effect."""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence

import asyncpg

from shared.contracts import PromptPublished, PromptRetired, Sensitivity, Tombstone

from . import repository as repo
from .cap import cancel_message, next_message
from .entries import entry_from_prompt
from .feedcache import note_local_write
from .settings import FeedsSettings

__all__ = ["apply_event", "apply_events"]

Event = PromptPublished | PromptRetired | Tombstone


async def apply_event(pool: asyncpg.Pool, settings: FeedsSettings, event: Event) -> repo.Change | None:
    """Store one event's effect (idempotent); the change to fan out, or None if nothing changed."""
    (change,) = await apply_events(pool, settings, [event])
    return change


async def apply_events(
    pool: asyncpg.Pool, settings: FeedsSettings, events: Sequence[Event]
) -> list[repo.Change | None]:
    """Store a poll's events in order, in one transaction (docs/adr/0006-transactions.md): each CAP
    message read and the effect it decides commit together, and the listeners' notifications go out
    at the commit. Idempotent; per event, the change to fan out or None."""
    try:
        async with pool.acquire() as conn, conn.transaction():
            return [await _store(conn, settings, event) for event in events]
    finally:
        note_local_write()  # even on failure: it may have committed; a spare invalidation is harmless


async def _store(conn: asyncpg.Connection, settings: FeedsSettings, event: Event) -> repo.Change | None:
    if isinstance(event, PromptPublished):
        entry = entry_from_prompt(event, base_url=settings.base_url, tag_authority=settings.tag_authority)
        cap = None
        if event.sensitivity is Sensitivity.PLACE:
            cap = next_message(event, await repo.latest_cap(conn, event.prompt_id), settings.cap_sender)
        return await repo.apply_published(conn, event, entry.as_json(), cap)
    retired_at = event.retired_at if isinstance(event, PromptRetired) else dt.datetime.now(dt.UTC)
    prompt_id = event.prompt_id if isinstance(event, PromptRetired) else event.key
    previous = await repo.latest_cap(conn, prompt_id)
    cancel = None
    if previous is not None and previous.msg_type != "Cancel":
        cancel = cancel_message(previous, settings.cap_sender)
    return await repo.apply_retired(conn, prompt_id, retired_at, cancel)
