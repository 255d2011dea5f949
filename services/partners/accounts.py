"""The operator's use cases for partner accounts: rotate a key, revoke it.

Each is one unit of work (docs/adr/0006-transactions.md); a refusal (`shared.keys.UnknownKeyHolder`,
`RevokedKeyHolder`) rolls it back and the admin API maps it to problem+json.
"""

from __future__ import annotations

import uuid

import asyncpg

from shared.keys import hash_key, lock_active, new_key

from . import repository
from .repository import Row

__all__ = ["revoke", "rotate"]


async def rotate(pool: asyncpg.Pool, partner_id: uuid.UUID) -> tuple[Row, str]:
    """The old key stops working at once; the new one is returned once."""
    key = new_key()
    async with pool.acquire() as conn, conn.transaction():
        await lock_active(conn, "partners.partners", partner_id)
        partner = await repository.set_partner_key(conn, partner_id, hash_key(key))
    return partner, key


async def revoke(pool: asyncpg.Pool, partner_id: uuid.UUID) -> Row:
    async with pool.acquire() as conn, conn.transaction():
        await lock_active(conn, "partners.partners", partner_id)
        await repository.revoke_partner(conn, partner_id)
        return await repository.partner(conn, partner_id)
