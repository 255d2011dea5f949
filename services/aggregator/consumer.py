"""The signals consumer: an aiokafka loop whose positions live in PostgreSQL beside the state.

Kafka's committed offsets are written too, best effort, for lag monitoring only: on assignment the
consumer seeks to the positions stored in the database, so a crash anywhere can neither lose nor
double-count an event (docs/design/aggregator-exactly-once.md).
"""

from __future__ import annotations

import asyncio
import bisect
import contextlib
import datetime as dt
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

import asyncpg
from aiokafka import AIOKafkaConsumer, ConsumerRebalanceListener, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord, OffsetAndMetadata
from prometheus_client import Counter, Histogram

from shared.contracts import SIGNALS_ANONYMISED
from shared.kafka import client_options
from shared.service import release_free_memory
from shared.settings import CommonSettings

from . import repository as repo
from .areas import Areas
from .decoding import FastSignal, decode_record
from .outbox import Wakeup
from .processing import BatchOutcome, Key, Parsed, process_batch
from .settings import AggregatorSettings

__all__ = ["SignalConsumer", "caught_up", "topic_partitions"]

log = logging.getLogger(__name__)
TOPIC = SIGNALS_ANONYMISED.name
_Records = dict[TopicPartition, list[ConsumerRecord[bytes, bytes]]]  # one getmany's result
EVENTS = Counter("aggregator_events_total", "Anonymised signals applied")
DEAD = Counter("aggregator_dead_lettered_total", "Invalid signals dead-lettered")
BATCH = Histogram("aggregator_batch_seconds", "Time to apply one consumed batch")
# After a batch this large (a catch-up's), the freed memory goes back to the system once the consumer
# runs out of records; a live batch's is reused. Once per burst, not per batch: a trim of a fragmented
# ~300 MB heap took ~35 ms, with the event loop (every lane) waiting.
RELEASE_AFTER = 5_000


class _Rebalance(ConsumerRebalanceListener):  # type: ignore[misc]  # aiokafka has no type hints
    def __init__(self, owner: SignalConsumer) -> None:
        self.owner = owner

    async def on_partitions_revoked(self, revoked: list[TopicPartition]) -> None:
        # Wait for the batches in flight to commit before the partitions go to another replica.
        async with self.owner.idle():
            for tp in revoked:
                self.owner.positions.pop(tp, None)
                self.owner.reading.pop(tp, None)
            # Lanes are dealt partitions anew: their marks are left to whichever batch publishes.
            for marks in self.owner.marks:
                marks.clear()

    async def on_partitions_assigned(self, assigned: list[TopicPartition]) -> None:
        async with self.owner.idle():
            await self.owner.seek_to_stored(assigned)


