"""A pooled connection held to LISTEN on one PostgreSQL channel, taken anew when it is lost.

Several services wake, or forget what they keep in memory, when another transaction commits: the
aggregator's outbox relay, the partners' delivery worker, ingest's council-system cache. Each holds
one connection from its pool for LISTEN. A notification is delivered at commit, to every listening
connection in every replica; one sent while nobody listened is gone, so each user says what it does
when listening (re)starts or the connection is lost (`on_lost`): look again, poll, or forget.

`ensure()` is called from the user's own loop: it listens if it does not, and never raises but on
cancellation, so that a database that is away only means "not listening now".
"""

from __future__ import annotations

import contextlib
import logging
from collections.abc import Callable

import asyncpg

__all__ = ["ChannelListener"]

log = logging.getLogger(__name__)


class ChannelListener:
    """Calls `on_notify()` for every notification on `channel`; `on_lost()` when the connection goes."""

    def __init__(
        self,
        pool: asyncpg.Pool,
        channel: str,
        on_notify: Callable[[], None],
        *,
        on_lost: Callable[[], None] | None = None,
        acquire_timeout_s: float = 5.0,
    ) -> None:
        self.pool, self.channel = pool, channel
        self._on_notify, self._on_lost = on_notify, on_lost
        self._acquire_timeout_s = acquire_timeout_s
        self._conn: asyncpg.pool.PoolConnectionProxy | None = None
        self._pid: int | None = None  # the connection's backend while it lasts

    @property
    def pid(self) -> int | None:
        """The PostgreSQL backend it listens on; None while it does not listen."""
        if self._pid is not None and self._conn is not None and _gone(self._conn):
            self._lost()
        return self._pid

    async def ensure(self) -> bool:
        """Listen, unless it already does; whether it now listens."""
        if self.pid is not None:
            return True
        await self.close()  # a lost connection goes back to the pool, which discards it
        try:
            conn = await self.pool.acquire(timeout=self._acquire_timeout_s)
        except Exception as exc:  # the database is away: the user's own queries say so in full
            log.warning("no connection to LISTEN on %s: not listening (%r)", self.channel, exc)
            return False
        try:
            await conn.add_listener(self.channel, self._notified)
        except Exception:
            log.warning("LISTEN on %s failed: not listening", self.channel, exc_info=True)
            with contextlib.suppress(Exception):
                await self.pool.release(conn)
            return False
        conn.add_termination_listener(self._terminated)
        self._conn, self._pid = conn, conn.get_server_pid()
        return True

    async def close(self) -> None:
        """Stop listening and give the connection back (asyncpg warns of one released with a
        listener still attached; the pool's own reset would UNLISTEN too)."""
        conn, self._conn, self._pid = self._conn, None, None
        if conn is None:
            return
        with contextlib.suppress(Exception):  # a lost connection has nothing left to stop
            conn.remove_termination_listener(self._terminated)
            await conn.remove_listener(self.channel, self._notified)
        with contextlib.suppress(Exception):  # nor to give back, once the pool took it
            await self.pool.release(conn)

    def _notified(self, *_: object) -> None:
        self._on_notify()

    def _terminated(self, *_: object) -> None:
        self._lost()

    def _lost(self) -> None:
        if self._pid is None:
            return
        self._pid = None
        if self._on_lost is not None:
            self._on_lost()


def _gone(conn: asyncpg.pool.PoolConnectionProxy) -> bool:
    """Whether a pooled connection was lost. The pool detaches a lost connection's proxy, after which
    every call on it (`is_closed()` too) raises: that also means gone."""
    try:
        closed: bool = conn.is_closed()
        return closed
    except asyncpg.InterfaceError:
        return True
