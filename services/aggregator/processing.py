"""One consumed batch in one transaction: fold, refresh the place view, queue changes, move offsets."""

from __future__ import annotations

import asyncio
import datetime as dt
import itertools
import logging
import math
import time
import zlib
from collections.abc import Iterable, Mapping, Sequence, Set
from dataclasses import dataclass
from typing import TYPE_CHECKING

import asyncpg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from shared.contracts import (
    CATALOGUE,
    DEAD_LETTERS,
    SIGNALS_ANONYMISED,
    STREET_NEEDS,
    Sensitivity,
    SignalAnonymised,
)
from shared.kafka import dead_letter, validation_errors

from . import repository as repo
from .areas import Area, Areas
from .state import BatchDelta, Cell, cells_of_rows, folded_rows, reduce_batch
from .subjects import canonical_events, without_pseudonyms
from .views import LIVE, NeedKey, diff, place_views, place_withheld, views_of_totals

if TYPE_CHECKING:
    from .decoding import FastSignal  # the hot path's SignalAnonymised (same fields)

__all__ = [
    "PLACE_CATEGORIES",
    "BatchOutcome",
    "Key",
    "Parsed",
    "parse_record",
    "process_batch",
    "refresh_due",
    "refresh_forever",
    "refresh_place",
]

log = logging.getLogger(__name__)
PLACE_CATEGORIES = tuple(sorted(str(c) for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE))
_PLACE = frozenset(PLACE_CATEGORIES)
SENSITIVITY = {c: i.sensitivity for c, i in CATALOGUE.items()}  # `info` per event costs an enum call
# How long kept place counts are trusted past their last recount, a backstop for a count that a race
# between lanes or replicas left wrong (a raise and its withdrawal committed at once on two
# partitions, each not yet seeing the other). What bounds such an error in what is published is the
# periodic refresh (`refresh_due`): it counts every area from the signals once per interval, and
# recounts, under the locks, the cells of any area whose published need differs from that count.
# Trusted for a minute, as before, every cell of every area the live load touched was recounted
# about once a minute, row by row from the signals' heap: a third of the aggregator's PostgreSQL
# time under 1,000 signals/s, growing with the state (docs/design/performance.md).
CELL_TRUST = dt.timedelta(minutes=15)
NO_ROWS = Cell()


def _trusted_until(now: dt.datetime, key: tuple[str, str]) -> dt.datetime:
    """Between half and all of CELL_TRUST, spread by key: cells first counted together (a burst of
    signals on new streets) would otherwise all expire together, and one batch would recount every
    one of them at once (a 2-5 s stall of the live path a trust's length after a burst, in the
    live bench)."""
    spread = zlib.crc32(f"{key[0]}:{key[1]}".encode()) % 1024 / 1024
    return now + CELL_TRUST * (0.5 + spread / 2)


# A batch recounts the cells it changed while the state has fewer signal rows than this many times
# the rows it changes (measured: on 100k events from an empty state, recounting is the cheaper).
RECOUNT_UNDER = 8


class _RowsEstimate:
    """About how many signal rows there are (`repo.signal_rows`), read again after `ttl` seconds.

    It only picks the cheaper of two ways to the same counts (`RECOUNT_UNDER`), and PostgreSQL's
    figure is itself up to a second old; reading it for every batch cost a round trip on the live
    path (0.3 ms at the median, 1.7 ms at the 90th percentile under the live probe's load). One per
    process, whatever database a connection is on: a wrong pick costs time, never a count."""

    def __init__(self, ttl: float = 5.0) -> None:
        self.ttl = ttl
        self.read_at = -math.inf
        self.rows = 0

    async def __call__(self, conn: asyncpg.Connection) -> int:
        if (now := time.monotonic()) - self.read_at >= self.ttl:
            self.rows, self.read_at = await repo.signal_rows(conn), now
        return self.rows


_signal_rows = _RowsEstimate()


Parsed = SignalAnonymised | tuple[bytes, bytes]  # an event, or its dead letter (key, value)


Key = tuple[str, str]  # a place cell: (street, category)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    events: int
    dead_lettered: int
    changes: int
    marked: frozenset[Key] = frozenset()  # the place cells a deferred batch marked dirty


