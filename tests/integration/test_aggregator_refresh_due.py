"""The periodic refresh publishes what time alone changed, locking only the areas that change: a lane
holding another area's lock does not hold it up (it used to count the whole state under every lock).
It also bounds how long a kept place count that a race left wrong shows in what is published."""

from __future__ import annotations

import asyncio
import datetime as dt
import zlib

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.areas import Areas
from services.aggregator.disclosure import DisclosurePolicy
from services.aggregator.main import MIGRATIONS
from services.aggregator.processing import CELL_TRUST, process_batch, refresh_due, refresh_place
from shared.contracts import CATALOGUE, Category, SignalAnonymised
from shared.db import apply_migrations
from shared.gazetteer import repository as gazetteer_repo
from tests.support import anonymised

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CATEGORY = Category.FLY_TIPPING
LIFETIME = dt.timedelta(days=CATALOGUE[CATEGORY].lifetime_days)
TREND_DAYS = 30


def raised(street: str, at: dt.datetime, n: int) -> SignalAnonymised:
    return anonymised(street, CATEGORY, f"{n:064x}", at)


async def test_refresh_publishes_expiries_locking_only_the_areas_they_change(stack, fresh_database_url):
    conn = await asyncpg.connect(fresh_database_url)
    other = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        areas = Areas(await gazetteer_repo.load(conn), DisclosurePolicy())
        by_area: dict[str, str] = {}
        for street, area in sorted(areas.place_area_of.items()):
            by_area.setdefault(area.area_id, street)
        (expiring_area, expiring), (lasting_area, lasting) = sorted(by_area.items())[:2]
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        events = [raised(expiring, now - LIFETIME + dt.timedelta(hours=1), 1), raised(lasting, now, 2)]
        await process_batch(conn, events, {0: (None, 2, 2)}, areas, now=now, trend_days=TREND_DAYS)
        published = await repo.load_previous(conn, sensitivity="place")
        assert published[(expiring_area, CATEGORY)].live and published[(lasting_area, CATEGORY)].live

        assert await refresh_due(conn, areas, now + dt.timedelta(minutes=1), TREND_DAYS) == 0

        later = now + dt.timedelta(hours=2)  # the first signal has expired, the second has not
        async with other.transaction():  # a lane busy with the lasting street's area
            await other.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended('aggregator.area:' || $1, 0))", lasting_area
            )
            changes = await asyncio.wait_for(refresh_due(conn, areas, later, TREND_DAYS), 10)
        assert changes == 1
        published = await repo.load_previous(conn, sensitivity="place")
        assert not published[(expiring_area, CATEGORY)].live
        assert published[(lasting_area, CATEGORY)].live
        outbox = await conn.fetch("SELECT key FROM aggregator.outbox ORDER BY id")
        assert [r["key"].decode() for r in outbox][
            -1
        ] == f"{expiring_area}:{CATEGORY.value}"  # its change, queued

        # Nothing left for a full recount under every lock to publish.
        async with conn.transaction():
            assert await refresh_place(conn, areas, None, later, TREND_DAYS) == 0
        assert await refresh_due(conn, areas, later, TREND_DAYS) == 0
    finally:
        await other.close()
        await conn.close()


