"""The place counts kept per (street, category) are the counts of the signals, at every time they claim
to hold for, however batches, withdrawals, key rotations and clocks move them."""

from __future__ import annotations

import asyncio
import datetime as dt
import random

import asyncpg
import pytest

from services.aggregator import processing
from services.aggregator import repository as repo
from services.aggregator.areas import Areas
from services.aggregator.disclosure import DisclosurePolicy
from services.aggregator.main import MIGRATIONS
from services.aggregator.processing import PLACE_CATEGORIES, process_batch
from services.aggregator.repository.cells import lines, texts
from services.aggregator.state import Cell, cells_of_rows, place_stats
from services.aggregator.views import LIVE, place_views, place_withheld
from shared.contracts import CATALOGUE, SIGNALS_ANONYMISED, SignalAnonymised
from shared.db import apply_migrations
from shared.gazetteer import repository as gazetteer_repo
from tests.support import anonymised

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

NOW = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)  # a daylight-saving change in London
TREND_DAYS = 30
TICK = dt.timedelta(microseconds=1)


def edge_time(rnd: random.Random, now: dt.datetime, lifetime_days: int) -> dt.datetime:
    """Times on and around every boundary the counts use: expiry, now, both trend windows."""
    window = dt.timedelta(days=TREND_DAYS)
    edges = [now, now - dt.timedelta(days=lifetime_days), now - window, now - 2 * window]
    at = rnd.choice(edges) + rnd.choice([dt.timedelta(0), TICK, -TICK, dt.timedelta(hours=1)])
    return at if rnd.random() < 0.6 else now - dt.timedelta(hours=rnd.randrange(-48, 24 * 100))


def counts(cell: Cell) -> tuple[int, int, int, int]:
    return (cell.open, cell.closed, cell.this_window, cell.last_window)


def pure(stats_rows: list, at: dt.datetime, key: tuple[str, str]) -> tuple[int, int, int, int]:
    stats = place_stats(stats_rows, at, TREND_DAYS)
    o, c, t, la = (m.get(key, 0) for m in (stats.open, stats.closed, stats.this_window, stats.last_window))
    return (o, c, t, la)


async def test_counted_cells_hold_over_their_span(stack, fresh_database_url, random_id):
    rnd = random.Random(random_id)
    conn = await asyncpg.connect(fresh_database_url, server_settings={"TimeZone": "Europe/London"})
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        streets = [f"s{i}" for i in range(8)]
        subjects = [f"{i:064x}" for i in range(30)]
        raised: dict[tuple[str, str, str], dt.datetime] = {}
        withdrawn: dict[tuple[str, str], dt.datetime] = {}
        for _ in range(1500):
            category = rnd.choice(PLACE_CATEGORIES)
            at = edge_time(rnd, NOW, CATALOGUE[category].lifetime_days)
            raised[(rnd.choice(streets), category, rnd.choice(subjects))] = at
        for street, category, subject in rnd.sample(sorted(raised), 400):
            at = raised[(street, category, subject)]
            withdrawn[(subject, category)] = rnd.choice([at, at - TICK, edge_time(rnd, NOW, TREND_DAYS)])
        await conn.executemany(
            "INSERT INTO aggregator.signals VALUES ($1, $2, $3, $4)", [(*k, v) for k, v in raised.items()]
        )
        await conn.executemany(
            "INSERT INTO aggregator.withdrawals VALUES ($1, $2, $3)", [(*k, v) for k, v in withdrawn.items()]
        )
        rows = await repo.rows(conn)
        wanted = {(s, c) for s in [*streets, "nowhere"] for c in PLACE_CATEGORIES}
        cells = await repo.cell_counts(conn, NOW, TREND_DAYS, PLACE_CATEGORIES, wanted)

        assert set(cells) == wanted
        for key, cell in cells.items():
            mine = [r for r in rows if (r.street_id, r.category) == key]
            assert counts(cell) == pure(mine, NOW, key)
            assert cell.holds_at(NOW)
            if cell.valid_from is not None:
                assert counts(cell) == pure(mine, cell.valid_from, key)
            if cell.valid_until is not None:
                assert counts(cell) == pure(mine, cell.valid_until - TICK, key)
        # A batch counts its own rows in Python (the fold's rows as the lock read them): the same
        # cells, spans and all, for every cell with rows.
        counted = cells_of_rows(
            [(r.street_id, r.category, r.raised_at, r.withdrawn_at) for r in rows], NOW, TREND_DAYS
        )
        assert counted == {
            k: c for k, c in cells.items() if any((r.street_id, r.category) == k for r in rows)
        }
    finally:
        await conn.close()


def event(
    rnd: random.Random, street: str, subject: str, now: dt.datetime, *, previous: tuple[str, ...] = ()
) -> SignalAnonymised:
    category = rnd.choice(PLACE_CATEGORIES)
    at = edge_time(rnd, now, CATALOGUE[category].lifetime_days)
    action = "withdrawn" if rnd.random() < 0.25 else "raised"
    return anonymised(street, category, subject, at, action=action, previous=previous)