def parse_record(rec: ConsumerRecord) -> Parsed:
    """The event, or the dead-letter (key, value) of a record that is not a valid SignalAnonymised."""
    try:
        if rec.value is None:
            raise ValueError("empty value")
        event = SignalAnonymised.model_validate_json(rec.value)
        if event.sensitivity is not SENSITIVITY[event.category]:
            raise ValueError(f"sensitivity {event.sensitivity} contradicts category {event.category}")
        return event
    except (ValidationError, ValueError) as exc:
        errors = validation_errors(exc) if isinstance(exc, ValidationError) else (str(exc),)
        letter = dead_letter(
            service="aggregator",
            source_topic=rec.topic,
            value=without_pseudonyms(rec.value),  # dead letters never carry a pseudonym
            key=rec.key,
            reason="not a valid SignalAnonymised",
            errors=errors,
            partition=rec.partition,
            offset=rec.offset,
        )
        return rec.topic.encode(), letter.model_dump_json().encode()


def _placed(areas: Areas, cells: Iterable[tuple[str, str]]) -> tuple[dict[str, Area], set[NeedKey]]:
    """The areas `cells` count in, by id, and the (area, category) keys they change."""
    placed: dict[str, Area] = {}
    scope: set[NeedKey] = set()
    for s, c in cells:
        if (area := areas.place_area_of.get(s)) is not None:
            placed[area.area_id] = area
            scope.add((area.area_id, c))
    return placed, scope


async def refresh_place(
    conn: asyncpg.Connection,
    areas: Areas,
    cells: Iterable[tuple[str, str]] | None,
    now: dt.datetime,
    trend_days: int,
    *,
    moved: tuple[Mapping[tuple[str, str], Cell], Mapping[tuple[str, str], Cell]] | None = None,
    recount: bool = False,
    areas_locked: bool = False,
) -> int:
    """Recompute the place view where (street, category) `cells` changed (everywhere when None);
    queue the changes.

    A changed cell refreshes its area's need in that category only: the other categories of the
    area did not change with this batch (expiries and sliding trends are `refresh_forever`'s).
    Runs inside the caller's transaction, under per-area locks so that replicas consuming different
    partitions serialise on an area they share and the later one sees the other's committed rows.

    An area's need sums its streets' counts, kept per (street, category) in `place_cells`: a street
    the batch did not change is read from there while its counts hold at `now`, a changed one is
    moved by `moved` (its changed rows' counts before and after the batch, read under the locks)
    or, without them or a kept row, recomputed from the signals, as is anything kept that no
    longer holds. So a batch costs its own rows, not every signal of the areas it touches.
    `recount`: rows moved between subjects (key rotation), so no kept count is trusted.
    `areas_locked`: the caller holds the locks of the cells' areas already (a round trip saved).
    """
    if cells is None:
        previous = await repo.load_previous(conn, sensitivity="place")
        area_ids = {a.area_id for a in areas.place_area_of.values()} | {k[0] for k in previous}
        await repo.lock_areas(conn, area_ids)
        # Read again under the locks: another replica may have published meanwhile.
        previous = await repo.load_previous(conn, sensitivity="place")
        stats = await repo.place_stats(conn, now, trend_days, PLACE_CATEGORIES)
        views = place_views(stats, areas)
        scope = set(views) | {k for k, p in previous.items() if p.live}
    else:
        cells = set(cells)
        placed, scope = _placed(areas, cells)
        touched = set(placed)
        if not areas_locked:
            await repo.lock_areas(conn, touched)
        if recount:
            await repo.clear_cells(conn)
        # Every street of a touched area counts in its need, in the categories changed there: the
        # batch's own cells one by one (to be moved), the others summed per area by PostgreSQL.
        wanted = {(s, c) for a, c in scope for s in placed[a].street_ids}
        own = cells & wanted
        read = await repo.read_cells(
            conn, own, {k: areas.place_area_of[k[0]].area_id for k in wanted - own}, now
        )
        kept, sums, stale = read.kept, read.sums, read.stale
        fresh: dict[tuple[str, str], Cell] = {}
        if moved is not None:
            before, after = moved
            for key in kept.keys():
                was, now_is = before.get(key, NO_ROWS), after.get(key, NO_ROWS)
                if was != now_is:  # else the kept row stands as it is
                    fresh[key] = kept[key].moved(was, now_is)
        stale |= own - kept.keys() - fresh.keys()
        if moved is None:
            stale |= own
        counted = await repo.cell_counts(conn, now, trend_days, PLACE_CATEGORIES, stale)
        for key, cell in counted.items():  # trusted for CELL_TRUST at most, whatever it says
            fresh[key] = cell.moved(NO_ROWS, NO_ROWS, until=_trusted_until(now, key))
        await repo.save_cells(conn, fresh)
        totals: dict[NeedKey, list[int]] = {k: list(v) for k, v in sums.items()}
        for (street_id, category), cell in {**kept, **fresh}.items():
            total = totals.setdefault((areas.place_area_of[street_id].area_id, category), [0, 0, 0])
            total[0] += cell.open
            total[1] += cell.this_window
            total[2] += cell.last_window
        views = {k: v for k, v in views_of_totals(totals, areas).items() if k in scope}
        previous = await repo.load_previous(conn, sensitivity="place", keys=scope)
    changes = diff(views, previous, scope, now)
    await repo.write_changes(conn, changes, areas, STREET_NEEDS.name)
    if cells is None:
        # Rows are only added here: unplaced streets are under no area's lock, so a row dropped on
        # this count could be one a lane committed after it.
        await repo.record_withheld(conn, LIVE, place_withheld(stats, areas))
    elif unplaced := {s for s, _ in cells if s not in areas.place_area_of}:
        await _audit_unplaced(conn, areas, now, trend_days, unplaced, {c for _, c in cells})
    return len(changes)


