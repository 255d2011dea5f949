"""SQL of organisations, their sessions, the change audit, the platforms directory and offers of help."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Iterable
from typing import Any

import asyncpg

from shared.contracts import Category

from .platforms import Platform

__all__ = [
    "add_platform",
    "all_platforms",
    "changes",
    "create_organisation",
    "create_session",
    "delete_session",
    "end_sessions",
    "hand_over",
    "list_organisations",
    "load_directory",
    "offer_totals",
    "offers_for",
    "organisation",
    "organisation_by_key_hash",
    "platform_of",
    "purge_offers",
    "record_change",
    "responses_for",
    "revoke_organisation",
    "save_offer",
    "session",
    "set_organisation_key",
    "switch_platform",
    "to_platforms",
]


# --- organisations ----------------------------------------------------------------------------


async def create_organisation(
    conn: asyncpg.Connection, name: str, kind: str, key_hash: str, council_admin: bool = False
) -> asyncpg.Record:
    return await conn.fetchrow(
        "INSERT INTO prompter.organisations (id, name, kind, council_admin, key_hash)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING *",
        uuid.uuid4(),
        name,
        kind,
        council_admin,
        key_hash,
    )


async def organisation_by_key_hash(conn: asyncpg.Connection, key_hash: str) -> asyncpg.Record | None:
    return await conn.fetchrow("SELECT * FROM prompter.organisations WHERE key_hash = $1", key_hash)


async def list_organisations(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM prompter.organisations ORDER BY created_at, id"
    )
    return rows


async def organisation(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "SELECT * FROM prompter.organisations WHERE id = $1", organisation_id
    )
    return row


async def set_organisation_key(
    conn: asyncpg.Connection, organisation_id: uuid.UUID, key_hash: str
) -> asyncpg.Record:
    row: asyncpg.Record = await conn.fetchrow(
        "UPDATE prompter.organisations SET key_hash = $2 WHERE id = $1 RETURNING *", organisation_id, key_hash
    )
    return row


async def end_sessions(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> None:
    await conn.execute("DELETE FROM prompter.org_sessions WHERE organisation_id = $1", organisation_id)


async def revoke_organisation(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> bool:
    done = await conn.fetchval(
        "UPDATE prompter.organisations SET revoked_at = COALESCE(revoked_at, now()) WHERE id = $1"
        " RETURNING true",
        organisation_id,
    )
    return bool(done)


# --- web sessions -----------------------------------------------------------------------------


async def create_session(
    conn: asyncpg.Connection, token_hash: str, organisation_id: uuid.UUID, csrf: str, expires: dt.datetime
) -> None:
    await conn.execute("DELETE FROM prompter.org_sessions WHERE expires_at < now()")
    await conn.execute(
        "INSERT INTO prompter.org_sessions (token_hash, organisation_id, csrf_token, expires_at)"
        " VALUES ($1, $2, $3, $4)",
        token_hash,
        organisation_id,
        csrf,
        expires,
    )


async def session(conn: asyncpg.Connection, token_hash: str) -> asyncpg.Record | None:
    """The live session's organisation (with `csrf_token`), or None when unknown, expired or revoked."""
    return await conn.fetchrow(
        "SELECT o.*, s.csrf_token FROM prompter.org_sessions s"
        " JOIN prompter.organisations o ON o.id = s.organisation_id"
        " WHERE s.token_hash = $1 AND s.expires_at > now() AND o.revoked_at IS NULL",
        token_hash,
    )


async def delete_session(conn: asyncpg.Connection, token_hash: str) -> None:
    await conn.execute("DELETE FROM prompter.org_sessions WHERE token_hash = $1", token_hash)


# --- the change audit -------------------------------------------------------------------------


async def record_change(
    conn: asyncpg.Connection,
    opportunity_id: uuid.UUID,
    organisation: asyncpg.Record | None,
    action: str,
    diff: dict[str, Any],
) -> None:
    await conn.execute(
        "INSERT INTO prompter.opportunity_changes (opportunity_id, organisation_id, actor, action, diff)"
        " VALUES ($1, $2, $3, $4, $5::jsonb)",
        opportunity_id,
        organisation["id"] if organisation else None,
        organisation["name"] if organisation else "operator",
        action,
        json.dumps(diff, default=str, sort_keys=True),
    )


async def changes(
    conn: asyncpg.Connection,
    *,
    organisation_id: uuid.UUID | None = None,
    opportunity_id: uuid.UUID | None = None,
    limit: int = 200,
) -> list[dict[str, Any]]:
    rows = await conn.fetch(
        "SELECT c.* FROM prompter.opportunity_changes c"
        " JOIN prompter.opportunities o ON o.id = c.opportunity_id"
        " WHERE ($1::uuid IS NULL OR o.organisation_id = $1) AND ($2::uuid IS NULL OR c.opportunity_id = $2)"
        " ORDER BY c.id DESC LIMIT $3",
        organisation_id,
        opportunity_id,
        limit,
    )
    return [
        {
            "id": r["id"],
            "opportunity_id": str(r["opportunity_id"]),
            "organisation_id": str(r["organisation_id"]) if r["organisation_id"] else None,
            "actor": r["actor"],
            "action": r["action"],
            "diff": json.loads(r["diff"]),
            "at": r["at"],
        }
        for r in rows
    ]


# --- the platforms directory ------------------------------------------------------------------


def platform_of(row: asyncpg.Record) -> Platform:
    return Platform(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        url=row["url"],
        categories=frozenset(Category(c) for c in row["categories"]),
        coverage=row["coverage"],
        enabled=row["enabled"],
    )


