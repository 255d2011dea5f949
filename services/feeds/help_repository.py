"""SQL of "I can help" counted once per resident per prompt (table feeds.help_responses)."""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from . import repository as repo

__all__ = ["count_once", "seen"]


async def seen(conn: asyncpg.Connection, response_id: uuid.UUID) -> bool:
    return bool(
        await conn.fetchval("SELECT true FROM feeds.help_responses WHERE response_id = $1", response_id)
    )


async def count_once(
    conn: asyncpg.Connection, response_id: uuid.UUID, prompt_id: str, on: dt.date
) -> tuple[bool, int]:
    """(counted now, the prompt's count), inside the caller's transaction: the count goes up only for a
    response id not seen before. Once it commits, the caller calls `repository.note_counts_written`."""
    new = await conn.fetchval(
        "INSERT INTO feeds.help_responses (response_id, prompt_id, responded_on) VALUES ($1, $2, $3)"
        " ON CONFLICT (response_id) DO NOTHING RETURNING true",
        response_id,
        prompt_id,
        on,
    )
    if new:
        count = (await conn.fetchrow(repo.BUMP_COUNT, prompt_id))["responses"]
    else:
        count = await conn.fetchval(
            "SELECT responses FROM feeds.response_counts WHERE prompt_id = $1", prompt_id
        )
    return bool(new), count or 0