async def _audit_unplaced(
    conn: asyncpg.Connection,
    areas: Areas,
    now: dt.datetime,
    trend_days: int,
    streets: set[str],
    categories: set[str],
) -> None:
    """The live audit (rule 8) of streets placed in no area, which count in no need: why each of
    their cells in `categories` with open reports is held back, and no row for those that have none
    any more. The live period lists what is held back now, as a quarter's audit is recorded afresh;
    an upsert alone kept a street whose reports were all withdrawn listed as held back. A street's
    signals share a partition, so its cells are audited by one lane at a time."""
    stats = await repo.place_stats(conn, now, trend_days, categories, streets)
    held = place_withheld(stats, areas)
    await repo.record_withheld(conn, LIVE, held)
    await repo.forget_withheld(conn, LIVE, {(s, c) for s in streets for c in categories} - held.keys())


async def process_batch(
    conn: asyncpg.Connection,
    parsed: Sequence[Parsed | FastSignal],
    moves: dict[int, tuple[int | None, int, int]],
    areas: Areas,
    *,
    now: dt.datetime,
    trend_days: int,
    defer: bool = False,
    own_marks: Set[Key] = frozenset(),
    other_marks: Set[Key] = frozenset(),
) -> BatchOutcome:
    """Apply a batch of parsed records exactly once: its effect and the new positions commit
    together or not at all.

    `defer` (a consumer catching up, with more batches right behind this one): fold, but leave the
    place view as it is and mark the place cells the fold changed dirty. The next batch that is not
    deferred recounts every dirty cell and publishes what changed. While far behind, the place view
    is then refreshed once per many batches instead of once per batch: that refresh covers nearly
    every area whatever the batch's size, and it runs under the areas' locks, so the lanes took
    turns at it. What is published in the end is the same (each need as the whole state counts it).
    Dirty marks are rows of the state, committed with the fold: a crash, a rebalance or a lane that
    never publishes again leaves them to a later batch that publishes, of any lane or replica, and
    the periodic refresh (`refresh_due`) republishes any need that differs from a recount meanwhile.

    `own_marks`: the cells this lane's deferred batches marked dirty, recounted here with the
    batch's own; `other_marks`: those the process's other lanes marked, left for them to publish
    (`_with_dirty_cells`). Any other mark (a crashed replica's, a lane's before a rebalance) is
    recounted by the first batch that publishes and can take its area's lock without waiting.
    """
    # Events are SignalAnonymised or decoding.FastSignal (same fields); dead letters are tuples.
    events = [p for p in parsed if not isinstance(p, tuple)]
    dead = [p for p in parsed if isinstance(p, tuple)]
    async with conn.transaction():
        # One person is one subject across key rotation (docs/privacy.md): map, then fold.
        relinked: list[str] = []
        delta = reduce_batch(await canonical_events(conn, events, relinked))
        if defer and not relinked:
            marked = await _fold_deferred(conn, delta, areas, now, trend_days)
            await repo.insert_dead_letters(conn, DEAD_LETTERS.name, dead)
            await repo.claim_offsets(conn, SIGNALS_ANONYMISED.name, moves)
            return BatchOutcome(len(events), len(dead), 0, frozenset(marked))
        # The place rows the fold changes: its raises, and the rows its withdrawals may end (locked,
        # so that their counts before and after the fold differ by this batch's change alone).
        locked = await repo.lock_rows(conn, delta.raised, delta.withdrawn, PLACE_CATEGORIES)
        changed = locked.changed
        # Moving kept counts costs counting the batch's rows before and after the fold (here, from what
        # the lock read); recounting its cells costs reading every row of them: the cheaper, by the
        # state's size (either gives the same counts).
        moving = bool(changed) and await _signal_rows(conn) >= RECOUNT_UNDER * len(changed)
        await repo.apply_delta(conn, delta)
        # Cells that deferred batches left dirty are recounted with this batch's own.
        own = {(s, c) for s, c, _ in changed} | own_marks
        place_cells = await _with_dirty_cells(conn, areas, own, other_marks)
        changes = 0
        if place_cells:
            moved = None
            if moving:
                before, after = folded_rows(changed, locked.raised, locked.withdrawn, delta)
                moved = cells_of_rows(before, now, trend_days), cells_of_rows(after, now, trend_days)
            changes = await refresh_place(
                conn,
                areas,
                place_cells,
                now,
                trend_days,
                moved=moved,
                recount=bool(relinked),
                areas_locked=True,  # by `_with_dirty_cells`
            )
        await repo.insert_dead_letters(conn, DEAD_LETTERS.name, dead)
        await repo.claim_offsets(conn, SIGNALS_ANONYMISED.name, moves)
    if dead:
        log.warning("dead-lettered invalid signals", extra={"count": len(dead)})
    return BatchOutcome(len(events), len(dead), changes)


