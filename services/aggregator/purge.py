"""The pseudonym purge (docs/privacy.md, retention) run by the service itself, daily by default."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging

import asyncpg
from prometheus_client import Counter

from .settings import AggregatorSettings
from .subjects import PurgeCounts, purge

__all__ = ["PURGED", "PURGE_MARGIN_DAYS", "keep_days", "purge_forever", "purge_once"]

log = logging.getLogger(__name__)

PURGED = Counter("aggregator_purged_rows_total", "Rows deleted by the pseudonym purge", ["table"])

PURGE_MARGIN_DAYS = 62  # as ingest's time tolerance: the previous month may be unreleased


def keep_days(settings: AggregatorSettings) -> int:
    """How long an ended row is kept: no release still to be made, no place trend window needs it."""
    return max(PURGE_MARGIN_DAYS, 2 * settings.trend_days)


async def purge_once(pool: asyncpg.Pool, settings: AggregatorSettings, now: dt.datetime) -> PurgeCounts:
    async with pool.acquire() as conn:
        return await purge(conn, now, keep_days(settings))


async def purge_forever(pool: asyncpg.Pool, settings: AggregatorSettings) -> None:
    """Purge shortly after start, then every `purge_interval_seconds`. Several replicas may run it at
    once: each DELETE only removes rows already past the cutoff, so a second run finds nothing."""
    await asyncio.sleep(settings.purge_first_delay_seconds)
    while True:
        try:
            counts = await purge_once(pool, settings, dt.datetime.now(dt.UTC))
            for table, n in counts.items():
                PURGED.labels(table).inc(n)
            # Counts per table only: never a pseudonym.
            log.info("purge: %s", ", ".join(f"{n} {table}" for table, n in counts.items()))
        except Exception:
            log.exception("purge failed; trying again at the next interval")
        await asyncio.sleep(settings.purge_interval_seconds)