async def some_areas(conn: asyncpg.Connection, rnd: random.Random) -> tuple[Areas, list[str], list[str]]:
    """A migrated state's areas, the streets of four of them (so batches meet streets they did not
    change), and two streets of no area."""
    await apply_migrations(conn, "aggregator", MIGRATIONS)
    areas = Areas(await gazetteer_repo.load(conn), DisclosurePolicy())
    placed = sorted(areas.place_area_of)
    chosen = {areas.place_area_of[s].area_id for s in rnd.sample(placed, 4)}
    streets = [s for s in placed if areas.place_area_of[s].area_id in chosen]
    return areas, streets, sorted(set(areas.streets) - set(placed))[:2]


@pytest.mark.parametrize("recount_under", [0, 10**9], ids=["moving", "recounting"])
async def test_batches_keep_the_counts_and_publish_what_a_recount_would(
    stack, fresh_database_url, random_id, recount_under, monkeypatch
):
    monkeypatch.setattr(processing, "RECOUNT_UNDER", recount_under)  # each way a batch keeps its counts
    rnd = random.Random(random_id)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        areas, streets, unplaced = await some_areas(conn, rnd)
        streets += unplaced
        subjects = [f"{rnd.getrandbits(256):064x}" for _ in range(40)]
        now, position = NOW, 0
        for batch in range(12):
            # Mostly forward, by minutes to weeks; now and then back a little (another replica's clock).
            now += rnd.choice(
                [dt.timedelta(minutes=5), dt.timedelta(days=3), dt.timedelta(days=20), -TICK, TICK]
            )
            events = [event(rnd, rnd.choice(streets), rnd.choice(subjects), now) for _ in range(60)]
            if batch == 7:  # a key rotation: some subjects' rows move to their new pseudonyms
                for i in range(5):
                    new = f"{rnd.getrandbits(256):064x}"
                    events.append(event(rnd, rnd.choice(streets), new, now, previous=(subjects[i],)))
                    subjects[i] = new
            moves = {0: (position or None, position + len(events), len(events))}
            await process_batch(conn, events, moves, areas, now=now, trend_days=TREND_DAYS)
            position += len(events)

            rows = await repo.rows(conn)
            every = {(s, c) for s in streets for c in PLACE_CATEGORIES}
            kept = (await repo.read_cells(conn, every, {}, now)).kept
            assert kept, "the batch kept counts"
            for key, cell in kept.items():
                assert counts(cell) == pure([r for r in rows if (r.street_id, r.category) == key], now, key)
            # Every need a raise of the batch changed is what a recount of the whole state gives.
            touched = {
                (areas.place_area_of[e.street_id].area_id, str(e.category))
                for e in events
                if e.street_id in areas.place_area_of and e.action == "raised"
            }
            views = place_views(place_stats(rows, now, TREND_DAYS), areas)
            published = await repo.load_previous(conn, sensitivity="place", keys=touched)
            for key in touched:
                if key in views:
                    assert published[key].live and dict(published[key].content) == views[key].content()
                else:
                    assert key not in published or not published[key].live
    finally:
        await conn.close()


async def test_deferred_batches_leave_cells_dirty_and_the_next_batch_publishes_them(
    stack, fresh_database_url, random_id
):
    """A catch-up's batches fold without the place view; the next batch that publishes recounts
    every cell they changed: the needs are then what a recount of the whole state gives."""
    rnd = random.Random(random_id)
    conn = await asyncpg.connect(fresh_database_url)
    try:
        areas, streets, unplaced = await some_areas(conn, rnd)
        unplaced.append("no-such-street")
        subjects = [f"{rnd.getrandbits(256):064x}" for _ in range(40)]
        now, position = NOW, 0  # one time throughout: only batches change the needs
        for batch in range(9):
            events = [
                event(rnd, rnd.choice(streets + unplaced), rnd.choice(subjects), now) for _ in range(80)
            ]
            moves = {0: (position or None, position + len(events), len(events))}
            defer = batch % 3 != 2  # two deferred, then one that publishes
            before = await repo.load_previous(conn, sensitivity="place")
            outcome = await process_batch(
                conn, events, moves, areas, now=now, trend_days=TREND_DAYS, defer=defer
            )
            position += len(events)
            assert await repo.load_offsets(conn, SIGNALS_ANONYMISED.name, [0]) == {0: position}
            rows = await repo.rows(conn)
            dirty = await repo.dirty_cells(conn)
            # Deferred or not, the audit holds every unplaced street with open reports, and why.
            held = {
                (r["area_id"], r["category"]): r["reason"]
                for r in await repo.list_withheld(conn, LIVE, 1000, 0)
            }
            assert held == place_withheld(place_stats(rows, now, TREND_DAYS), areas)
            assert all(s in areas.place_area_of for s, _ in dirty)
            if defer:
                assert outcome.changes == 0
                assert await repo.load_previous(conn, sensitivity="place") == before
                # Every cell the batch raised in is dirty, and no reader trusts a dirty count.
                raised = {
                    (e.street_id, str(e.category))
                    for e in events
                    if e.action == "raised" and e.street_id in areas.place_area_of
                }
                assert raised <= dirty
                assert not (await repo.read_cells(conn, dirty, {}, now)).kept
                ended = {
                    (r.street_id, r.category)
                    for r in rows
                    if r.street_id in areas.place_area_of
                    and any(
                        e.action == "withdrawn"
                        and (e.subject_key, str(e.category)) == (r.subject_key, r.category)
                        for e in events
                    )
                }
                assert ended <= dirty
                continue
            assert not dirty
            views = place_views(place_stats(rows, now, TREND_DAYS), areas)
            published = await repo.load_previous(conn, sensitivity="place")
            assert {k for k, p in published.items() if p.live} == set(views)
            for key, view in views.items():
                assert dict(published[key].content) == view.content()
            every = {(s, c) for s in streets for c in PLACE_CATEGORIES}
            kept = (await repo.read_cells(conn, every, {}, now)).kept
            for key, cell in kept.items():
                assert counts(cell) == pure([r for r in rows if (r.street_id, r.category) == key], now, key)
    finally:
        await conn.close()


