"""What consuming prompts.v1 means: parse (or refuse) a record, then store its effect."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterator, Sequence
from typing import cast

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
            changes: list[repo.Change | None] = []
            for run in _runs(events):
                if isinstance(first := run[0], PromptPublished):
                    changes += await _publish(conn, settings, cast(list[PromptPublished], run), caps)
                else:  # a run of one
                    changes.append(await _retire(conn, settings, first, caps))
            return changes
    finally:
        note_local_write()  # even on failure: it may have committed; a spare invalidation is harmless


def _runs(events: Sequence[Event]) -> Iterator[list[Event]]:
    """The events in order, in runs stored by one statement each: publications of distinct prompts
    together (cut where a prompt comes again, as one statement can store a row once), any other
    event alone."""
    run: list[Event] = []
    ids: set[str] = set()
    for event in events:
        published = isinstance(event, PromptPublished)
        if run and (not published or not isinstance(run[0], PromptPublished) or _prompt_id(event) in ids):
            yield run
            run, ids = [], set()
        run.append(event)
        ids.add(_prompt_id(event))
    if run:
        yield run


def _prompt_id(event: Event) -> str:
    return event.key if isinstance(event, Tombstone) else event.prompt_id


def _note_cap(caps: dict[str, repo.CapHead], message: repo.CapHead) -> None:
    """Keep `caps` what `latest_caps` would read now: the latest by (sent, revision)."""
    previous = caps.get(message.prompt_id)
    if previous is None or (message.sent, message.revision) > (previous.sent, previous.revision):
        caps[message.prompt_id] = message


async def _publish(
    conn: asyncpg.Connection,
    settings: FeedsSettings,
    prompts: Sequence[PromptPublished],
    caps: dict[str, repo.CapHead],
) -> list[repo.Change | None]:
    """Publications of distinct prompts, in one statement; `caps` holds each prompt's latest CAP
    message and is kept current (a prompt's next message follows the one it stored)."""
    items = []
    for prompt in prompts:
        entry = entry_from_prompt(prompt, base_url=settings.base_url, tag_authority=settings.tag_authority)
        cap = None
        if prompt.sensitivity is Sensitivity.PLACE:
            cap = next_message(prompt, caps.get(prompt.prompt_id), settings.cap_sender)
        items.append((prompt, entry.as_json(), cap))
    changes = await repo.apply_published_all(conn, items)
    for (prompt, _, cap), change in zip(items, changes, strict=True):
        if change is not None and cap is not None:
            identifier, msg_type, refs = cap
            sent = prompt.published_at.replace(microsecond=0)
            _note_cap(
                caps,
                repo.CapHead(identifier, prompt.prompt_id, prompt.revision, msg_type, sent, refs),
            )
    return changes


async def _retire(
    conn: asyncpg.Connection,
    settings: FeedsSettings,
    event: PromptRetired | Tombstone,
    caps: dict[str, repo.CapHead],
) -> repo.Change | None:
    """A retirement's effect, with its CAP Cancel; `caps` is kept current as in `_publish`."""
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
            repo.CapHead(identifier, prompt_id, previous.revision, "Cancel", sent, refs),
        )
    return change
