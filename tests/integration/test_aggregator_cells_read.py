"""A batch's refresh reads its own kept counts and the sums of the other streets of its areas in one
statement (`repository.read_cells`): each own cell that holds, as kept; per (area, category), the sum
of the others that hold; and the others that do not hold (none kept, expired, not yet valid, dirty)."""

from __future__ import annotations

import datetime as dt

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.main import MIGRATIONS
from services.aggregator.state import Cell
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOW = dt.datetime(2026, 11, 29, 12, tzinfo=dt.UTC)
HOUR = dt.timedelta(hours=1)


async def test_own_cells_one_by_one_and_the_others_summed_per_area_with_what_to_recount(
    fresh_database_url,
) -> None:
    conn = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        await repo.save_cells(
            conn,
            {
                ("own-1", "litter"): Cell(3, 1, 2, 1, NOW - HOUR, NOW + HOUR),
                ("own-2", "litter"): Cell(5, 0, 5, 0, NOW - 2 * HOUR, NOW - HOUR),  # no longer holds
                ("own-3", "graffiti"): Cell(1, 0, 1, 0, None, None),  # holds for ever
                ("a-1", "litter"): Cell(2, 9, 1, 4, None, NOW + HOUR),
                ("a-2", "litter"): Cell(3, 9, 2, 5, NOW - HOUR, None),
                ("a-3", "litter"): Cell(7, 0, 7, 0, NOW + HOUR, None),  # not valid yet
                ("b-1", "graffiti"): Cell(4, 0, 3, 2, None, None),
                ("b-2", "graffiti"): Cell(6, 0, 6, 0, None, None),  # to be marked dirty below
                ("c-1", "litter"): Cell(8, 0, 8, 0, NOW - 2 * HOUR, NOW - HOUR),  # expired: c sums nothing
            },
        )
        await repo.mark_dirty(conn, [("b-2", "graffiti")])
        others = {
            ("a-1", "litter"): "area-a",
            ("a-2", "litter"): "area-a",
            ("a-3", "litter"): "area-a",
            ("a-4", "litter"): "area-a",  # nothing kept
            ("b-1", "graffiti"): "area-b",
            ("b-2", "graffiti"): "area-b",
            ("c-1", "litter"): "area-c",
        }
        own = [("own-1", "litter"), ("own-2", "litter"), ("own-3", "graffiti"), ("own-4", "litter")]

        read = await repo.read_cells(conn, own, others, NOW)

        assert read.kept == {
            ("own-1", "litter"): Cell(3, 1, 2, 1, NOW - HOUR, NOW + HOUR),
            ("own-3", "graffiti"): Cell(1, 0, 1, 0, None, None),
        }
        assert read.sums == {("area-a", "litter"): (5, 3, 9), ("area-b", "graffiti"): (4, 3, 2)}
        assert read.stale == {("a-3", "litter"), ("a-4", "litter"), ("b-2", "graffiti"), ("c-1", "litter")}

        # Either side alone reads as it does beside the other.
        assert (await repo.read_cells(conn, [], others, NOW)).sums == read.sums
        assert (await repo.read_cells(conn, [], others, NOW)).kept == {}
        assert (await repo.read_cells(conn, own, {}, NOW)).kept == read.kept
        nothing = await repo.read_cells(conn, [], {}, NOW)
        assert (nothing.kept, nothing.sums, nothing.stale) == ({}, {}, set())
    finally:
        await conn.close()