async def load_directory(conn: asyncpg.Connection, platforms: Iterable[Platform]) -> None:
    """Upsert the shipped directory; the council's on/off choice of each entry is kept."""
    await conn.executemany(
        "INSERT INTO prompter.platforms (id, name, description, url, categories, coverage, source)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'directory')"
        " ON CONFLICT (id) DO UPDATE SET name = EXCLUDED.name, description = EXCLUDED.description,"
        "  url = EXCLUDED.url, categories = EXCLUDED.categories, coverage = EXCLUDED.coverage,"
        "  updated_at = now() WHERE prompter.platforms.source = 'directory'",
        [(p.id, p.name, p.description, p.url, sorted(map(str, p.categories)), p.coverage) for p in platforms],
    )


async def all_platforms(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM prompter.platforms ORDER BY source DESC, name, id"
    )
    return rows


async def switch_platform(conn: asyncpg.Connection, platform_id: str, enabled: bool) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE prompter.platforms SET enabled = $2, updated_at = now() WHERE id = $1 RETURNING *",
        platform_id,
        enabled,
    )


async def platform_for_update(conn: asyncpg.Connection, platform_id: str) -> asyncpg.Record | None:
    """A platform's row, locked until the transaction ends."""
    return await conn.fetchrow("SELECT * FROM prompter.platforms WHERE id = $1 FOR UPDATE", platform_id)


async def edit_platform(conn: asyncpg.Connection, platform_id: str, values: dict[str, Any]) -> asyncpg.Record:
    """Replace a platform's entry (name, description, url, categories, coverage); its row must exist."""
    row: asyncpg.Record = await conn.fetchrow(
        "UPDATE prompter.platforms SET name = $2, description = $3, url = $4, categories = $5,"
        " coverage = $6, updated_at = now() WHERE id = $1 RETURNING *",
        platform_id,
        values["name"],
        values["description"],
        values["url"],
        sorted(values["categories"]),
        values["coverage"],
    )
    return row


async def add_platform(conn: asyncpg.Connection, values: dict[str, Any]) -> asyncpg.Record | None:
    """Add the council's own platform; None if the id is taken."""
    return await conn.fetchrow(
        "INSERT INTO prompter.platforms (id, name, description, url, categories, coverage, source)"
        " VALUES ($1, $2, $3, $4, $5, $6, 'council') ON CONFLICT (id) DO NOTHING RETURNING *",
        values["id"],
        values["name"],
        values["description"],
        values["url"],
        values["categories"],
        values["coverage"],
    )


def to_platforms(rows: Iterable[asyncpg.Record]) -> list[Platform]:
    return [platform_of(r) for r in rows]


# --- offers of help with contact details ------------------------------------------------------


def _month(day: dt.date) -> dt.date:
    return day.replace(day=1)


async def _tally(conn: asyncpg.Connection, organisation_id: uuid.UUID, day: dt.date, column: str) -> None:
    await conn.execute(
        f"INSERT INTO prompter.offer_counts (organisation_id, month, {column}) VALUES ($1, $2, 1)"
        f" ON CONFLICT (organisation_id, month) DO UPDATE SET {column} = prompter.offer_counts.{column} + 1",
        organisation_id,
        _month(day),
    )


async def save_offer(
    conn: asyncpg.Connection,
    *,
    organisation_id: uuid.UUID,
    opportunity_id: uuid.UUID | None,
    prompt_id: str,
    first_name: str,
    email: str,
    consent_text: str,
    now: dt.datetime,
) -> uuid.UUID:
    offer_id = uuid.uuid4()
    await conn.execute(
        "INSERT INTO prompter.help_offers (id, organisation_id, opportunity_id, prompt_id, first_name,"
        " email, consent_text, created_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
        offer_id,
        organisation_id,
        opportunity_id,
        prompt_id,
        first_name,
        email,
        consent_text,
        now,
    )
    await _tally(conn, organisation_id, now.date(), "received")
    return offer_id


async def offers_for(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM prompter.help_offers WHERE organisation_id = $1 ORDER BY created_at, id",
        organisation_id,
    )
    return rows


async def hand_over(
    conn: asyncpg.Connection, organisation_id: uuid.UUID, offer_id: uuid.UUID, today: dt.date
) -> bool:
    """Delete the offer (the organisation has the details now); False if not theirs or gone."""
    gone = await conn.fetchval(
        "DELETE FROM prompter.help_offers WHERE id = $1 AND organisation_id = $2 RETURNING true",
        offer_id,
        organisation_id,
    )
    if gone:
        await _tally(conn, organisation_id, today, "handed_over")
    return bool(gone)


async def purge_offers(conn: asyncpg.Connection, older_than: dt.datetime) -> int:
    """Delete offers left unhanded since before `older_than`; returns how many."""
    rows = await conn.fetch(
        "DELETE FROM prompter.help_offers WHERE created_at < $1 RETURNING organisation_id", older_than
    )
    for r in rows:
        await _tally(conn, r["organisation_id"], older_than.date(), "expired")
    return len(rows)


async def offer_totals(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> dict[str, int]:
    row = await conn.fetchrow(
        "SELECT COALESCE(sum(received), 0)::int AS received,"
        " COALESCE(sum(handed_over), 0)::int AS handed_over,"
        " COALESCE(sum(expired), 0)::int AS expired FROM prompter.offer_counts WHERE organisation_id = $1",
        organisation_id,
    )
    return dict(row)


async def responses_for(conn: asyncpg.Connection, organisation_id: uuid.UUID) -> int:
    """Anonymous 'I can help' counted on prompts that linked this organisation's ways to help then."""
    responses: int = await conn.fetchval(
        "SELECT COALESCE(sum(responses), 0)::int FROM prompter.organisation_responses"
        " WHERE organisation_id = $1",
        organisation_id,
    )
    return responses
