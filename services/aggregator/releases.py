"""Monthly person-category releases (rules 3-6, 8, 9): computed once, noise and ledger stored."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

import asyncpg

from shared.contracts import STREET_NEEDS

from . import repository as repo
from .areas import Areas
from .consumer import caught_up
from .disclosure import DisclosurePolicy, Ledger, compute_person_release, parse_period, release_due, tally
from .settings import AggregatorSettings
from .state import person_memberships
from .views import diff, person_views

__all__ = ["CATCH_UP_LAG", "ReleaseSummary", "last_finished_period", "release_forever", "release_period"]

log = logging.getLogger(__name__)
# Late signals about a month can arrive after it ends, so a release waits until the state holds
# everything appended up to this long ago, not merely everything appended before the month ended.
CATCH_UP_LAG = dt.timedelta(minutes=1)


@dataclass(frozen=True, slots=True)
class ReleaseSummary:
    period: str
    published: int
    withheld: int
    changes: int
    already_released: bool = False


def last_finished_period(now: dt.datetime, delay_days: int = 0) -> str:
    """The latest calendar month whose release is due at `now`."""
    shifted = now.astimezone(dt.UTC) - dt.timedelta(days=delay_days)
    year, month = (shifted.year, shifted.month - 1) if shifted.month > 1 else (shifted.year - 1, 12)
    return f"{year:04d}-{month:02d}"


async def release_period(pool: asyncpg.Pool, areas: Areas, policy: DisclosurePolicy, period: str,
                         now: dt.datetime) -> ReleaseSummary:
    """Release one finished month, once: a second call returns the stored release untouched.

    Everything (noise draws, ledger charges, cells, audit rows, published view, outbox) commits in
    one transaction, so the noise is stored before anything derived from it can be published.
    """
    release_due(period, now, policy.release_delay_days)
    async with pool.acquire() as conn, conn.transaction():
        await repo.lock_releases(conn)
        if await repo.release_exists(conn, period):
            return ReleaseSummary(period, 0, 0, 0, already_released=True)
        latest = await conn.fetchval("SELECT max(period) FROM aggregator.releases")
        rows = await repo.rows(conn, categories=policy.person_categories)
        memberships = person_memberships(rows, period, areas.person_unit_of)
        subjects = {s for s, _ in memberships}
        ledger = Ledger(await repo.load_ledger(conn, subjects, parse_period(period)[0]))
        counted = tally(period, memberships, ledger, policy)
        result = compute_person_release(
            period, counted.counts, areas.person_units, policy, await repo.load_noise(conn, period),
            now=now, excluded=counted.excluded)
        await repo.save_release(conn, result, counted.charges, len(subjects), now)
        changes = []
        # An older month released late is kept for the record but does not replace a newer view.
        if latest is None or period > latest:
            views = person_views(result, areas)
            previous = await repo.load_previous(conn, sensitivity="person")
            changes = diff(views, previous, set(views) | {k for k, p in previous.items() if p.live}, now)
            await repo.write_changes(conn, changes, areas, STREET_NEEDS.name)
    log.info("person release", extra={"period": period, "published": len(result.published),
                                       "withheld": len(result.withheld)})
    return ReleaseSummary(period, len(result.published), len(result.withheld), len(changes))


async def release_forever(pool: asyncpg.Pool, areas: Areas, settings: AggregatorSettings) -> None:
    """Release the last finished month once the consumed state holds every event of it."""
    policy = settings.policy()
    while True:
        # Wait first: a starting replica is still replaying and its state is not yet complete.
        await asyncio.sleep(settings.release_check_interval_seconds)
        try:
            now = dt.datetime.now(dt.UTC)
            period = last_finished_period(now, policy.release_delay_days)
            async with pool.acquire() as conn:
                done = await repo.release_exists(conn, period)
            if not done and await caught_up(pool, settings.kafka_bootstrap_servers, now - CATCH_UP_LAG):
                await release_period(pool, areas, policy, period, now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monthly release failed; will retry")
