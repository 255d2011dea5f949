"""Keeps `prompts.v1` in step with stored needs and opportunities: publish only what changed.

Delivery choice — publish-then-commit, not a transactional outbox. Each change runs in one
database transaction that (1) stores the need and locks its row, (2) composes the prompt and
compares its content hash with the last published one, (3) if it differs, stores the next revision
and sends the keyed `PromptPublished`, and only when the broker has acknowledged every prompt the
transaction sent (acks=all) does it (4) commit. A polled batch of needs is one such transaction:
its prompts are sent as they are composed and acknowledged together, in the producer's batches.
If a publish fails, the transaction rolls back and the input is redelivered (NACK). If the commit
fails after a successful publish, redelivery recomputes the same content with the same revision
number (the stored revision was rolled back too) and publishes it again: on a compacted topic
keyed by `prompt_id`, a duplicate with the same revision and content is harmless — consumers
keep the latest value per key and can skip a revision they have already seen. An outbox would add
a table and a relay loop to buy exactly-once publishing we do not need.

The need's row lock serialises the stream handler with re-evaluations triggered by opportunity
changes (possibly on another replica), so revisions never fork.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import AsyncIterator, Callable, Iterable, Iterator, Sequence
from contextlib import asynccontextmanager
from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from prometheus_client import Counter

from shared.contracts import PROMPTS, ResidentResponded, StreetNeedChanged, Tombstone

from . import repository as repo
from .matching import Opportunity, Places, covers
from .prompts import compose, published, retired

__all__ = ["PromptPublisher"]

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]
# Counted, not logged one by one: at 1,000 changes/s a line per prompt was a tenth of the CPU.
PUBLISHED = Counter("prompter_prompts_total", "Prompt revisions published (committed)", ["status"])


def _utc_now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


@dataclass(frozen=True, slots=True)
class _Stored:
    """A prompt's stored state: what decides whether (and as which revision) it is published."""

    revision: int | None
    content_hash: str | None
    status: str | None


class _Unit:
    """One transaction's connection, the prompt rows it is to store and send, and the catalogues it
    has read. Rows are written together when its statements are done, so a key met again in the same
    poll reads its state here, not from the table."""

    def __init__(self, conn: asyncpg.Connection, known: dict[str, tuple[int, repo.Catalogue]]) -> None:
        self.conn = conn
        self.saves: dict[str, repo.PromptRow] = {}  # by prompt_id: the last row stored this unit
        self.rows: list[repo.PromptRow] = []  # every row stored, in order: written and sent as is
        self.catalogue_version: int | None = None  # as this transaction read it with the needs' state
        self._known = known  # the publisher's: per category, the catalogue last read and its version
        self._catalogues: dict[str, repo.Catalogue] = {}

    async def catalogue(self, category: str) -> repo.Catalogue:
        """The category's catalogue, read once per transaction (a batch of needs mostly shares a few
        categories), and not at all while the version this transaction read with its needs' state is
        the one last read (every write to the catalogue moves it, in the writing transaction).

        A change committed after that read is not seen here, as one committed after the query was
        not before: the change's re-evaluation of the needs it affects waits for their row locks,
        held by this transaction, and publishes what it changes after this commits.
        """
        if category not in self._catalogues:
            known = self._known.get(category)
            if known is not None and known[0] == self.catalogue_version:
                self._catalogues[category] = known[1]
            else:
                version, found = await repo.catalogue(self.conn, category)
                self._known[category] = (version, found)
                self._catalogues[category] = found
        return self._catalogues[category]

    async def stored(self, prompt_id: str, record: asyncpg.Record | None = None) -> _Stored | None:
        """The prompt's state: this unit's own row, else `record` (read under the need's lock by the
        caller), else the table's."""
        if (row := self.saves.get(prompt_id)) is not None:
            return _Stored(row.revision, row.content_hash, row.status)
        if record is None:
            record = await repo.prompt_state(self.conn, prompt_id)
        return (
            None if record is None else _Stored(record["revision"], record["content_hash"], record["status"])
        )

    def save(self, row: repo.PromptRow) -> None:
        self.saves[row.prompt_id] = row
        self.rows.append(row)


