"""Idle subscriptions: reading marks one read (at most one write a day); `streetneeds feeds
purge-subscriptions` deletes the unread ones."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest
from typer.testing import CliRunner

from services.cli import app
from services.feeds import repository as repo
from services.feeds.main import MIGRATIONS, NAME
from shared.db import apply_migrations
from shared.gazetteer.selection import Selection

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

SELECTION = Selection("street", "Agar Grove", ("s-1",), ("u-1",), ("W1",))


async def _setup(url: str) -> None:
    conn = await asyncpg.connect(url)
    try:
        await apply_migrations(conn, NAME, MIGRATIONS)
        for token, idle_days in ((b"read", 0), (b"idle", 40), (b"recent", 20)):
            await repo.create_subscription(conn, token.ljust(32, b"."), SELECTION)
            await conn.execute(
                "UPDATE feeds.subscriptions SET last_read_on = current_date - $2::int "
                "WHERE token_sha256 = $1",
                token.ljust(32, b"."),
                idle_days,
            )
        # Reading the recent one marks it read today, once: the second read writes nothing.
        recent = b"recent".ljust(32, b".")
        assert (await repo.find_subscription(conn, recent))[1]
        xmin = await conn.fetchval(
            "SELECT xmin::text FROM feeds.subscriptions WHERE token_sha256 = $1", recent
        )
        await repo.find_subscription(conn, recent)
        assert (
            await conn.fetchval("SELECT xmin::text FROM feeds.subscriptions WHERE token_sha256 = $1", recent)
            == xmin
        )
        assert await conn.fetchval(
            "SELECT last_read_on = current_date FROM feeds.subscriptions WHERE token_sha256 = $1", recent
        )
    finally:
        await conn.close()


async def _remaining(url: str) -> list[bytes]:
    conn = await asyncpg.connect(url)
    try:
        rows = await conn.fetch("SELECT token_sha256 FROM feeds.subscriptions ORDER BY 1")
        return [bytes(r[0]).rstrip(b".") for r in rows]
    finally:
        await conn.close()


def test_purge_subscriptions_deletes_only_those_unread_for_n_days(fresh_database_url, stack):
    asyncio.run(_setup(fresh_database_url))
    env = {"DATABASE_URL": fresh_database_url, "KAFKA_BOOTSTRAP_SERVERS": stack["kafka"]}
    result = CliRunner().invoke(app, ["feeds", "purge-subscriptions", "--older-than-days", "30"], env=env)
    assert result.exit_code == 0, result.output
    assert "subscriptions deleted: 1" in result.output
    assert asyncio.run(_remaining(fresh_database_url)) == [b"read", b"recent"]
    refused = CliRunner().invoke(app, ["feeds", "purge-subscriptions", "--older-than-days", "0"], env=env)
    assert refused.exit_code != 0
