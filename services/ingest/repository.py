"""All of ingest's SQL: council systems, the accepted-signal guard, and the Open311 street-level view."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg

__all__ = [
    "Open311Row",
    "System",
    "accepted_per_day",
    "close_open311",
    "create_system",
    "find_system",
    "insert_accepted",
    "insert_open311",
    "list_systems",
    "open311_per_day",
    "open311_rows",
    "revoke_system",
    "scope_system",
    "set_system_key",
    "system_for_update",
]


@dataclass(frozen=True)
class System:
    """A council system allowed to send signals (never holds the key itself)."""

    id: uuid.UUID
    name: str
    council_id: str
    categories: frozenset[str]
    rate_per_minute: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None = None


def _system(row: asyncpg.Record) -> System:
    return System(
        row["id"],
        row["name"],
        row["council_id"],
        frozenset(row["categories"]),
        row["rate_per_minute"],
        row["created_at"],
        row["revoked_at"],
    )


async def create_system(
    conn: asyncpg.Connection,
    *,
    name: str,
    council_id: str,
    key_hash: str,
    categories: Sequence[str],
    rate_per_minute: int | None,
) -> System:
    row = await conn.fetchrow(
        "INSERT INTO ingest.council_systems (id, name, council_id, key_hash, categories, rate_per_minute)"
        " VALUES ($1, $2, $3, $4, $5, $6) RETURNING *",
        uuid.uuid4(),
        name,
        council_id,
        key_hash,
        list(categories),
        rate_per_minute,
    )
    return _system(row)


async def find_system(conn: asyncpg.Connection, key_hash: str) -> System | None:
    """The active (not revoked) system whose key hashes to `key_hash`."""
    row = await conn.fetchrow(
        "SELECT * FROM ingest.council_systems WHERE key_hash = $1 AND revoked_at IS NULL", key_hash
    )
    return _system(row) if row else None


async def list_systems(conn: asyncpg.Connection) -> list[System]:
    return [
        _system(r) for r in await conn.fetch("SELECT * FROM ingest.council_systems ORDER BY created_at, id")
    ]


async def system_for_update(conn: asyncpg.Connection, system_id: uuid.UUID) -> System | None:
    """The system with this id, revoked or not, its row locked until the transaction ends."""
    row = await conn.fetchrow("SELECT * FROM ingest.council_systems WHERE id = $1 FOR UPDATE", system_id)
    return _system(row) if row else None


async def set_system_key(conn: asyncpg.Connection, system_id: uuid.UUID, key_hash: str) -> System:
    row = await conn.fetchrow(
        "UPDATE ingest.council_systems SET key_hash = $2 WHERE id = $1 RETURNING *", system_id, key_hash
    )
    return _system(row)


async def scope_system(
    conn: asyncpg.Connection, system_id: uuid.UUID, categories: Sequence[str], rate_per_minute: int | None
) -> System:
    row = await conn.fetchrow(
        "UPDATE ingest.council_systems SET categories = $2, rate_per_minute = $3 WHERE id = $1 RETURNING *",
        system_id,
        list(categories),
        rate_per_minute,
    )
    return _system(row)


async def revoke_system(conn: asyncpg.Connection, system_id: uuid.UUID) -> bool:
    status: str = await conn.execute(
        "UPDATE ingest.council_systems SET revoked_at = now() WHERE id = $1 AND revoked_at IS NULL", system_id
    )
    return status.endswith(" 1")


async def insert_accepted(
    conn: asyncpg.Connection,
    event_ids: Sequence[uuid.UUID],
    system_id: uuid.UUID,
    source: str,
    categories: Sequence[str] | None = None,
) -> set[uuid.UUID]:
    """Record the ids (with each one's category); returns those not seen before (the rest are duplicates)."""
    rows = await conn.fetch(
        "INSERT INTO ingest.accepted_signals (event_id, system_id, source, category)"
        " SELECT e, $2, $3, c FROM unnest($1::uuid[], $4::text[]) AS t(e, c)"
        " ON CONFLICT (event_id) DO NOTHING RETURNING event_id",
        list(event_ids),
        system_id,
        source,
        list(categories) if categories is not None else [None] * len(event_ids),
    )
    return {r["event_id"] for r in rows}


async def insert_open311(
    conn: asyncpg.Connection,
    *,
    service_request_id: str,
    council_id: str,
    system_id: uuid.UUID,
    event_id: uuid.UUID,
    service_code: str,
    street_id: str,
    requested_at: dt.datetime,
) -> None:
    await conn.execute(
        "INSERT INTO ingest.open311_requests (service_request_id, council_id, system_id, event_id,"
        " service_code, street_id, requested_at, updated_at) VALUES ($1, $2, $3, $4, $5, $6, $7, $7)",
        service_request_id,
        council_id,
        system_id,
        event_id,
        service_code,
        street_id,
        requested_at,
    )


async def close_open311(
    conn: asyncpg.Connection, council_id: str, service_request_ids: Sequence[str], updated_at: dt.datetime
) -> None:
    """A withdrawn signal whose subject is an Open311 request closes that request."""
    if service_request_ids:
        await conn.execute(
            "UPDATE ingest.open311_requests SET status = 'closed', updated_at = $3"
            " WHERE council_id = $1 AND service_request_id = ANY($2::text[]) AND status = 'open'",
            council_id,
            list(service_request_ids),
            updated_at,
        )


@dataclass(frozen=True)
class Open311Row:
    service_request_id: str
    service_code: str
    street_id: str
    status: str
    requested_at: dt.datetime
    updated_at: dt.datetime


async def open311_rows(
    conn: asyncpg.Connection,
    *,
    ids: Sequence[str] | None = None,
    service_codes: Sequence[str] | None = None,
    statuses: Sequence[str] | None = None,
    start: dt.datetime | None = None,
    end: dt.datetime | None = None,
    limit: int = 1000,
) -> list[Open311Row]:
    rows = await conn.fetch(
        "SELECT service_request_id, service_code, street_id, status, requested_at, updated_at"
        " FROM ingest.open311_requests"
        " WHERE ($1::text[] IS NULL OR service_request_id = ANY($1))"
        "   AND ($2::text[] IS NULL OR service_code = ANY($2))"
        "   AND ($3::text[] IS NULL OR status = ANY($3))"
        "   AND ($4::timestamptz IS NULL OR requested_at >= $4)"
        "   AND ($5::timestamptz IS NULL OR requested_at <= $5)"
        " ORDER BY requested_at DESC, service_request_id LIMIT $6",
        list(ids) if ids is not None else None,
        list(service_codes) if service_codes is not None else None,
        list(statuses) if statuses is not None else None,
        start,
        end,
        limit,
    )
    return [Open311Row(**dict(r)) for r in rows]


async def accepted_per_day(conn: asyncpg.Connection, days: int) -> list[asyncpg.Record]:
    """Signals accepted in the last `days` per system, category and UTC day."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT a.system_id, s.name, a.category, (a.accepted_at AT TIME ZONE 'UTC')::date AS day,
                  count(*) AS signals
           FROM ingest.accepted_signals a JOIN ingest.council_systems s ON s.id = a.system_id
           WHERE a.accepted_at >= now() - make_interval(days => $1)
           GROUP BY 1, 2, 3, 4 ORDER BY 4, 2, 3""",
        days,
    )
    return rows


async def open311_per_day(conn: asyncpg.Connection, days: int) -> list[asyncpg.Record]:
    """Open311 requests made in the last `days` per service code and UTC day."""
    rows: list[asyncpg.Record] = await conn.fetch(
        """SELECT service_code, (requested_at AT TIME ZONE 'UTC')::date AS day, count(*) AS requests
           FROM ingest.open311_requests WHERE requested_at >= now() - make_interval(days => $1)
           GROUP BY 1, 2 ORDER BY 2, 1""",
        days,
    )
    return rows
