"""All of the console's SQL: operators, sessions, the audit, and dead-letter decisions."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

import asyncpg

__all__ = [
    "Operator",
    "Session",
    "add_audit",
    "create_operator",
    "create_session",
    "decide_dead_letter",
    "decided_dead_letters",
    "end_session",
    "find_operator",
    "list_audit",
    "list_operators",
    "recent_failures",
    "set_operator_disabled",
    "touch_session",
]


@dataclass(frozen=True)
class Operator:
    id: uuid.UUID
    username: str
    role: str
    password_hash: str
    created_at: dt.datetime
    disabled_at: dt.datetime | None


@dataclass(frozen=True)
class Session:
    token_hash: str
    username: str
    role: str
    csrf_token: str


def _operator(row: asyncpg.Record) -> Operator:
    return Operator(
        row["id"], row["username"], row["role"], row["password_hash"], row["created_at"], row["disabled_at"]
    )


async def create_operator(conn: asyncpg.Connection, username: str, password_hash: str, role: str) -> Operator:
    row = await conn.fetchrow(
        "INSERT INTO console.operators (username, password_hash, role) VALUES ($1, $2, $3) RETURNING *",
        username,
        password_hash,
        role,
    )
    return _operator(row)


async def find_operator(conn: asyncpg.Connection, username: str) -> Operator | None:
    row = await conn.fetchrow("SELECT * FROM console.operators WHERE username = $1", username)
    return _operator(row) if row else None


async def list_operators(conn: asyncpg.Connection) -> list[Operator]:
    return [_operator(r) for r in await conn.fetch("SELECT * FROM console.operators ORDER BY username")]


async def set_operator_disabled(conn: asyncpg.Connection, username: str) -> bool:
    """Disable an operator and end their sessions (the caller's transaction makes it at once)."""
    op_id = await conn.fetchval(
        "UPDATE console.operators SET disabled_at = now() WHERE username = $1 AND disabled_at IS NULL"
        " RETURNING id",
        username,
    )
    if op_id is None:
        return False
    await conn.execute(
        "UPDATE console.sessions SET ended_at = now() WHERE operator_id = $1 AND ended_at IS NULL", op_id
    )
    return True


async def create_session(
    conn: asyncpg.Connection, token_hash: str, operator_id: uuid.UUID, csrf_token: str
) -> None:
    await conn.execute(
        "INSERT INTO console.sessions (token_hash, operator_id, csrf_token) VALUES ($1, $2, $3)",
        token_hash,
        operator_id,
        csrf_token,
    )


async def touch_session(
    conn: asyncpg.Connection, token_hash: str, idle: dt.timedelta, absolute: dt.timedelta
) -> Session | None:
    """The live session for this token (its idle clock restarted), or None when ended or expired."""
    row = await conn.fetchrow(
        """UPDATE console.sessions s SET last_seen_at = now()
           FROM console.operators o
           WHERE s.token_hash = $1 AND o.id = s.operator_id AND s.ended_at IS NULL
             AND o.disabled_at IS NULL
             AND s.last_seen_at > now() - $2::interval AND s.created_at > now() - $3::interval
           RETURNING s.token_hash, o.username, o.role, s.csrf_token""",
        token_hash,
        idle,
        absolute,
    )
    return Session(row["token_hash"], row["username"], row["role"], row["csrf_token"]) if row else None


async def end_session(conn: asyncpg.Connection, token_hash: str) -> None:
    await conn.execute(
        "UPDATE console.sessions SET ended_at = now() WHERE token_hash = $1 AND ended_at IS NULL", token_hash
    )


async def add_audit(
    conn: asyncpg.Connection,
    username: str,
    action: str,
    target: str = "",
    outcome: str = "done",
    detail: str = "",
) -> None:
    await conn.execute(
        "INSERT INTO console.audit (username, action, target, outcome, detail) VALUES ($1, $2, $3, $4, $5)",
        username[:100],
        action,
        target[:300],
        outcome,
        detail[:1000],
    )


async def list_audit(conn: asyncpg.Connection, limit: int = 200) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM console.audit ORDER BY at DESC, id DESC LIMIT $1", limit
    )
    return rows


async def recent_failures(conn: asyncpg.Connection, username: str, window: dt.timedelta) -> int:
    failures: int = await conn.fetchval(
        "SELECT count(*) FROM console.audit WHERE action = 'sign in' AND outcome = 'failed'"
        " AND username = $1 AND at > now() - $2::interval",
        username[:100],
        window,
    )
    return failures


async def decided_dead_letters(conn: asyncpg.Connection) -> dict[tuple[int, int], str]:
    rows = await conn.fetch('SELECT partition, "offset", decision FROM console.dead_letter_decisions')
    return {(r["partition"], r["offset"]): r["decision"] for r in rows}


async def decide_dead_letter(
    conn: asyncpg.Connection, partition: int, offset: int, decision: str, username: str
) -> bool:
    """Record a decision once; False when the letter was already replayed or discarded."""
    done = await conn.fetchval(
        'INSERT INTO console.dead_letter_decisions (partition, "offset", decision, username)'
        " VALUES ($1, $2, $3, $4) ON CONFLICT DO NOTHING RETURNING 1",
        partition,
        offset,
        decision,
        username,
    )
    return done is not None