async def test_a_lane_publishes_its_own_marks_leaves_the_other_lanes_and_waits_for_no_lock(
    stack, fresh_database_url, random_id
):
    """Lanes of one process: a lane's publishing batch recounts the marks its deferred batches left,
    leaves those another lane left (that lane publishes them), and recounts a mark no lane claims
    (a crashed replica's) only if no other transaction holds its area's lock: it waits for none."""
    rnd = random.Random(random_id)
    conn = await asyncpg.connect(fresh_database_url)
    other = await asyncpg.connect(fresh_database_url)
    try:
        areas, _, _ = await some_areas(conn, rnd)
        streets_of: dict[str, list[str]] = {}
        for street, area in sorted(areas.place_area_of.items()):
            streets_of.setdefault(area.area_id, []).append(street)
        mine, theirs, orphaned, fresh = rnd.sample(sorted(streets_of), 4)
        category = rnd.choice(PLACE_CATEGORIES)
        position = 0

        async def batch(area_id: str, **kwargs: object) -> processing.BatchOutcome:
            nonlocal position
            events = [
                anonymised(rnd.choice(streets_of[area_id]), category, f"{rnd.getrandbits(256):064x}", NOW)
                for _ in range(30)
            ]
            moves = {0: (position or None, position + len(events), len(events))}
            position += len(events)
            return await process_batch(conn, events, moves, areas, now=NOW, trend_days=TREND_DAYS, **kwargs)

        async def recounted(*area_ids: str) -> tuple[dict, dict]:
            """The needs of `area_ids` as published, and as a recount of the whole state gives them."""
            views = place_views(place_stats(await repo.rows(conn), NOW, TREND_DAYS), areas)
            published = await repo.load_previous(conn, sensitivity="place")
            return (
                {k: dict(p.content) for k, p in published.items() if p.live and k[0] in area_ids},
                {k: v.content() for k, v in views.items() if k[0] in area_ids},
            )

        own = (await batch(mine, defer=True)).marked
        others = (await batch(theirs, defer=True)).marked
        orphans = (await batch(orphaned, defer=True)).marked
        assert own and others and orphans
        assert await repo.dirty_cells(conn) == own | others | orphans

        async with other.transaction():  # another replica's batch holds the orphans' area
            await repo.lock_areas(other, [orphaned])
            await asyncio.wait_for(batch(fresh, own_marks=own, other_marks=others), timeout=60)
        assert await repo.dirty_cells(conn) == others | orphans
        published, recount = await recounted(mine, fresh)
        assert recount and published == recount
        published, recount = await recounted(theirs, orphaned)
        assert recount and not published  # left as they were: nothing of theirs published yet

        # The lock free, the next batch that publishes recounts the orphans, still not the other lane's.
        await batch(fresh, other_marks=others)
        assert await repo.dirty_cells(conn) == others
        # The other lane publishes its own.
        await batch(theirs, own_marks=others)
        assert not await repo.dirty_cells(conn)
        published, recount = await recounted(mine, theirs, orphaned, fresh)
        assert published == recount
    finally:
        await other.close()
        await conn.close()


async def test_texts_reach_postgresql_as_they_are(stack):
    odd = ["s-1", "", "a,b", 'q"uote', "back\\slash", "new\nline", "{brace}", "NULL", " space ", "é"]
    conn = await asyncpg.connect(stack["database"])
    try:
        assert await conn.fetchval(f"SELECT {texts('$1')}", lines(odd)) == odd
        assert await conn.fetchval(f"SELECT {texts('$1')}", lines([])) == []
    finally:
        await conn.close()
