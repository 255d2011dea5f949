"""The services' connection pool gives a connection back without a reset query, and still without
anything a borrower left behind that could reach the next one."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from shared.db import create_pool

pytestmark = pytest.mark.integration


async def _last_query(url: str, pid: int) -> str:
    conn = await asyncpg.connect(url)
    try:
        return str(await conn.fetchval("SELECT query FROM pg_stat_activity WHERE pid = $1", pid))
    finally:
        await conn.close()


async def test_a_released_connection_sends_no_reset_query(fresh_database_url) -> None:
    pool = await create_pool(fresh_database_url, max_size=1)
    try:
        async with pool.acquire() as conn, conn.transaction():
            pid = conn.get_server_pid()
            await conn.execute("SELECT 42")
        # The transaction's end is the backend's last query; asyncpg's default reset would follow it.
        assert await _last_query(fresh_database_url, pid) == "COMMIT;"
    finally:
        await pool.close()


async def test_what_a_borrower_left_open_does_not_reach_the_next(fresh_database_url) -> None:
    pool = await create_pool(fresh_database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            await conn.execute("CREATE TABLE left_open (n int)")
        # A transaction begun by hand and never ended: rolled back on release, not inherited.
        async with pool.acquire() as conn:
            await conn.execute("BEGIN")
            await conn.execute("INSERT INTO left_open VALUES (1)")
        # A LISTEN whose listener was removed (as the outbox and the delivery worker do).
        received: list[str] = []

        def heard(*args: object) -> None:
            received.append(str(args[-1]))

        async with pool.acquire() as conn:
            await conn.add_listener("pool_test", heard)
            assert await conn.fetchval("SELECT array_agg(c) FROM pg_listening_channels() c") == ["pool_test"]
            await conn.remove_listener("pool_test", heard)
        async with pool.acquire() as conn:
            assert not conn.is_in_transaction()
            assert await conn.fetchval("SELECT count(*) FROM left_open") == 0
            assert await conn.fetch("SELECT pg_listening_channels()") == []
            await conn.execute("NOTIFY pool_test, 'after'")
            await asyncio.sleep(0.2)
        assert received == []
    finally:
        await pool.close()


async def test_server_settings_hold_on_every_connection_and_survive_a_transaction(fresh_database_url) -> None:
    # The aggregator's pools hash its place counts in 64 MB (`repository.SESSION_SETTINGS`), with no
    # statement per transaction to say so.
    from services.aggregator.repository import SESSION_SETTINGS

    pool = await create_pool(fresh_database_url, min_size=2, max_size=2, server_settings=SESSION_SETTINGS)
    try:
        async with pool.acquire() as first, pool.acquire() as second:
            assert first.get_server_pid() != second.get_server_pid()
            for conn in (first, second):
                async with conn.transaction():
                    assert await conn.fetchval("SHOW work_mem") == "64MB"
        async with pool.acquire() as conn:
            assert await conn.fetchval("SHOW work_mem") == "64MB"
        plain = await create_pool(fresh_database_url, max_size=1)
        try:
            async with plain.acquire() as conn:
                assert await conn.fetchval("SHOW work_mem") != "64MB", "the default is PostgreSQL's own"
        finally:
            await plain.close()
    finally:
        await pool.close()