async def _with_dirty_cells(
    conn: asyncpg.Connection, areas: Areas, cells: set[Key], others: Set[Key]
) -> set[Key]:
    """`cells` and the cells marked dirty that are recounted with them: every mark in their areas,
    and, outside them, the marks in none of the areas of `others` (the marks the process's other
    lanes left, which they publish themselves; a lane's later marks usually fall in the areas of its
    earlier ones) whose areas' locks no other transaction holds. Locks the areas of all.

    The marks in the table are every lane's. Recounting them all, the first lane to publish at the
    end of a catch-up recounted every place cell (2.1 s on the 1M load in process) while the other
    lane waited 2 s for its areas' locks, and on a 100k backlog a lane waited up to ~0.3 s a batch for
    the other's. The batch's own areas are waited for first, in the global order; the others' locks
    are only tried, after them, so no wait follows a lock taken out of order (no deadlock)."""
    own = set(_placed(areas, cells)[0])
    await repo.lock_areas(conn, own)
    dirty = await repo.dirty_cells(conn) - cells
    area_of = {k: a.area_id if (a := areas.place_area_of.get(k[0])) else None for k in dirty}
    tried = {a for a in area_of.values() if a is not None} - own - set(_placed(areas, others)[0])
    free = own | await repo.try_lock_areas(conn, tried)
    return cells | {k for k, a in area_of.items() if a is None or a in free}


