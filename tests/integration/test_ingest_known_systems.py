"""Council systems kept in ingest's memory: served from there only while PostgreSQL tells of every
change, forgotten at once when one commits anywhere, not kept when a lookup raced a change, never
kept while the listening connection is lost, and never past their time to live."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

import asyncpg
import pytest

from services.ingest import known_systems, repository
from services.ingest.auth import generate_key, hash_key
from services.ingest.known_systems import KnownSystems
from services.ingest.main import MIGRATIONS
from shared.db import apply_migrations, create_pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]
MUTE = "ALTER TABLE ingest.council_systems DISABLE TRIGGER council_systems_changed"


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
async def db(fresh_database_url) -> AsyncIterator[tuple[asyncpg.Pool, asyncpg.Connection]]:
    """A pool for the cache and another connection, as the CLI or another replica would change things."""
    pool = await create_pool(fresh_database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn, "ingest", MIGRATIONS)
    other = await asyncpg.connect(fresh_database_url)
    try:
        yield pool, other
    finally:
        await other.close()
        await pool.close()


async def _system(conn: asyncpg.Connection, key: str | None = None) -> tuple[repository.System, str]:
    """A council system registered as the CLI does (on another connection), and its key's hash."""
    key = key or generate_key()
    system = await repository.create_system(
        conn,
        name="Housing",
        council_id="camden",
        key_hash=hash_key(key),
        categories=["graffiti"],
        rate_per_minute=None,
    )
    return system, hash_key(key)


async def _until_none(known: KnownSystems, digest: str) -> None:
    for _ in range(100):
        if await known.find(digest) is None:
            return
        await asyncio.sleep(0.02)
    raise AssertionError("the change was not heard")


async def test_kept_while_listening_and_never_past_its_time(db):
    pool, other = db
    clock = Clock()
    known = KnownSystems(pool, ttl_s=10, clock=clock)
    system, digest = await _system(other)
    try:
        assert await known.listener.ensure()
        assert await known.find(digest) == system
        # With the trigger muted, a revocation reaches no memory: what `find` answers now, it
        # answers from memory, without a query.
        await other.execute(MUTE)
        await repository.revoke_system(other, system.id)
        assert await known.find(digest) == system
        clock.now += 10  # its time to live is over: asked again
        assert await known.find(digest) is None
    finally:
        await known.listener.close()


async def test_nothing_kept_is_served_once_it_stops_listening(db):
    pool, other = db
    known = KnownSystems(pool, ttl_s=3600)
    system, digest = await _system(other)
    assert await known.listener.ensure()
    assert await known.find(digest) == system
    await known.listener.close()  # as at shutdown: no loss reported, yet nothing tells it any more
    await other.execute(MUTE)
    await repository.revoke_system(other, system.id)
    assert await known.find(digest) is None


async def test_a_change_committed_elsewhere_is_heard_at_once(db):
    pool, other = db
    known = KnownSystems(pool, ttl_s=3600)
    revoked, revoked_digest = await _system(other)
    rekeyed, rekeyed_digest = await _system(other)
    try:
        assert await known.listener.ensure()
        assert await known.find(revoked_digest) == revoked
        assert await known.find(rekeyed_digest) == rekeyed

        tx = other.transaction()  # rolled back: nobody is told, and nothing changed
        await tx.start()
        await repository.revoke_system(other, revoked.id)
        await tx.rollback()
        await asyncio.sleep(0.3)
        assert await known.find(revoked_digest) == revoked

        await repository.revoke_system(other, revoked.id)  # as the CLI does, in another process
        await _until_none(known, revoked_digest)
        await repository.set_system_key(other, rekeyed.id, hash_key(generate_key()))
        await _until_none(known, rekeyed_digest)
    finally:
        await known.listener.close()


async def test_a_lookup_that_raced_a_change_is_not_kept(db, monkeypatch):
    pool, other = db
    known = KnownSystems(pool, ttl_s=3600)
    system, digest = await _system(other)
    read = repository.find_system

    async def read_then_hear(conn, key_hash):  # the NOTIFY of a commit arrives while we read
        found = await read(conn, key_hash)
        known.forget()
        return found

    try:
        assert await known.listener.ensure()
        monkeypatch.setattr(known_systems.repository, "find_system", read_then_hear)
        assert await known.find(digest) == system
        monkeypatch.setattr(known_systems.repository, "find_system", read)
        await other.execute(MUTE)
        await repository.revoke_system(other, system.id)
        assert await known.find(digest) is None  # not kept: asked again
    finally:
        await known.listener.close()


async def _until_pid(known: KnownSystems, check) -> int | None:
    for _ in range(200):
        if check(pid := known.listener.pid):
            return pid
        await asyncio.sleep(0.02)
    raise AssertionError(f"listener pid still {known.listener.pid}")


async def test_a_lost_connection_forgets_everything_and_is_taken_anew(db):
    pool, other = db
    known = KnownSystems(pool, ttl_s=3600)
    system, digest = await _system(other)
    loop = asyncio.create_task(known.listen_forever(interval_s=0.05))
    try:
        lost = await _until_pid(known, lambda pid: pid is not None)
        assert await known.find(digest) == system
        assert await other.fetchval("SELECT pg_terminate_backend($1)", lost)
        # Listening again on a new connection; whatever changed meanwhile was told to nobody.
        await _until_pid(known, lambda pid: pid not in (None, lost))
        await other.execute(MUTE)
        await repository.revoke_system(other, system.id)
        assert await known.find(digest) is None  # forgotten at the loss: asked again
    finally:
        loop.cancel()
        await asyncio.gather(loop, return_exceptions=True)
    assert known.listener.pid is None  # the loop gave its connection back


async def test_unknown_keys_are_not_kept(db):
    pool, other = db
    known = KnownSystems(pool, ttl_s=3600)
    key = generate_key()
    try:
        assert await known.listener.ensure()
        assert await known.find(hash_key(key)) is None
        await other.execute(MUTE)
        system, _ = await _system(other, key)
        assert await known.find(hash_key(key)) == system  # asked again, not answered from memory
    finally:
        await known.listener.close()
