"""Clearing the kept place counts (after a key rotation relinked rows) waits for a lane that is
saving counts, instead of deadlocking with it: the DELETE would lock rows in the heap's order while
the other lane upserts in key order."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.main import MIGRATIONS
from services.aggregator.state import Cell
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

AT = dt.datetime(2026, 11, 27, 12, tzinfo=dt.UTC)


def _cell(n: int) -> Cell:
    return Cell(n, 0, n, 0, AT, AT + dt.timedelta(days=1))


async def _waiting_for_a_lock(observer: asyncpg.Connection, pid: int) -> None:
    for _ in range(200):
        sql = "SELECT wait_event_type = 'Lock' FROM pg_stat_activity WHERE pid = $1"
        if await observer.fetchval(sql, pid):
            return
        await asyncio.sleep(0.05)
    raise AssertionError("the clearing transaction never waited")


async def test_clearing_cells_waits_for_a_saving_lane_and_clears_what_it_kept(fresh_database_url) -> None:
    saver, clearer, observer = [await asyncpg.connect(fresh_database_url) for _ in range(3)]
    try:
        await apply_migrations(observer, "aggregator", MIGRATIONS)
        a, b = ("s-a", "litter"), ("s-b", "litter")
        await repo.save_cells(observer, {a: _cell(1), b: _cell(1)})  # heap order: a, then b

        saving = saver.transaction()
        await saving.start()
        await repo.save_cells(saver, {b: _cell(2)})  # the saving lane holds b

        clearing = clearer.transaction()
        await clearing.start()
        cleared = asyncio.create_task(repo.clear_cells(clearer))
        await _waiting_for_a_lock(observer, clearer.get_server_pid())

        await repo.save_cells(saver, {a: _cell(2)})  # a deadlock here, when the DELETE held a
        await saving.commit()
        await asyncio.wait_for(cleared, timeout=10)
        await clearing.commit()

        assert await observer.fetchval("SELECT count(*) FROM aggregator.place_cells") == 0
    finally:
        for conn in (saver, clearer, observer):
            await conn.close()
