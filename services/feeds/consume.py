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
            caps = await repo.latest_caps(conn, (_prompt_id(event) for event in events))
            return [await _store(conn, settings, event, caps) for event in events]
    finally:
        note_local_write()  # even on failure: it may have committed; a spare invalidation is harmless


def _prompt_id(event: Event) -> str:
    return event.key if isinstance(event, Tombstone) else event.prompt_id


def _note_cap(caps: dict[str, repo.CapMessage], message: repo.CapMessage) -> None:
    """Keep `caps` what `latest_caps` would read now: the latest by (sent, revision)."""
    previous = caps.get(message.prompt_id)
    if previous is None or (message.sent, message.revision) > (previous.sent, previous.revision):
        caps[message.prompt_id] = message


async def _store(
    conn: asyncpg.Connection, settings: FeedsSettings, event: Event, caps: dict[str, repo.CapMessage]
) -> repo.Change | None:
    """One event's effect; `caps` holds each prompt's latest CAP message, kept current as it goes."""
    if isinstance(event, PromptPublished):
        entry = entry_from_prompt(event, base_url=settings.base_url, tag_authority=settings.tag_authority)
        cap = None
        if event.sensitivity is Sensitivity.PLACE:
            cap = next_message(event, caps.get(event.prompt_id), settings.cap_sender)
        change = await repo.apply_published(conn, event, entry.as_json(), cap)
        if change is not None and cap is not None:
            identifier, msg_type, refs = cap
            sent = event.published_at.replace(microsecond=0)
            _note_cap(
                caps,
                repo.CapMessage(identifier, event.prompt_id, event.revision, msg_type, sent, refs, event),
            )
        return change
    retired_at = event.retired_at if isinstance(event, PromptRetired) else dt.datetime.now(dt.UTC)
    prompt_id = _prompt_id(event)
    previous = caps.get(prompt_id)
    cancel = None
    if previous is not None and previous.msg_type != "Cancel":
        cancel = cancel_message(previous, settings.cap_sender)
    change = await repo.apply_retired(conn, prompt_id, retired_at, cancel)
    if change is not None and cancel is not None and previous is not None:
        identifier, refs = cancel
        sent = retired_at.replace(microsecond=0)
        _note_cap(
            caps,
            repo.CapMessage(identifier, prompt_id, previous.revision, "Cancel", sent, refs, previous.event),
        )
    return change
