"""The digest schedule: when a daily or weekly period has ended, queue one digest per subscriber."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Callable

import asyncpg

from . import repository as repo
from .schedule import latest_period
from .settings import NotifierSettings

__all__ = ["build_due_digests", "digest_loop"]

log = logging.getLogger(__name__)


async def build_due_digests(
    pool: asyncpg.Pool, settings: NotifierSettings, now: dt.datetime
) -> dict[str, int]:
    """Queue the digests of the latest ended daily and weekly periods (a no-op once queued)."""
    queued = {}
    async with pool.acquire() as conn:
        for frequency in ("daily", "weekly"):
            p = latest_period(now, frequency, hour=settings.digest_hour, weekday=settings.digest_weekday)
            queued[p.key] = await repo.create_digests(conn, frequency, p.key, p.start, p.end)
        await repo.drop_expired_pending(conn, now)
        await repo.purge_sent(conn, settings.retention_days)
    return queued


async def digest_loop(
    pool: asyncpg.Pool, settings: NotifierSettings, clock: Callable[[], dt.datetime]
) -> None:
    while True:
        try:
            queued = await build_due_digests(pool, settings, clock())
            if any(queued.values()):
                log.info("digests queued", extra={"queued": queued})
        except Exception as exc:  # tried again at the next check; the period's key does not change
            log.warning("digest schedule failed", extra={"error": type(exc).__name__})
        await asyncio.sleep(settings.digest_check_s)
