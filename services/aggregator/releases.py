"""Monthly person-category releases (rules 3-6, 8, 9): computed once, noise and ledger stored;
quarterly ward trends (rule 5) once all three months of a quarter are released."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaConsumer

from shared.contracts import SIGNALS_ANONYMISED, STREET_NEEDS
from shared.kafka import client_options

from . import repository as repo
from .areas import Areas
from .consumer import topic_partitions
from .disclosure import (
    DisclosurePolicy,
    Ledger,
    compute_person_release,
    compute_ward_trends,
    parse_period,
    previous_quarter,
    quarter_months,
    quarter_of,
    release_due,
    tally,
)
from .settings import AggregatorSettings
from .state import person_memberships
from .views import diff, is_ward_trend, person_views, ward_trend_views

__all__ = [
    "CATCH_UP_WAIT_S",
    "QuarterSummary",
    "ReleaseSummary",
    "caught_up",
    "last_finished_period",
    "release_forever",
    "release_period",
    "release_quarter",
]

log = logging.getLogger(__name__)
# Late signals about a month can arrive after it ends, so a release waits until the state holds
# everything appended to the topic when it was decided, not merely what came before the month ended.
# Record timestamps are coarse (docs/privacy.md rule 1) and cannot say when a record was appended, so
# the check takes the topic's end offsets and waits up to this long for the state to reach them.
CATCH_UP_WAIT_S = 60.0


@dataclass(frozen=True, slots=True)
class QuarterSummary:
    quarter: str
    published: int  # ward trends
    withheld: int
    changes: int
    complete: bool  # all three months released: the quarter is decided and never recomputed


@dataclass(frozen=True, slots=True)
class ReleaseSummary:
    period: str
    published: int
    withheld: int
    changes: int
    already_released: bool = False
    quarter: QuarterSummary | None = None  # when this month's quarter was (or could not yet be) decided


def last_finished_period(now: dt.datetime, delay_days: int = 0) -> str:
    """The latest calendar month whose release is due at `now`."""
    shifted = now.astimezone(dt.UTC) - dt.timedelta(days=delay_days)
    year, month = (shifted.year, shifted.month - 1) if shifted.month > 1 else (shifted.year - 1, 12)
    return f"{year:04d}-{month:02d}"


async def release_period(
    pool: asyncpg.Pool, areas: Areas, policy: DisclosurePolicy, period: str, now: dt.datetime
) -> ReleaseSummary:
    """Release one finished month, once: a second call returns the stored release untouched.

    Everything (noise draws, ledger charges, cells, audit rows, published view, outbox) commits in
    one transaction, so the noise is stored before anything derived from it can be published.
    """
    release_due(period, now, policy.release_delay_days)
    async with pool.acquire() as conn, conn.transaction():
        await repo.lock_releases(conn)
        if await repo.release_exists(conn, period):
            # A release made before ward trends existed still completes its quarter here.
            quarter = await release_quarter(conn, areas, policy, quarter_of(period), now)
            return ReleaseSummary(period, 0, 0, 0, already_released=True, quarter=quarter)
        latest = await conn.fetchval("SELECT max(period) FROM aggregator.releases")
        rows = await repo.rows(conn, categories=policy.person_categories)
        memberships = person_memberships(rows, period, areas.person_unit_of)
        subjects = {s for s, _ in memberships}
        ledger = Ledger(await repo.load_ledger(conn, subjects, parse_period(period)[0]))
        counted = tally(period, memberships, ledger, policy)
        result = compute_person_release(
            period,
            counted.counts,
            areas.person_units,
            policy,
            await repo.load_noise(conn, period),
            now=now,
            excluded=counted.excluded,
        )
        await repo.save_release(
            conn, result, counted.charges, len(subjects), now, ward_totals=policy.ward_aggregates
        )
        changes = []
        # An older month released late is kept for the record but does not replace a newer view.
        if latest is None or period > latest:
            views = person_views(result, areas)
            previous = await repo.load_previous(conn, sensitivity="person")
            # Ward trends are the quarter's to replace, not a month's.
            live = {k for k, p in previous.items() if p.live and not is_ward_trend(k, p)}
            changes = diff(views, previous, set(views) | live, now)
            await repo.write_changes(conn, changes, areas, STREET_NEEDS.name)
        quarter = await release_quarter(conn, areas, policy, quarter_of(period), now)
    log.info(
        "person release",
        extra={"period": period, "published": len(result.published), "withheld": len(result.withheld)},
    )
    return ReleaseSummary(period, len(result.published), len(result.withheld), len(changes), quarter=quarter)


async def release_quarter(
    conn: asyncpg.Connection, areas: Areas, policy: DisclosurePolicy, quarter: str, now: dt.datetime
) -> QuarterSummary | None:
    """Decide a quarter's ward trends, once, inside the caller's release transaction (lock held).

    Due when all three of its months are released, whatever their order; decided once and never
    recomputed. While its last month is released but an earlier one is not, every ward is recorded
    as withheld ("quarter_incomplete") and the quarter stays open for the missing month. Returns
    None when there is nothing to decide yet. A quarter decided after a later one is kept for the
    audit but does not replace the newer trends.
    """
    if await repo.quarter_done(conn, quarter):
        return None
    months = quarter_months(quarter)
    released = await repo.released_months(conn, (*months, *quarter_months(previous_quarter(quarter))))
    complete = all(m in released for m in months)
    if not complete and months[-1] not in released:
        return None
    totals = await repo.load_ward_totals(conn, list(released))
    result = compute_ward_trends(
        quarter, {m for m, kept in released.items() if kept}, totals, areas.wards, policy
    )
    await repo.clear_withheld(conn, quarter)
    await repo.record_withheld(conn, quarter, {(w.ward_code, w.category): w.reason for w in result.withheld})
    changes = []
    if complete:
        latest = await repo.latest_quarter(conn)
        if latest is None or quarter > latest:
            views = ward_trend_views(result, areas)
            previous = await repo.load_previous(conn, sensitivity="person")
            live = {k for k, p in previous.items() if p.live and is_ward_trend(k, p)}
            changes = diff(views, previous, set(views) | live, now)
            await repo.write_changes(conn, changes, areas, STREET_NEEDS.name)
        await repo.save_quarter(conn, quarter, now, len(result.trends), len(result.withheld))
    log.info(
        "ward trends",
        extra={
            "quarter": quarter,
            "published": len(result.trends) if complete else 0,
            "withheld": len(result.withheld),
            "complete": complete,
        },
    )
    return QuarterSummary(
        quarter, len(result.trends) if complete else 0, len(result.withheld), len(changes), complete
    )


async def caught_up(
    pool: asyncpg.Pool, settings: AggregatorSettings, wait_s: float = CATCH_UP_WAIT_S
) -> bool:
    """Whether the stored state reaches, within `wait_s`, every event on the topic now."""
    partitions = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    loop = asyncio.get_running_loop()
    deadline = loop.time() + wait_s
    while True:
        async with pool.acquire() as conn:
            stored = await repo.load_offsets(
                conn, SIGNALS_ANONYMISED.name, [tp.partition for tp in partitions]
            )
        if all(stored.get(tp.partition, beginnings[tp]) >= ends[tp] for tp in partitions):
            return True
        if loop.time() >= deadline:
            return False
        await asyncio.sleep(min(1.0, wait_s))


async def release_forever(pool: asyncpg.Pool, areas: Areas, settings: AggregatorSettings) -> None:
    """Release the last finished month once the consumed state holds every event of it (and, after the
    last month of a quarter, the quarter's ward trends)."""
    policy = settings.policy()
    while True:
        # Wait first: a starting replica is still replaying and its state is not yet complete.
        await asyncio.sleep(settings.release_check_interval_seconds)
        try:
            now = dt.datetime.now(dt.UTC)
            period = last_finished_period(now, policy.release_delay_days)
            async with pool.acquire() as conn:
                done = await repo.release_exists(conn, period)
            # A released month is passed again so that its quarter is decided if it is not yet.
            if done or await caught_up(pool, settings):
                await release_period(pool, areas, policy, period, now)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("monthly release failed; will retry")
