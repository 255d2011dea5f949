"""The outbox relay: publishes queued street-needs changes (and dead letters), then deletes them.

Rows are written in the same transaction as the state change, so nothing is lost between commit and
publish. Rows are deleted only after Kafka acknowledged them, so a crash republishes some: harmless,
as street-needs is compacted and keyed and each value carries its version. One replica relays at a
time (an advisory lock), which keeps each key's versions in order on the topic.

The relay wakes when rows are committed, not on a timer: the statement that queues them sends a
NOTIFY (delivered at commit, to every replica's relay; `repository.outbox`) and the consumer in
this process sets `Wakeup` right after its commit. The poll interval is only the fallback for a
lost listening connection.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from shared.kafka import client_options
from shared.settings import CommonSettings

from . import repository as repo

__all__ = ["CHANNEL", "Wakeup", "relay_forever", "relay_once", "start_producer"]

log = logging.getLogger(__name__)
RELAYED = Counter("aggregator_outbox_relayed_total", "Outbox rows published to Kafka")
_LOCK = "SELECT pg_try_advisory_xact_lock(hashtextextended('aggregator.outbox', 0))"
CHANNEL = repo.OUTBOX_CHANNEL


class Wakeup:
    """Tells the relay that outbox rows were committed (in-process, and from NOTIFY)."""

    def __init__(self) -> None:
        self._event = asyncio.Event()

    def set(self, *_: object) -> None:  # also an asyncpg listener callback
        self._event.set()

    def clear(self) -> None:
        self._event.clear()

    async def wait(self, seconds: float) -> None:
        try:
            await asyncio.wait_for(self._event.wait(), seconds)
        except TimeoutError:
            pass


async def start_producer(settings: CommonSettings) -> AIOKafkaProducer:
    """A producer that waits for every replica and never duplicates on retry (tombstones: value None)."""
    producer = AIOKafkaProducer(
        **client_options(settings), acks="all", enable_idempotence=True, client_id="aggregator-outbox"
    )
    await producer.start()
    return producer


async def relay_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, limit: int) -> int:
    """Publish up to `limit` queued rows in order; returns how many were relayed."""
    async with pool.acquire() as conn, conn.transaction():
        if not await conn.fetchval(_LOCK):
            return 0
        rows = await repo.fetch_outbox(conn, limit)
        if not rows:
            return 0
        sent = [await producer.send(r["topic"], value=r["value"], key=r["key"]) for r in rows]
        await asyncio.gather(*sent)
        await repo.delete_outbox(conn, [r["id"] for r in rows])
    RELAYED.inc(len(rows))
    return len(rows)


async def relay_forever(
    pool: asyncpg.Pool,
    producer: AIOKafkaProducer,
    *,
    limit: int,
    interval: float,
    wakeup: Wakeup | None = None,
) -> None:
    """Relay whenever rows are committed (`wakeup`, and NOTIFY on a listening connection of its own),
    and every `interval` seconds in case a notification was missed."""
    wakeup = wakeup or Wakeup()
    listener: asyncpg.Connection | None = None
    try:
        while True:
            # Everything a round does may fail while the database is away (a crash, a restart): the
            # relay retries instead of ending, or nothing would be published again.
            try:
                if listener is None or _gone(listener):
                    if listener is not None:
                        old, listener = listener, None
                        await _unlisten(pool, old, wakeup)
                    listener = await _listen(pool, wakeup)
                wakeup.clear()  # before reading: a commit from here on wakes the next round
                if await relay_once(pool, producer, limit) == limit:
                    continue  # more are waiting
            except asyncio.CancelledError:
                raise
            except Exception:
                log.exception("outbox relay failed; retrying")
                await asyncio.sleep(interval)
            await wakeup.wait(interval)
    finally:
        if listener is not None and not _gone(listener):
            await _unlisten(pool, listener, wakeup)


def _gone(conn: asyncpg.Connection) -> bool:
    """Whether a pooled connection was lost. The pool detaches a lost connection's proxy, after which
    every call on it (`is_closed()` too) raises: that also means gone."""
    try:
        closed: bool = conn.is_closed()
        return closed
    except asyncpg.InterfaceError:
        return True


async def _unlisten(pool: asyncpg.Pool, conn: asyncpg.Connection, wakeup: Wakeup) -> None:
    """Give the listening connection back to the pool without its listener (the pool's reset runs
    UNLISTEN, but asyncpg warns of a connection released with a callback still attached)."""
    with contextlib.suppress(Exception):
        await conn.remove_listener(CHANNEL, wakeup.set)
    with contextlib.suppress(Exception):
        await pool.release(conn)


async def _listen(pool: asyncpg.Pool, wakeup: Wakeup) -> asyncpg.Connection | None:
    """A pooled connection held for LISTEN; None (polling only) when it cannot be had."""
    try:
        conn = await pool.acquire(timeout=5)
    except Exception:
        log.warning("no connection to LISTEN for outbox rows; polling", exc_info=True)
        return None
    try:
        await conn.add_listener(CHANNEL, wakeup.set)
    except Exception:
        await pool.release(conn)
        log.warning("LISTEN for outbox rows failed; polling", exc_info=True)
        return None
    return conn
