"""Purges run by themselves (issue 11 item 15): each service's loop, at a short interval, deletes an
expired row and keeps a fresh one on the real database."""

from __future__ import annotations

import asyncio
import datetime as dt

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.purge import PURGED, purge_forever
from services.aggregator.settings import AggregatorSettings
from services.feeds import repository as feeds_repo
from services.feeds.main import MIGRATIONS as FEEDS_MIGRATIONS
from services.feeds.purge import PURGED as SUBSCRIPTIONS_PURGED
from services.feeds.purge import purge_forever as purge_subscriptions_forever
from services.feeds.settings import FeedsSettings
from shared.db import apply_migrations, create_pool
from shared.gazetteer.selection import Selection
from tests.integration.test_aggregator_privacy import MIGRATIONS, TODAY, apply, event, pseudonym

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _until(check, what: str) -> None:
    for _ in range(300):
        if await check():
            return
        await asyncio.sleep(0.1)
    raise AssertionError(f"never happened: {what}")


async def test_the_aggregator_purge_loop_deletes_ended_pseudonyms_and_keeps_active_ones(fresh_database_url):
    conn = await asyncpg.connect(fresh_database_url)
    await apply_migrations(conn, "aggregator", MIGRATIONS)
    await apply(
        conn,
        event("raised", 1, TODAY - dt.timedelta(days=400), ref="expired"),  # isolation lives 180 days
        event("raised", 1, TODAY - dt.timedelta(days=3), ref="active"),
    )
    assert len(await repo.rows(conn)) == 2
    settings = AggregatorSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers="127.0.0.1:1",
        purge_first_delay_seconds=0,
        purge_interval_seconds=0.2,
    )
    pool = await create_pool(fresh_database_url)
    before = PURGED.labels("signals")._value.get()
    loop = asyncio.create_task(purge_forever(pool, settings))
    try:

        async def expired_gone() -> bool:
            return {r.subject_key for r in await repo.rows(conn)} == {pseudonym(1, "active")}

        await _until(expired_gone, "the loop purging the expired raise")

        async def counted() -> bool:
            return PURGED.labels("signals")._value.get() - before == 1  # the metric counts it once

        await _until(counted, "the purge metric counting the deleted row")
        assert not loop.done()
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        await conn.close()


async def test_the_feeds_purge_loop_deletes_unread_subscriptions_and_keeps_read_ones(fresh_database_url):
    conn = await asyncpg.connect(fresh_database_url)
    await apply_migrations(conn, "feeds", FEEDS_MIGRATIONS)
    selection = Selection("street", "Agar Grove", ("s-1",), ("u-1",), ("W1",))
    for token, idle_days in ((b"idle", 400), (b"read", 2)):
        await feeds_repo.create_subscription(conn, token.ljust(32, b"."), selection)
        await conn.execute(
            "UPDATE feeds.subscriptions SET last_read_on = current_date - $2::int WHERE token_sha256 = $1",
            token.ljust(32, b"."),
            idle_days,
        )
    settings = FeedsSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers="127.0.0.1:1",
        subscription_unread_days=365,
        purge_first_delay_s=0,
        purge_interval_s=0.2,
    )
    pool = await create_pool(fresh_database_url)
    before = SUBSCRIPTIONS_PURGED._value.get()
    loop = asyncio.create_task(purge_subscriptions_forever(pool, settings))
    try:

        async def only_read_left() -> bool:
            rows = await conn.fetch("SELECT token_sha256 FROM feeds.subscriptions")
            return [bytes(r[0]).rstrip(b".") for r in rows] == [b"read"]

        await _until(only_read_left, "the loop purging the subscription unread for 400 days")
        assert not loop.done()

        async def counted() -> bool:
            return SUBSCRIPTIONS_PURGED._value.get() - before == 1  # the metric counts it once

        await _until(counted, "the purge metric counting the deleted subscription")
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
        await pool.close()
        await conn.close()
