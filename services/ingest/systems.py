"""The operator's use cases for council systems: register, rotate a key, revoke, re-scope.

Each is one unit of work (docs/adr/0006-transactions.md): the function opens the transaction, the
repository runs the SQL, and a refusal (`shared.keys.UnknownKeyHolder`, `RevokedKeyHolder`) rolls it
back; the admin API maps those to problem+json.
"""

from __future__ import annotations

import uuid
from collections.abc import Iterable

import asyncpg

from shared.keys import lock_active

from . import repository
from .auth import generate_key, hash_key
from .context import IngestContext
from .repository import System

__all__ = ["create", "revoke", "rotate", "update"]


async def create(
    ctx: IngestContext, *, name: str, council_id: str, categories: Iterable[str], rate_per_minute: int | None
) -> tuple[System, str]:
    """A new system and its key, which is returned once: only its hash is stored."""
    key = generate_key()
    async with ctx.pool.acquire() as conn:
        system = await repository.create_system(
            conn,
            name=name,
            council_id=council_id,
            key_hash=hash_key(key),
            categories=sorted(set(categories)),
            rate_per_minute=rate_per_minute,
        )
    return system, key


async def _lock_active(conn: asyncpg.Connection, system_id: uuid.UUID) -> None:
    await lock_active(conn, "ingest.council_systems", system_id)


async def rotate(ctx: IngestContext, system_id: uuid.UUID) -> tuple[System, str]:
    """The old key stops working at once; the new one is returned once."""
    key = generate_key()
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _lock_active(conn, system_id)
        system = await repository.set_system_key(conn, system_id, hash_key(key))
    ctx.systems.forget()  # before answering: the NOTIFY reaches this process a moment later
    return system, key


async def revoke(ctx: IngestContext, system_id: uuid.UUID) -> System:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _lock_active(conn, system_id)
        await repository.revoke_system(conn, system_id)
        system = await repository.system_for_update(conn, system_id)
    assert system is not None  # locked above, in this transaction
    ctx.systems.forget()
    return system


async def update(
    ctx: IngestContext, system_id: uuid.UUID, categories: Iterable[str], rate_per_minute: int | None
) -> System:
    """Set the categories the system may send and its rate limit (None: the service's default)."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await _lock_active(conn, system_id)
        system = await repository.scope_system(conn, system_id, sorted(set(categories)), rate_per_minute)
    ctx.systems.forget()
    return system
