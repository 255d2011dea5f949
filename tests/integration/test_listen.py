"""The shared LISTEN holder against real PostgreSQL: a committed NOTIFY reaches it, a rolled-back one
does not; a lost connection is reported once and taken anew; it never raises for a missing database."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import create_pool
from shared.listen import ChannelListener

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
CHANNEL = "test_listen"


async def _until(check, what: str) -> None:
    for _ in range(100):
        if check():
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"not reached: {what}")


async def test_notifications_losses_and_a_new_connection(fresh_database_url):
    heard: list[str] = []
    pool = await create_pool(fresh_database_url)
    other = await asyncpg.connect(fresh_database_url)
    listener = ChannelListener(
        pool, CHANNEL, lambda: heard.append("notify"), on_lost=lambda: heard.append("lost")
    )
    try:
        assert listener.pid is None
        assert await listener.ensure()
        first = listener.pid
        assert first is not None
        assert await listener.ensure() and listener.pid == first  # already listening: the same one

        tx = other.transaction()
        await tx.start()
        await other.execute(f"NOTIFY {CHANNEL}")
        await tx.rollback()  # told nobody
        await other.execute(f"NOTIFY {CHANNEL}")
        await _until(lambda: heard == ["notify"], "the committed notification")

        assert await other.fetchval("SELECT pg_terminate_backend($1)", first)
        await _until(lambda: listener.pid is None, "the loss noticed")
        assert heard == ["notify", "lost"]  # reported once

        assert await listener.ensure()
        second = listener.pid
        assert second not in (None, first)
        await other.execute(f"NOTIFY {CHANNEL}")
        await _until(lambda: heard == ["notify", "lost", "notify"], "heard on the new connection")

        assert pool.get_idle_size() == pool.get_size() - 1  # the one it holds
        await listener.close()
        assert listener.pid is None
        assert pool.get_idle_size() == pool.get_size()  # given back
        await other.execute(f"NOTIFY {CHANNEL}")
        await asyncio.sleep(0.3)
        assert heard == ["notify", "lost", "notify"]  # closed: hears nothing, and no loss reported
    finally:
        await listener.close()
        await other.close()
        await pool.close()


async def test_without_a_database_it_does_not_listen_and_does_not_raise(fresh_database_url):
    pool = await create_pool(fresh_database_url)
    await pool.close()
    listener = ChannelListener(pool, CHANNEL, lambda: None)
    assert not await listener.ensure()
    assert listener.pid is None
    await listener.close()
