"""The purge of subscriptions nobody reads (docs/privacy.md, retention) run by the service itself."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
from prometheus_client import Counter

from . import repository as repo
from .settings import FeedsSettings

__all__ = ["PURGED", "purge_forever"]

log = logging.getLogger(__name__)

PURGED = Counter("feeds_subscriptions_purged_total", "Unread subscriptions deleted by the purge")


async def purge_forever(pool: asyncpg.Pool, settings: FeedsSettings) -> None:
    """Purge shortly after start, then every `purge_interval_s`. Several replicas may run it at once:
    the DELETE only removes rows already past the cutoff, so a second run finds nothing."""
    await asyncio.sleep(settings.purge_first_delay_s)
    while True:
        try:
            async with pool.acquire() as conn:
                gone = await repo.purge_subscriptions(conn, settings.subscription_unread_days)
            PURGED.inc(gone)
            log.info("unread subscriptions deleted", extra={"deleted": gone})  # a count, never a token
        except Exception:  # the database away must not end the loop
            log.exception("purging subscriptions failed; retrying next interval")
        await asyncio.sleep(settings.purge_interval_s)
