"""SQL behind the public impact pages: the needs history, offers of help per month, prompts' start."""

from __future__ import annotations

import datetime as dt

import asyncpg

from .impact import HistoryRow

__all__ = ["history", "offers_per_month", "prompts_started", "wards_seen"]


async def history(conn: asyncpg.Connection, ward_code: str | None) -> list[HistoryRow]:
    rows = await conn.fetch(
        "SELECT prompt_id, category, active, on_day, count, band, trend FROM prompter.needs_history"
        " WHERE $1::text IS NULL OR ward_code = $1 ORDER BY id",
        ward_code,
    )
    return [HistoryRow(**dict(r)) for r in rows]


async def offers_per_month(
    conn: asyncpg.Connection, ward_code: str | None, since: dt.date
) -> dict[dt.date, int]:
    """Counted "I can help" responses per month (each resident once per prompt)."""
    rows = await conn.fetch(
        "SELECT date_trunc('month', s.responded_on)::date AS month, count(*)::int AS n"
        " FROM prompter.responses_seen s LEFT JOIN prompter.prompts p USING (prompt_id)"
        " WHERE s.responded_on >= $2 AND ($1::text IS NULL OR p.ward_code = $1) GROUP BY 1",
        ward_code,
        since,
    )
    return {r["month"]: r["n"] for r in rows}


async def prompts_started(conn: asyncpg.Connection, ward_code: str | None) -> dt.date | None:
    started: dt.date | None = await conn.fetchval(
        "SELECT min(first_published_on) FROM prompter.prompts WHERE $1::text IS NULL OR ward_code = $1",
        ward_code,
    )
    return started


async def wards_seen(conn: asyncpg.Connection) -> list[str]:
    rows = await conn.fetch(
        "SELECT DISTINCT ward_code FROM prompter.needs_history WHERE ward_code IS NOT NULL ORDER BY 1"
    )
    return [r["ward_code"] for r in rows]
