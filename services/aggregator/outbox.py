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
import logging

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from shared import kafka
from shared.listen import ChannelListener
from shared.settings import CommonSettings

from . import repository as repo

__all__ = ["CHANNEL", "Wakeup", "relay_forever", "relay_once", "start_producer"]

log = logging.getLogger(__name__)
RELAYED = Counter("aggregator_outbox_relayed_total", "Outbox rows published to Kafka")
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
    """The relay's producer (`shared.kafka.start_producer`)."""
    return await kafka.start_producer(settings, client_id="aggregator-outbox")


async def relay_once(pool: asyncpg.Pool, producer: AIOKafkaProducer, limit: int) -> int:
    """Publish up to `limit` queued rows in order; returns how many were relayed."""
    async with pool.acquire() as conn, conn.transaction():
        rows = await repo.claim_outbox(conn, limit)  # none while another replica relays
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
    # A lost connection wakes the loop, which listens anew and relays what it may have missed.
    listener = ChannelListener(pool, CHANNEL, wakeup.set, on_lost=wakeup.set)
    try:
        while True:
            # Everything a round does may fail while the database is away (a crash, a restart): the
            # relay retries instead of ending, or nothing would be published again.
            try:
                await listener.ensure()  # not listening: the interval's poll still relays
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
        await listener.close()
