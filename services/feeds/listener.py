"""Every replica's live updates: LISTEN for committed changes in PostgreSQL, fan them out locally.

Each replica of the "feeds" group consumes only some partitions of prompts.v1, so the consumer
cannot feed SSE clients directly. Instead the change is stored with `pg_notify` in the same
transaction, and one dedicated connection per replica listens. A notification is only a wake-up:
the listener reads every change after the last one it fanned out, so whatever was committed while
it was reconnecting is delivered too, once and in order.

A replica's own changes need not wait for that read: the consumer offers them once committed
(`offer`), and they go out at once when nothing can lie between them and the last change fanned
out. That spares the live path a notification's trip and a query (the read, under load, was the
feeds stage's slowest step); the read still delivers everything else.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Sequence

import asyncpg

from . import repository as repo
from .live import Hub

__all__ = ["Listener"]

log = logging.getLogger(__name__)
# A silent network loss raises nothing on an idle connection: look (and catch up) this often anyway.
# Each look also tells the validator cache that nothing was missed (feedcache.ValidatorCache: well
# within its TTL, so validators of feeds that did not change stay in memory while the listener is well).
CHECK_EVERY_S = 2.0
PAGE = 500


class Listener:
    """Fans out every change after seq `last` to `hub`; `run()` for the service's lifetime."""

    def __init__(self, database_url: str, hub: Hub, last: int, *, retry_s: float = 1.0) -> None:
        self.database_url, self.hub, self.last, self.retry_s = database_url, hub, last, retry_s
        self._wake = asyncio.Event()

    def _notified(self, _conn: object, _pid: int, _channel: str, payload: str) -> None:
        if int(payload) > self.last:
            self._wake.set()

    def offer(self, changes: Sequence[repo.Change | None]) -> None:
        """Fan out changes this replica has just committed (None: an event that changed nothing)
        without reading them back, if they directly follow the last change fanned out.

        Changes are numbered under a lock held until commit, so every number below this
        transaction's first belongs to a transaction already committed, and every number between
        its first and last to this one (those it left unused included). A first number right after
        `last` thus leaves nothing out. Otherwise (another replica's changes in between, or the
        listener behind) the notification's read delivers them, in order, as it does everyone's.
        """
        mine = sorted((c for c in changes if c is not None), key=lambda c: c.seq)
        if not mine or mine[0].seq != self.last + 1:
            return
        for change in mine:
            self.hub.publish(change)
        self.last = mine[-1].seq

    def _counted(self, _conn: object, _pid: int, _channel: str, _payload: str) -> None:
        self.hub.counts_seen += 1  # pages showing "I can help" counts revalidate

    async def _fan_out(self, conn: asyncpg.Connection) -> None:
        while True:
            began = time.monotonic()
            page = await repo.changes_after(conn, self.last, PAGE)
            for change in page:
                if change.seq > self.last:  # else offered meanwhile, while the read was under way
                    self.hub.publish(change)
                    self.last = change.seq
            if len(page) < PAGE:
                # What views.feed_response's validator cache compares with: caught up to here, and
                # nothing committed before `began` was missed.
                self.hub.seen_seq = self.last
                self.hub.caught_up_at = began
                return

    async def _serve(self, conn: asyncpg.Connection) -> None:
        """Until the connection is lost: catch up, then again at each notification (or check)."""
        self.hub.seen_seq = None  # changes may be missed until caught up
        lost = asyncio.Event()
        conn.add_termination_listener(lambda _conn: lost.set())
        await conn.add_listener(repo.CHANNEL, self._notified)
        await conn.add_listener(repo.COUNTS_CHANNEL, self._counted)
        self.hub.counts_seen += 1  # count changes while no connection listened were not notified
        while not lost.is_set():
            self._wake.clear()  # before reading, so a notification that arrives meanwhile is not lost
            await self._fan_out(conn)
            waiters = [asyncio.ensure_future(e.wait()) for e in (self._wake, lost)]
            try:
                await asyncio.wait(waiters, timeout=CHECK_EVERY_S, return_when=asyncio.FIRST_COMPLETED)
            finally:
                for waiter in waiters:
                    waiter.cancel()

    async def run(self) -> None:
        while True:
            conn: asyncpg.Connection | None = None
            try:
                conn = await asyncpg.connect(
                    self.database_url, server_settings={"application_name": "feeds-listener"}
                )
                await self._serve(conn)
                log.warning("live-updates listener lost its connection; reconnecting")
            except Exception:  # whatever went wrong, live updates must come back, not stop for good
                log.warning("live-updates listener failed; reconnecting", exc_info=True)
            finally:
                self.hub.seen_seq = None  # validators from the database until caught up again
                if conn is not None:
                    conn.terminate()
            await asyncio.sleep(self.retry_s)