async def test_refresh_in_shares_counts_only_its_own_areas_and_share_zero_retracts_the_unplaced(
    stack, fresh_database_url
):
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        areas = Areas(await gazetteer_repo.load(conn), DisclosurePolicy())
        parts = 4
        by_share: dict[int, tuple[str, str]] = {}  # share -> (area, one of its streets)
        for street, area in sorted(areas.place_area_of.items()):
            by_share.setdefault(zlib.crc32(area.area_id.encode()) % parts, (area.area_id, street))
        (share, (area_id, street)), (_, (kept_id, kept_street)) = sorted(by_share.items(), reverse=True)[:2]
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        events = [raised(street, now - LIFETIME + dt.timedelta(hours=1), 1), raised(kept_street, now, 2)]
        await process_batch(conn, events, {0: (None, 2, 2)}, areas, now=now, trend_days=TREND_DAYS)
        later = now + dt.timedelta(hours=2)  # the first signal has expired, the second has not

        for k in range(parts):  # the other shares do not count the expired signal's area
            if k != share:
                assert await refresh_due(conn, areas, later, TREND_DAYS, part=(k, parts)) == 0
        assert (await repo.load_previous(conn, sensitivity="place"))[(area_id, CATEGORY)].live
        assert await refresh_due(conn, areas, later, TREND_DAYS, part=(share, parts)) == 1
        published = await repo.load_previous(conn, sensitivity="place")
        assert not published[(area_id, CATEGORY)].live and published[(kept_id, CATEGORY)].live
        for k in range(parts):
            assert await refresh_due(conn, areas, later, TREND_DAYS, part=(k, parts)) == 0

        # A gazetteer that places no street any more: only share 0 looks after what is still out.
        nowhere = Areas(None, DisclosurePolicy())
        for k in range(1, parts):
            assert await refresh_due(conn, nowhere, later, TREND_DAYS, part=(k, parts)) == 0
        assert await refresh_due(conn, nowhere, later, TREND_DAYS, part=(0, parts)) == 1
        assert not (await repo.load_previous(conn, sensitivity="place"))[(kept_id, CATEGORY)].live
    finally:
        await conn.close()


async def test_refresh_corrects_a_kept_count_that_a_race_left_wrong(stack, fresh_database_url):
    """Kept counts are trusted for minutes (`CELL_TRUST`): until then a batch sums a wrong one into its
    area's need. The refresh counts the area from its signals, republishes it and recounts the cells."""
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        areas = Areas(await gazetteer_repo.load(conn), DisclosurePolicy())
        area = min(
            (a for a in areas.place_area_of.values() if len(a.street_ids) >= 2), key=lambda a: a.area_id
        )
        wrong, other = sorted(area.street_ids)[:2]
        key = (area.area_id, CATEGORY)
        now = dt.datetime.now(dt.UTC).replace(microsecond=0)
        await process_batch(
            conn,
            [raised(wrong, now, 1), raised(wrong, now, 2)],
            {0: (None, 2, 2)},
            areas,
            now=now,
            trend_days=TREND_DAYS,
        )
        # What a race between two lanes can leave: the street's kept count three reports too high.
        await conn.execute(
            """UPDATE aggregator.place_cells SET open = open + 3, this_window = this_window + 3
               WHERE street_id = $1 AND category = $2""",
            wrong,
            CATEGORY,
        )
        later = now + dt.timedelta(minutes=1)
        assert later - now < CELL_TRUST / 2  # still trusted, whatever its key's spread
        await process_batch(
            conn, [raised(other, later, 3)], {0: (2, 3, 1)}, areas, now=later, trend_days=TREND_DAYS
        )
        published = await repo.load_previous(conn, sensitivity="place", keys={key})
        assert published[key].content["count"] == 6  # 3 reports, and the 3 the race added

        assert await refresh_due(conn, areas, later + dt.timedelta(seconds=5), TREND_DAYS) == 1
        published = await repo.load_previous(conn, sensitivity="place", keys={key})
        assert published[key].live and published[key].content["count"] == 3
        kept = (await repo.read_cells(conn, {(wrong, CATEGORY)}, {}, later)).kept
        assert (kept[(wrong, CATEGORY)].open, kept[(wrong, CATEGORY)].this_window) == (2, 2)
        # And a batch on the area now sums the right count.
        await process_batch(
            conn, [raised(other, later, 4)], {0: (3, 4, 1)}, areas, now=later, trend_days=TREND_DAYS
        )
        published = await repo.load_previous(conn, sensitivity="place", keys={key})
        assert published[key].content["count"] == 4
    finally:
        await conn.close()
