"""The council systems recently seen, kept in memory for as long as PostgreSQL says they hold.

Looking the key up cost every single-signal request a pooled connection and a query: about a tenth
of ingest's CPU per request (`wrk`, docs/design/performance.md). A revoked, re-keyed or re-scoped
system must still stop working at once, on every replica. So a system is kept only while this
process LISTENs for changes to the table (a statement trigger NOTIFYs, at commit, every replica:
migrations/005_council_systems_changed.sql): any change forgets them all, as does a lost listening
connection (notifications may have been missed), and changes made through this process forget them
before the change is answered. A lookup that raced a change is not kept (`_generation`); and none is
kept past `ttl_s`, a bound should a notification ever be lost unnoticed.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Callable

import asyncpg

from shared.listen import ChannelListener

from . import repository
from .repository import System

__all__ = ["CHANNEL", "KnownSystems"]

CHANNEL = "ingest_council_systems"  # NOTIFYed by the table's trigger
MAX_KEPT = 1024  # councils have a few systems each; past this (a misuse), start again


class KnownSystems:
    """Active council systems by key hash: from memory while listening, else from the database."""

    def __init__(
        self, pool: asyncpg.Pool, *, ttl_s: float = 10.0, clock: Callable[[], float] = time.monotonic
    ) -> None:
        self.pool, self.ttl_s, self._clock = pool, ttl_s, clock
        self._kept: dict[str, tuple[System, float]] = {}  # key hash -> (system, kept until)
        self._generation = 0  # moved by every change heard of: a lookup begun before is not kept
        self.listener = ChannelListener(pool, CHANNEL, self.forget, on_lost=self.forget)

    def forget(self) -> None:
        """Something changed (or may have): no kept system is trusted any more."""
        self._generation += 1
        self._kept.clear()

    async def find(self, key_hash: str) -> System | None:
        """The active system whose key hashes to `key_hash` (None: unknown or revoked)."""
        listening = self.listener.pid is not None
        kept = self._kept.get(key_hash)
        if kept is not None and listening and self._clock() < kept[1]:
            return kept[0]
        generation = self._generation
        async with self.pool.acquire() as conn:
            system = await repository.find_system(conn, key_hash)
        # Unknown keys are not kept: anyone may send them, and memory is not theirs to fill.
        if system is not None and listening and generation == self._generation:
            if len(self._kept) >= MAX_KEPT:
                self._kept.clear()
            self._kept[key_hash] = (system, self._clock() + self.ttl_s)
        return system

    async def listen_forever(self, interval_s: float = 5.0) -> None:
        """Keep listening: taken anew within `interval_s` of a loss. Nothing needs forgetting when it
        starts: only lookups begun while listening are kept, and a loss forgets them all."""
        try:
            while True:
                await self.listener.ensure()
                await asyncio.sleep(interval_s)
        finally:
            await self.listener.close()