async def _fold_deferred(
    conn: asyncpg.Connection, delta: BatchDelta, areas: Areas, now: dt.datetime, trend_days: int
) -> set[Key]:
    """Fold `delta` and mark dirty the place cells it changes: its raises' and those of the rows its
    withdrawals may end (read after the fold, so a row raised and withdrawn in this batch counts);
    the cells marked.

    No row is locked before the fold, as `lock_rows` does for a batch that moves counts: another
    lane's batch moving a count of a row this batch's withdrawal ends may then publish without the
    withdrawal. The mark is written under the areas' locks, so after that batch commits, and the
    next batch that publishes recounts the cell: a need can be off until then, never after."""
    await repo.apply_delta(conn, delta)
    cells = {(s, c) for s, c, _ in delta.raised if c in _PLACE}
    cells |= await repo.withdrawn_cells(conn, delta.withdrawn, PLACE_CATEGORIES)
    placed = {k for k in cells if k[0] in areas.place_area_of}
    await repo.lock_areas(conn, {areas.place_area_of[s].area_id for s, _ in placed})
    await repo.mark_dirty(conn, placed)
    # Unplaced streets count in no need, only in the audit: recorded now, as `refresh_place` does.
    if unplaced := cells - placed:
        streets, categories = {s for s, _ in unplaced}, {c for _, c in unplaced}
        await _audit_unplaced(conn, areas, now, trend_days, streets, categories)
    return placed


def _share(area_id: str, parts: int) -> int:
    """Which of `parts` shares of the place areas `area_id` falls in (stable across restarts)."""
    return zlib.crc32(area_id.encode()) % parts


async def refresh_due(
    conn: asyncpg.Connection,
    areas: Areas,
    now: dt.datetime,
    trend_days: int,
    *,
    part: tuple[int, int] = (0, 1),
) -> int:
    """Publish what time alone changed (signals expired, trend windows slid); the number of changes.

    The place state is counted without locks, to find the needs a recount would change; only
    their areas are then refreshed, under their locks, as a batch would (`refresh_place`). Counting
    the whole state under every area's lock held the consumer's lanes for the length of the count
    (0.5-1 s on the live bench's state): a stall of the whole live path once a minute. Anything a
    refresh of areas cannot reach (a need published for an area that no longer holds streets) takes
    the full recount under every lock.

    `part` (k, n): count only the k-th of n shares of the place areas, and the rows of their
    streets. Counting the whole state at once (0.8 s of a PostgreSQL backend at ~1.2M signals) took
    one of a 2-core machine's cores from the live path for as long, once a minute; a share at a time
    costs as much in all, spread out. The needs of areas that no longer place any street are
    looked after with share 0.
    """
    k, n = part
    placed = {a.area_id for a in areas.place_area_of.values()}
    share = {a for a in placed if _share(a, n) == k}
    async with conn.transaction(isolation="repeatable_read", readonly=True):
        whole = n == 1 or k == 0  # share 0 also reads the needs of areas placed nowhere
        previous = await repo.load_previous(conn, sensitivity="place", area_ids=None if whole else share)
        streets = None if n == 1 else {s for s, a in areas.place_area_of.items() if a.area_id in share}
        stats = await repo.place_stats(conn, now, trend_days, PLACE_CATEGORIES, streets)
    views = place_views(stats, areas, share)
    live = {key for key, p in previous.items() if p.live and (key[0] in share or key[0] not in placed)}
    due = {c.key for c in diff(views, previous, set(views) | live, now)}
    if not due:
        return 0
    cells = {
        (s, category) for area_id, category in due if (area := areas.area(area_id)) for s in area.street_ids
    }
    _, scope = _placed(areas, cells)
    async with conn.transaction():
        reachable = due <= scope
        return await refresh_place(conn, areas, cells if reachable else None, now, trend_days)


# The periodic refresh counts a twelfth of the place areas at a time (`refresh_due`'s `part`).
REFRESH_PARTS = 12


async def refresh_forever(
    pool: asyncpg.Pool, areas: Areas, *, interval: float, trend_days: int, parts: int = REFRESH_PARTS
) -> None:
    """Re-evaluate the place needs now and then: signals expire and trend windows slide without
    events. Every area once per `interval`, a `parts`-th of them at a time."""
    for k in itertools.cycle(range(parts)):
        await asyncio.sleep(interval / parts)
        try:
            async with pool.acquire() as conn:
                await refresh_due(conn, areas, dt.datetime.now(dt.UTC), trend_days, part=(k, parts))
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("place view refresh failed; will retry")
