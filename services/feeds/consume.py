"""What consuming prompts.v1 means: parse (or refuse) a record, then store its effect."""

from __future__ import annotations

import datetime as dt

import asyncpg

from shared.contracts import PromptPublished, PromptRetired, Sensitivity, Tombstone

from . import repository as repo
from .cap import cancel_message, next_message
from .entries import entry_from_prompt
from .feedcache import note_local_write
from .settings import FeedsSettings

__all__ = ["apply_event"]


async def apply_event(
    pool: asyncpg.Pool, settings: FeedsSettings, event: PromptPublished | PromptRetired | Tombstone
) -> repo.Change | None:
    """Store the event's effect (idempotent); the change to fan out, or None if nothing changed."""
    try:
        return await _store(pool, settings, event)
    finally:
        note_local_write()  # even on failure: it may have committed; a spare invalidation is harmless


async def _store(
    pool: asyncpg.Pool, settings: FeedsSettings, event: PromptPublished | PromptRetired | Tombstone
) -> repo.Change | None:
    # One unit of work per record (docs/adr/0006-transactions.md): the CAP message read and the effect
    # it decides commit together.
    async with pool.acquire() as conn, conn.transaction():
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
