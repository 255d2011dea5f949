"""Use cases behind the partners' admin and webhook routes: rotate or revoke a key, delete a
webhook, replay its history.

Each is one unit of work (docs/adr/0006-transactions.md); a refusal (`shared.keys.UnknownKeyHolder`,
`RevokedKeyHolder`) rolls it back and the admin API maps it to problem+json.
"""

from __future__ import annotations

import datetime as dt
import uuid

import asyncpg

from shared.keys import hash_key, lock_active, new_key

from . import repository
from .payloads import webhook_body
from .repository import Row

__all__ = ["delete_webhook", "replay", "revoke", "rotate"]


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


async def delete_webhook(pool: asyncpg.Pool, partner_id: uuid.UUID, webhook_id: uuid.UUID) -> bool:
    """Delete a partner's own webhook and end its pending deliveries; False if it has none by that id."""
    async with pool.acquire() as conn, conn.transaction():
        if not await repository.delete_webhook(conn, partner_id, webhook_id):
            return False
        await repository.end_pending_deliveries(conn, webhook_id, "webhook deleted")
        return True


async def replay(
    pool: asyncpg.Pool, webhook: Row, since: dt.datetime, until: dt.datetime | None, max_rows: int
) -> int:
    """Queue the webhook's history in the window as deliveries (-1: more than `max_rows`, none queued)."""
    async with pool.acquire() as conn, conn.transaction():
        return await repository.replay_history(conn, webhook, since, until, webhook_body, max_rows=max_rows)