class SignalConsumer:
    """Consume SIGNALS_ANONYMISED in batches, one database transaction per batch.

    Partitions are split into `settings.parallel_batches` lanes (partition modulo lanes); each lane
    applies its batches strictly in order, and the lanes' transactions run side by side, as replicas'
    do (disjoint partitions, per-partition compare-and-set offsets, per-area locks).
    `group_id` None with `assign_all` reads every partition without a group (rebuild).
    """

    def __init__(
        self,
        pool: asyncpg.Pool,
        settings: AggregatorSettings,
        areas: Areas,
        *,
        group_id: str | None = None,
        assign_all: bool = False,
        wakeup: Wakeup | None = None,
    ) -> None:
        self.pool, self.settings, self.areas = pool, settings, areas
        self.wakeup = wakeup  # the outbox relay's, set after a commit that queued rows
        self.group_id = group_id if assign_all else (group_id or settings.group_id)
        self.assign_all = assign_all
        self.lanes = settings.parallel_batches
        self.locks = [asyncio.Lock() for _ in range(self.lanes)]  # one per lane: its batch in flight
        # When each lane last refreshed the place view (a catch-up defers it for so long at most).
        self.published = [time.monotonic()] * self.lanes
        # The place cells each lane's deferred batches marked dirty since it last published: its next
        # publishing batch recounts them, and the other lanes leave them to it (`process_batch`).
        self.marks: list[set[Key]] = [set() for _ in range(self.lanes)]
        self.release_due = False  # a batch of RELEASE_AFTER or more applied since the last release
        self.until: dict[TopicPartition, int] = {}  # where `run(until_end=True)` stops
        self.positions: dict[TopicPartition, int] = {}  # stored in the database
        self.reading: dict[TopicPartition, int] = {}  # the next offset to apply
        self.seeks: dict[TopicPartition, int] = {}  # seeks so far: records fetched before one are stale
        self.consumer = AIOKafkaConsumer(
            **client_options(settings),
            group_id=self.group_id,
            client_id=f"aggregator-{settings.group_id}",
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            isolation_level="read_committed",
            max_partition_fetch_bytes=8 * 1024 * 1024,  # a backlog arrives in few, large fetches
            fetch_max_bytes=64 * 1024 * 1024,
        )

    @contextlib.asynccontextmanager
    async def idle(self) -> AsyncIterator[None]:
        """No batch in flight in any lane while inside (rebalances)."""
        async with contextlib.AsyncExitStack() as stack:
            for lock in self.locks:
                await stack.enter_async_context(lock)
            yield

    async def seek_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Position each partition where the database says the state stops."""
        async with self.pool.acquire() as conn:
            stored = await repo.load_offsets(conn, TOPIC, [tp.partition for tp in partitions])
        fresh = [tp for tp in partitions if tp.partition not in stored]
        for tp in partitions:
            if tp.partition in stored:
                self._seek(tp, stored[tp.partition])
        if fresh and self.settings.replay_from is not None:
            millis = int(self.settings.replay_from.timestamp() * 1000)
            # The ends before the lookup: read after it, they would also pass records appended between
            # the two requests (a lookup that found nothing then skipped events sent meanwhile).
            ends = await self.consumer.end_offsets(fresh)
            found = await self.consumer.offsets_for_times({tp: millis for tp in fresh})
            for tp in fresh:
                self.consumer.seek(tp, found[tp].offset if found.get(tp) else ends[tp])
        elif fresh:
            await self.consumer.seek_to_beginning(*fresh)
        if fresh:
            # Record where a fresh partition starts, so readiness checks see a position for it.
            starts = {tp.partition: await self.consumer.position(tp) for tp in fresh}
            async with self.pool.acquire() as conn:
                await repo.insert_offsets(conn, TOPIC, starts)
                stored = await repo.load_offsets(conn, TOPIC, list(starts))
            for tp in fresh:
                self._seek(tp, stored[tp.partition])  # another replica may have won the insert
        log.info("partitions positioned", extra={"stored": stored, "fresh": [t.partition for t in fresh]})

    async def _back_to_stored(self, partitions: list[TopicPartition]) -> None:
        """Seek back to the stored positions, however long the database takes to come back.

        Reading the positions needs the database that just failed the batch: giving up here would end
        the consumer loop while the service still looked alive, and no signal would be counted again.
        """
        delay = 1.0
        while True:
            await asyncio.sleep(delay)
            try:
                await self.seek_to_stored(partitions)
                return
            except Exception:
                log.warning("stored positions unreadable (database away?); retrying", exc_info=True)
                delay = min(delay * 2, 30.0)

    async def _without_gaps(
        self, batches: dict[TopicPartition, list[tuple[int, Any]]]
    ) -> set[TopicPartition]:
        """Keep of each partition's records only those that follow the stored position offset by
        offset, so that a batch never stores a position past records it did not apply; the
        partitions cut short, to read again once the batch is stored.

        Records resuming past the stored position are dropped and read again from it, unless
        retention deleted what lies between; records skipping (or repeating) an offset are cut there.
        """
        cut: set[TopicPartition] = set()
        for tp, rs in list(batches.items()):
            if rs[0][0] > self.reading[tp] and not await self._expired(tp, self.reading[tp]):
                log.error(
                    "fetched records skip past the stored position; reading again",
                    extra={"partition": tp.partition, "stored": self.reading[tp], "fetched": rs[0][0]},
                )
                self._seek(tp, self.reading[tp])
                del batches[tp]
            elif rs[-1][0] - rs[0][0] + 1 != len(rs):
                end = next(i for i in range(1, len(rs)) if rs[i][0] != rs[i - 1][0] + 1)
                log.error(
                    "fetched records skip offsets; applying up to the gap, reading again after it",
                    extra={"partition": tp.partition, "until": rs[end - 1][0], "then": rs[end][0]},
                )
                batches[tp] = rs[:end]
                cut.add(tp)
        return cut

    async def _expired(self, tp: TopicPartition, offset: int) -> bool:
        """Whether the partition's log no longer holds `offset` (retention deleted it).

        Offsets of this topic follow each other with no gap (its producers are idempotent, not
        transactional, and it is not compacted), so records that resume past the stored position
        were either deleted by retention, or handed out before a seek and taken for current ones.
        """
        try:
            start = (await self.consumer.beginning_offsets([tp]))[tp]
        except Exception:
            log.warning("log start unknown; reading again", exc_info=True)
            return False
        return bool(start > offset)

    def _seek(self, tp: TopicPartition, offset: int) -> None:
        """Move to a stored position. Records of `tp` handed out before this (fetched, or still
        buffered and handed out once) are stale: they are skipped, and read again from here."""
        self.consumer.seek(tp, offset)
        self.positions[tp] = self.reading[tp] = offset
        self.seeks[tp] = self.seeks.get(tp, 0) + 1

    async def start(self) -> None:
        if self.assign_all:
            partitions = await topic_partitions(self.settings)
            await self.consumer.start()
            self.consumer.assign(partitions)
            await self.seek_to_stored(partitions)
        else:
            self.consumer.subscribe([TOPIC], listener=_Rebalance(self))
            await self.consumer.start()

    async def stop(self) -> None:
        await self.consumer.stop()

    async def run(self, *, until_end: bool = False) -> None:
        """Consume forever, or (`until_end`, assign mode) until the end offsets seen at the start.

        Pipelined: while the lanes' transactions run in PostgreSQL, the next records are fetched and
        parsed here; each lane still commits its batches strictly one after another. Records fetched
        for a busy lane wait for it and join its next batch, so batches are small when keeping up and
        grow towards `batch_max_records` when behind (the place refresh costs about the same whatever
        a batch's size: fewer, larger batches catch up faster).
        """
        ends = await self.consumer.end_offsets(list(self.positions)) if until_end else {}
        self.until = ends
        limit = self.settings.batch_max_records
        inflight: dict[int, asyncio.Task[None]] = {}
        pending: dict[int, _Fetched] = {}  # per lane: fetched, waiting for the lane's batch in flight
        fetching: asyncio.Task[tuple[_Records, dict[TopicPartition, int]]] | None = None
        try:
            while True:
                for i in [i for i, task in inflight.items() if task.done()]:
                    await inflight.pop(i)
                for i in [i for i in pending if i not in inflight]:
                    inflight[i] = asyncio.create_task(self._apply_all(pending.pop(i).split(limit), i))
                # The position moves only past batches that committed (a failed one seeks back).
                if (
                    until_end
                    and fetching is None
                    and not inflight
                    and all([await self.consumer.position(tp) >= end for tp, end in ends.items()])
                ):
                    return
                held = sum(f.size for f in pending.values())
                if fetching is None and held < limit * self.lanes:
                    fetching = asyncio.create_task(self._fetch(limit * self.lanes - held))
                # Wake for new records, or for a lane finishing while records wait for it.
                waiting: set[asyncio.Task[Any]] = set(inflight.values()) if pending else set()
                if fetching is not None:
                    waiting.add(fetching)
                done, _ = await asyncio.wait(waiting, return_when=asyncio.FIRST_COMPLETED)
                if fetching is None or fetching not in done:
                    continue
                (batches, seeks), fetching = fetching.result(), None
                self._hold(pending, batches, seeks)
                if not batches and not pending:  # nothing new: let every lane finish (until_end looks again)
                    for task in inflight.values():
                        await task
                    inflight.clear()
                    if self.release_due:
                        release_free_memory()
                        self.release_due = False
        finally:
            tasks: list[asyncio.Task[Any]] = [*inflight.values(), *([fetching] if fetching else [])]
            for task in tasks:
                task.cancel()
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _fetch(self, most: int) -> tuple[_Records, dict[TopicPartition, int]]:
        """Fetched records, with each partition's seek count at the moment they were handed out.

        Counted here, in the step that receives them: the task's result reaches `run` a loop turn or
        more later, and a seek made meanwhile (a rebalance's, or a failed batch's return to the
        stored positions) would otherwise pass records read before it for records read after it.
        Applied from the position the seek set, such records would skip what lies between.
        """
        batches = await self.consumer.getmany(timeout_ms=self.settings.batch_timeout_ms, max_records=most)
        return batches, {tp: self.seeks.get(tp, 0) for tp in batches}

    def _hold(
        self, pending: dict[int, _Fetched], batches: _Records, seeks: dict[TopicPartition, int]
    ) -> None:
        """Parse fetched records into their lanes' waiting batches; `seeks` as `_fetch` counted them
        (records handed out before a later seek are stale: `_apply` skips them)."""
        for tp, rs in batches.items():
            lane = pending.setdefault(tp.partition % self.lanes, _Fetched({}, {}))
            if lane.seeks.get(tp, seeks[tp]) != seeks[tp]:
                del lane.records[tp]  # fetched before a seek: stale, read again from there
            lane.seeks[tp] = seeks[tp]
            lane.records.setdefault(tp, []).extend((r.offset, decode_record(r)) for r in rs)

    async def _apply_all(self, chunks: list[_Fetched], lane: int) -> None:
        """One lane's batches of a fetch, in order (a later one skips what a failed one left)."""
        for fetched in chunks:
            await self._apply(fetched, lane, defer=self._catching_up(fetched, lane))

    def _catching_up(self, fetched: _Fetched, lane: int) -> bool:
        """Whether a batch defers the place view (`process_batch`): at least a full batch lies behind
        it on its lane's partitions (up to the broker's high watermarks as of the last fetch), and
        the lane last published less than `catchup_publish_seconds` ago.

        A full batch, not less: on a short backlog (100k events from an empty state) the per-batch
        refresh is cheap, and deferring it cost more than it saved (~10% slower, in process)."""
        behind = 0
        for tp, reading in self.reading.items():
            if tp.partition % self.lanes == lane and (end := self.consumer.highwater(tp)) is not None:
                end = min(end, self.until.get(tp, end))  # `run(until_end=True)` stops there
                rs = fetched.records.get(tp)
                behind += max(0, end - (rs[-1][0] + 1 if rs else reading))
        return (
            behind >= self.settings.batch_max_records
            and time.monotonic() - self.published[lane] < self.settings.catchup_publish_seconds
        )

    def _committed(
        self, outcome: BatchOutcome, lane: int, defer: bool, seconds: float, recounted: frozenset[Key]
    ) -> None:
        """What follows a batch's commit here: the lane's marks and last publication, the relay's
        wake-up, metrics."""
        if defer:
            self.marks[lane] |= outcome.marked
        else:
            self.marks[lane] -= recounted
            self.published[lane] = time.monotonic()
        if self.wakeup is not None and (outcome.changes or outcome.dead_lettered):
            self.wakeup.set()
        BATCH.observe(seconds)
        EVENTS.inc(outcome.events)
        DEAD.inc(outcome.dead_lettered)
        if outcome.events >= RELEASE_AFTER:
            self.release_due = True

    async def _apply(self, fetched: _Fetched, lane: int = 0, *, defer: bool = False) -> None:
        async with self.locks[lane]:
            # Keep what follows the stored positions: partitions still ours, not sought since the
            # fetch (the seek repositioned the consumer; they will be read again), at or past the
            # next offset to apply.
            batches: dict[TopicPartition, list[tuple[int, Parsed | FastSignal]]] = {}
            for tp, rs in fetched.records.items():
                if tp in self.reading and self.seeks.get(tp, 0) == fetched.seeks[tp]:
                    start = bisect.bisect_left(rs, self.reading[tp], key=lambda r: r[0])
                    if start < len(rs):
                        batches[tp] = rs[start:]
            cut = await self._without_gaps(batches)
            if not batches:
                return
            moves: dict[int, tuple[int | None, int, int]] = {
                tp.partition: (self.positions[tp], rs[-1][0] + 1, len(rs)) for tp, rs in batches.items()
            }
            parsed = [p for rs in batches.values() for _, p in rs]
            own_marks = frozenset(self.marks[lane])
            others = (m for i, m in enumerate(self.marks) if i != lane)
            other_marks: frozenset[Key] = frozenset().union(*others)
            started = time.perf_counter()
            try:
                async with self.pool.acquire() as conn:
                    outcome = await process_batch(
                        conn,
                        parsed,
                        moves,
                        self.areas,
                        now=dt.datetime.now(dt.UTC),
                        trend_days=self.settings.trend_days,
                        defer=defer,
                        own_marks=own_marks,
                        other_marks=other_marks,
                    )
            except Exception:
                # Nothing of the batch was committed: go back to the stored positions and retry.
                log.exception("batch failed; rereading from the stored positions")
                await self._back_to_stored(list(batches))
                return
            self._committed(outcome, lane, defer, time.perf_counter() - started, own_marks)
            for tp, rs in batches.items():
                self.positions[tp] = self.reading[tp] = rs[-1][0] + 1
            for tp in cut:  # what followed the gap was dropped: read it again
                self._seek(tp, self.reading[tp])
        if self.group_id is not None:
            try:
                await self.consumer.commit(
                    {tp: OffsetAndMetadata(rs[-1][0] + 1, "") for tp, rs in batches.items()}
                )
            except Exception:  # only for lag monitoring: the database holds the real positions
                log.debug("kafka offset commit failed", exc_info=True)


@dataclass(frozen=True, slots=True)
class _Fetched:
    """One getmany result, parsed, with each partition's seek count when it was handed out."""

    seeks: dict[TopicPartition, int]
    records: dict[TopicPartition, list[tuple[int, Parsed | FastSignal]]]  # (offset, event or dead letter)

    @property
    def size(self) -> int:
        return sum(len(rs) for rs in self.records.values())

    def split(self, limit: int) -> list[_Fetched]:
        """Consecutive batches of at most `limit` records (each partition's records stay in order)."""
        chunks: list[_Fetched] = []
        for tp, rs in self.records.items():
            for start in range(0, len(rs), limit):
                part = rs[start : start + limit]
                if not chunks or chunks[-1].size + len(part) > limit:
                    chunks.append(_Fetched({}, {}))
                chunks[-1].seeks[tp] = self.seeks[tp]
                chunks[-1].records[tp] = part
        return chunks


async def topic_partitions(settings: CommonSettings, topic: str = TOPIC) -> list[TopicPartition]:
    """Every partition of a topic (the signals topic by default), from the cluster's metadata."""
    admin = AIOKafkaAdminClient(**client_options(settings))
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    if described["error_code"] or not described["partitions"]:
        raise RuntimeError(f"topic {topic} does not exist (run `streetneeds topics create`)")
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]


async def caught_up(pool: asyncpg.Pool, settings: CommonSettings, until: dt.datetime) -> bool:
    """Whether the stored state includes every event appended to the topic before `until`."""
    partitions = await topic_partitions(settings)
    consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
    await consumer.start()
    try:
        after = await consumer.offsets_for_times({tp: int(until.timestamp() * 1000) for tp in partitions})
        ends = await consumer.end_offsets(partitions)
        beginnings = await consumer.beginning_offsets(partitions)
    finally:
        await consumer.stop()
    async with pool.acquire() as conn:
        stored = await repo.load_offsets(conn, TOPIC, [tp.partition for tp in partitions])
    for tp in partitions:
        needed = after[tp].offset if after.get(tp) else ends[tp]
        if stored.get(tp.partition, beginnings[tp]) < needed:
            return False
    return True
