"""A replica's own committed changes reach its live clients without being read back, but only when
nothing can lie between them and the last change fanned out; whatever path delivers a change, each
goes out once, in order."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import asyncpg
import pytest

from services.feeds import repository as repo
from services.feeds.consume import apply_events
from services.feeds.listener import Listener
from services.feeds.live import Hub
from services.feeds.repository import Change, current_seq
from services.feeds.settings import FeedsSettings
from shared.contracts import PromptPublished
from shared.db import apply_migrations, create_pool
from shared.gazetteer.selection import Selection
from tests.support import street_prompt

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "services/feeds/migrations"
STREET = "s-offer"


def _prompt(prompt_id: str, revision: int) -> PromptPublished:
    at = dt.datetime(2026, 11, 27, 9, revision, tzinfo=dt.UTC)
    return street_prompt(STREET, prompt_id, f"revision {revision}", revision=revision, published_at=at)


def _drain(queue: asyncio.Queue[Change | None]) -> list[tuple[int, str]]:
    out = []
    while not queue.empty():
        change = queue.get_nowait()
        assert change is not None
        out.append((change.seq, change.prompt_id))
    return out


async def test_own_changes_go_out_at_once_unless_another_replicas_lie_between(
    fresh_database_url, kafka_bootstrap, random_id, monkeypatch
) -> None:
    url = fresh_database_url
    pool = await create_pool(url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "feeds", MIGRATIONS)
            start = await current_seq(conn)
        settings = FeedsSettings(database_url=url, kafka_bootstrap_servers=kafka_bootstrap, _env_file=None)
        hub = Hub(100)
        queue = hub.subscribe(Selection("street", "Agar Grove", (STREET,)))
        listener = Listener(url, hub, start)  # not running: only what `offer` sends goes out
        a, b, c = (f"p{random_id}-{x}:graffiti" for x in "abc")

        # This replica's poll (one prompt twice: two changes, numbered in order) goes out as offered.
        mine = await apply_events(pool, settings, [_prompt(a, 1), _prompt(a, 2)])
        listener.offer(mine)
        assert _drain(queue) == [(start + 1, a), (start + 2, a)]

        # Another replica commits (its changes reach this one only through the database), then this
        # one: offering would skip the other's change, so nothing goes out until the read.
        await apply_events(pool, settings, [_prompt(b, 1)])
        listener.offer(await apply_events(pool, settings, [_prompt(c, 1)]))
        assert _drain(queue) == []

        # The read delivers both, in order; offered again afterwards, nothing is sent twice.
        conn = await asyncpg.connect(url)
        try:
            await listener._fan_out(conn)
            assert _drain(queue) == [(start + 3, b), (start + 4, c)]
            listener.offer(mine)
            await listener._fan_out(conn)
            assert _drain(queue) == []
            # Offered before the read that also finds it: once.
            listener.offer(await apply_events(pool, settings, [_prompt(a, 3)]))
            await listener._fan_out(conn)
            assert _drain(queue) == [(start + 5, a)]
            # Offered while a read that finds it is under way: once.
            fourth = await apply_events(pool, settings, [_prompt(a, 4)])
            read = repo.changes_after

            async def offered_meanwhile(*args: object) -> list[Change]:
                page = await read(*args)  # type: ignore[arg-type]
                listener.offer(fourth)
                return page

            monkeypatch.setattr(repo, "changes_after", offered_meanwhile)
            await listener._fan_out(conn)
            assert _drain(queue) == [(start + 6, a)]
        finally:
            await conn.close()
    finally:
        await pool.close()
