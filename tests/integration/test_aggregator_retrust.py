"""The periodic refresh confirms the kept place counts its own count agrees with, so that they stay
trusted through a quiet spell (else the first batches after one recount every cell they touch, under
the area locks); one that is wrong, was written since, or is held by a batch is left to expire."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.areas import Areas
from services.aggregator.disclosure import DisclosurePolicy
from services.aggregator.main import MIGRATIONS
from services.aggregator.processing import CELL_TRUST, PLACE_CATEGORIES, process_batch, refresh_due
from services.aggregator.state import Cell
from shared.contracts import Category
from shared.db import apply_migrations
from shared.gazetteer import repository as gazetteer_repo
from tests.support import anonymised

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TREND_DAYS = 30
NOW = dt.datetime.now(dt.UTC).replace(microsecond=0)
QUIET = NOW + 2 * CELL_TRUST  # past every kept count's trust, long before any signal's own break


@pytest.fixture
async def kept(fresh_database_url) -> AsyncIterator[tuple[asyncpg.Connection, Areas, list[tuple[str, str]]]]:
    """A state of a few streets' signals, applied by a batch: their counts kept, trusted from NOW."""
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        areas = Areas(await gazetteer_repo.load(conn), DisclosurePolicy())
        streets = sorted(areas.place_area_of)[:6]
        events = [
            anonymised(s, c, f"{i:064x}", NOW - dt.timedelta(hours=i))
            for i, (s, c) in enumerate(
                (s, c) for s in streets for c in (Category.FLY_TIPPING, Category.GRAFFITI)
            )
        ]
        await process_batch(
            conn, events, {0: (None, len(events), len(events))}, areas, now=NOW, trend_days=TREND_DAYS
        )
        keys = sorted((await repo.kept_versions(conn)).keys())
        assert len(keys) > len(streets)  # every street of the touched areas, in both categories
        assert (await repo.load_cells(conn, keys, NOW)).keys() == set(keys)
        yield conn, areas, keys
    finally:
        await conn.close()


async def _recount(conn: asyncpg.Connection, keys: list[tuple[str, str]], at: dt.datetime) -> dict:
    counted = await repo.cell_counts(conn, at, TREND_DAYS, PLACE_CATEGORIES, keys)
    return {k: (c.open, c.closed, c.this_window, c.last_window) for k, c in counted.items()}


async def test_the_refresh_trusts_again_the_counts_it_confirms(kept):
    conn, areas, keys = kept
    assert await repo.load_cells(conn, keys, QUIET) == {}  # a quiet spell: every one expired
    await refresh_due(conn, areas, QUIET, TREND_DAYS)
    trusted = await repo.load_cells(conn, keys, QUIET)
    assert trusted.keys() == set(keys)  # the next batch reads them instead of recounting
    counts = {k: (c.open, c.closed, c.this_window, c.last_window) for k, c in trusted.items()}
    assert counts == await _recount(conn, keys, QUIET)
    for key, cell in trusted.items():  # trusted again as a fresh count is: for 30 to 60 s
        assert cell.valid_until is not None
        assert QUIET + CELL_TRUST / 2 <= cell.valid_until <= QUIET + CELL_TRUST, key


async def test_a_wrong_count_is_not_trusted_again(kept):
    conn, areas, keys = kept
    wrong = keys[0]
    await conn.execute(
        "UPDATE aggregator.place_cells SET open = open + 1 WHERE street_id = $1 AND category = $2", *wrong
    )
    await refresh_due(conn, areas, QUIET, TREND_DAYS)
    trusted = await repo.load_cells(conn, keys, QUIET)
    assert wrong not in trusted  # left expired: the next batch that needs it recounts it
    assert trusted.keys() == set(keys) - {wrong}


async def test_only_the_version_read_and_only_a_row_no_batch_holds(kept, fresh_database_url):
    conn, _, keys = kept
    versions = await repo.kept_versions(conn)
    confirmed = {
        k: (
            version,
            Cell(cell.open, cell.closed, cell.this_window, cell.last_window, None, QUIET + CELL_TRUST),
        )
        for k, (cell, version) in versions.items()
    }
    written, held, free = keys[0], keys[1], keys[2]
    # A batch wrote one since the count was taken: a new row version.
    await conn.execute(
        "UPDATE aggregator.place_cells SET valid_from = valid_from WHERE street_id = $1 AND category = $2",
        *written,
    )
    batch = await asyncpg.connect(fresh_database_url)
    try:
        async with batch.transaction():  # a batch holding another: not waited for
            await batch.execute(
                "SELECT 1 FROM aggregator.place_cells WHERE street_id = $1 AND category = $2 FOR UPDATE",
                *held,
            )
            done = await asyncio.wait_for(repo.retrust(conn, confirmed), 10)
    finally:
        await batch.close()
    assert done == len(keys) - 2
    trusted = await repo.load_cells(conn, keys, QUIET)
    assert free in trusted and written not in trusted and held not in trusted