def _distinct_runs(
    items: Sequence[StreetNeedChanged | Tombstone],
) -> Iterator[list[StreetNeedChanged | Tombstone]]:
    """The items in order, cut where a key comes again: one statement can store a need only once."""
    run: list[StreetNeedChanged | Tombstone] = []
    keys: set[str] = set()
    for item in items:
        if item.key in keys:
            yield run
            run, keys = [], set()
        run.append(item)
        keys.add(item.key)
    if run:
        yield run


class PromptPublisher:
    """Applies needs, tombstones and opportunity changes; publishes the prompts that change."""

    def __init__(
        self, pool: asyncpg.Pool, producer: AIOKafkaProducer, places: Places, clock: Clock = _utc_now
    ) -> None:
        # Prompts go out through a producer of the service's own (`shared.kafka.start_producer`).
        self.pool, self.producer, self.places, self.clock = pool, producer, places, clock
        self._catalogues: dict[str, tuple[int, repo.Catalogue]] = {}  # see _Unit.catalogue

    @asynccontextmanager
    async def _transaction(self) -> AsyncIterator[_Unit]:
        """A transaction that commits only once the broker acknowledged every prompt it sent."""
        async with self.pool.acquire() as conn, conn.transaction():
            unit = _Unit(conn, self._catalogues)
            yield unit
            # Every row, in order, as if stored one by one (a prompt published and retired in one
            # poll still gets its first publication date).
            await repo.save_prompts(conn, unit.rows)
            # Sent together once the transaction's statements are done: the producer packs them
            # into a few requests (interleaved with the statements, each went in a request of its
            # own), in the order stored, so one key's revisions stay in order.
            sent = [
                await self.producer.send(PROMPTS.name, row.prompt_json.encode(), key=row.prompt_id.encode())
                for row in unit.rows
            ]
            await asyncio.gather(*sent)
        for row in unit.rows:  # committed
            PUBLISHED.labels(row.status).inc()

    async def _refresh(
        self, unit: _Unit, need: StreetNeedChanged, state: asyncpg.Record | None = None
    ) -> bool:
        """Publish a new revision if the prompt's content changed (inside the caller's transaction).

        A need that calls for no prompt (a ward's steady trend) retires the prompt that is out.
        `state` is the prompt's stored state when the caller already read it under the need's lock.
        """
        now = self.clock()
        opportunities, platforms = await unit.catalogue(str(need.category))
        draft = compose(need, opportunities, self.places, now.date(), platforms)
        stored = await unit.stored(need.key, state)
        if draft is None:
            return self._retire(unit, need.key, stored)
        content_hash = draft.content_hash  # computed on each read: once here
        if stored is not None and stored.status == "published" and stored.content_hash == content_hash:
            return False
        revision = (stored.revision if stored is not None and stored.revision is not None else 0) + 1
        # Serialised once: the stored JSON and the published bytes are the same.
        event_json = published(need, draft, revision, now).model_dump_json()
        unit.save(
            repo.PromptRow(
                need.key,
                revision,
                content_hash,
                "published",
                need.area_id,
                str(need.category),
                need.ward_code,
                event_json,
            )
        )
        log.debug("prompt published", extra={"prompt_id": need.key, "revision": revision})
        return True

    def _retire(self, unit: _Unit, prompt_id: str, stored: _Stored | None) -> bool:
        """Retire the prompt if one is out (inside the caller's transaction); True if retired."""
        if stored is None or stored.status != "published" or stored.revision is None:
            return False
        event_json = retired(prompt_id, self.clock()).model_dump_json()
        area_id, _, category = prompt_id.rpartition(":")
        unit.save(
            repo.PromptRow(prompt_id, stored.revision, None, "retired", area_id, category, None, event_json)
        )
        log.debug("prompt retired", extra={"prompt_id": prompt_id})
        return True

    async def _apply(self, unit: _Unit, items: Sequence[StreetNeedChanged | Tombstone]) -> int:
        """Apply items of distinct keys: their needs stored in one statement, then each in turn."""
        needs = [i for i in items if not isinstance(i, Tombstone)]
        states = dict(zip((n.key for n in needs), await repo.upsert_needs(unit.conn, needs), strict=True))
        if (state := next((s for s in states.values() if s is not None), None)) is not None:
            unit.catalogue_version = state["catalogue_version"]
        changed = 0
        for item in items:
            if isinstance(item, Tombstone):
                # The need is no longer publishable: retire its prompt if one is out.
                await repo.deactivate_need(unit.conn, item.key, self.clock().date())
                changed += self._retire(unit, item.key, await unit.stored(item.key))
            elif (state := states[item.key]) is None:
                log.debug("stale need ignored", extra={"prompt_id": item.key, "version": item.version})
            else:
                changed += await self._refresh(unit, item, state)
        return changed

    async def apply_need(self, need: StreetNeedChanged) -> bool:
        """Store a need and publish its prompt if the content changed; True if published or retired."""
        return await self.apply_needs([need]) == 1

    async def retire_need(self, prompt_id: str) -> bool:
        """A tombstone: the need is no longer publishable; retire its prompt if one is out."""
        return await self.apply_needs([Tombstone(prompt_id)]) == 1

    async def apply_needs(self, items: Sequence[StreetNeedChanged | Tombstone]) -> int:
        """Apply needs and tombstones in order, in one transaction; returns how many prompts changed.

        A key's later record sees what its earlier one stored (same connection), so revisions stay
        in sequence; the needs' row locks are held until the commit, which serialises re-evaluations.
        Re-applying the same records (a redelivered batch) stores and publishes nothing new.
        """
        async with self._transaction() as unit:
            return sum([await self._apply(unit, run) for run in _distinct_runs(items)])

    async def reevaluate(self, prompt_ids: Iterable[str]) -> int:
        """Recompute the given prompts, one transaction each; returns how many were republished."""
        changed = 0
        for prompt_id in prompt_ids:
            async with self._transaction() as unit:
                need = await repo.lock_need(unit.conn, prompt_id)
                if need is not None and await self._refresh(unit, need):
                    changed += 1
        return changed

    async def opportunity_changed(self, before: Opportunity | None, after: Opportunity | None) -> int:
        """Re-evaluate the prompts whose links an opportunity's registration/update/retirement may
        change: active needs in its categories that its old or new area covers."""
        versions = [o for o in (before, after) if o is not None]
        categories = {str(c) for o in versions for c in o.categories}
        async with self.pool.acquire() as conn:
            needs = await repo.active_needs(conn, categories)
        affected = [
            n.key
            for n in needs
            if any(n.category in o.categories and covers(o, n, self.places) for o in versions)
        ]
        return await self.reevaluate(affected)

    async def platforms_changed(self, categories: Iterable[str]) -> int:
        """Re-evaluate every active prompt of the categories a platform (un)listing touches."""
        async with self.pool.acquire() as conn:
            keys = await repo.active_need_keys(conn, categories)
        return await self.reevaluate(keys)

    async def reconcile(self) -> int:
        """Re-evaluate every active need: picks up opportunities that started or ended with the date,
        and any re-evaluation a crash interrupted. Unchanged prompts cost a hash comparison."""
        async with self.pool.acquire() as conn:
            keys = await repo.active_need_keys(conn)
        return await self.reevaluate(keys)

    async def count_response(self, response: ResidentResponded) -> bool:
        """Count an "I can help" once per response id; False if already counted."""
        async with self.pool.acquire() as conn, conn.transaction():
            return await repo.record_response(conn, response)
