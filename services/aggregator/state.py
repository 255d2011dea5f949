"""The aggregate state as a pure, order-independent fold of anonymised signals, and what it implies.

State is two maps: the latest `raised` time per (street, category, subject) and the latest
`withdrawn` time per (subject, category). Both are maxima, so applying events is commutative,
associative and idempotent: a redelivered event, a replay, or a different batching gives the same
state (the second line of defence behind the stored offsets). A signal is active while it has not
expired (`raised_at + lifetime > now`) and no withdrawal is at or after its latest raise; a
withdrawal ends the subject in that category on every street, at once (rule 9).
"""

from __future__ import annotations

import datetime as dt
from collections import Counter, defaultdict
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, TypeVar

from shared.contracts import Sensitivity, SignalAnonymised, info

from .disclosure import parse_period, period_end

if TYPE_CHECKING:
    from .decoding import FastSignal  # the hot path's SignalAnonymised (same fields)

__all__ = [
    "BatchDelta",
    "Cell",
    "CountedRow",
    "PlaceStats",
    "SignalRow",
    "SignalState",
    "active_subjects",
    "cells_of_rows",
    "folded_rows",
    "is_active",
    "person_memberships",
    "place_stats",
    "reduce_batch",
]

K = TypeVar("K")
RaiseKey = tuple[str, str, str]  # (street_id, category, subject_key)
WithdrawKey = tuple[str, str]  # (subject_key, category)
CountedRow = tuple[str, str, dt.datetime, dt.datetime | None]  # (street, category, raised_at, withdrawn_at)
ZERO = dt.timedelta(0)


@dataclass(frozen=True, slots=True)
class SignalRow:
    """One (street, category, subject) with its latest raise and the subject's latest withdrawal."""

    street_id: str
    category: str
    subject_key: str
    raised_at: dt.datetime
    withdrawn_at: dt.datetime | None


@dataclass
class BatchDelta:
    """A batch of events folded into the rows it changes (each key once: one upsert per key)."""

    raised: dict[RaiseKey, dt.datetime] = field(default_factory=dict)
    withdrawn: dict[WithdrawKey, dt.datetime] = field(default_factory=dict)

    def touched(self) -> set[tuple[str, str]]:
        """(street, category) pairs whose raise rows changed; withdrawals are resolved by the caller."""
        return {(s, c) for s, c, _ in self.raised}


def reduce_batch(events: Iterable[SignalAnonymised | FastSignal]) -> BatchDelta:
    delta = BatchDelta()
    raised, withdrawn = delta.raised, delta.withdrawn
    for e in events:
        category, at = str(e.category), e.occurred_at
        if e.action == "raised":
            rkey = (e.street_id, category, e.subject_key)
            if rkey not in raised or raised[rkey] < at:
                raised[rkey] = at
        else:
            wkey = (e.subject_key, category)
            if wkey not in withdrawn or withdrawn[wkey] < at:
                withdrawn[wkey] = at
    return delta


@dataclass
class SignalState:
    """The whole fold in memory: what the database tables hold, for tests and rebuild checks."""

    raised: dict[RaiseKey, dt.datetime] = field(default_factory=dict)
    withdrawn: dict[WithdrawKey, dt.datetime] = field(default_factory=dict)

    def apply(self, events: Iterable[SignalAnonymised]) -> BatchDelta:
        delta = reduce_batch(events)
        _fold(self.raised, delta.raised)
        _fold(self.withdrawn, delta.withdrawn)
        return delta

    def rows(self) -> list[SignalRow]:
        return [
            SignalRow(s, c, k, at, self.withdrawn.get((k, c)))
            for (s, c, k), at in sorted(self.raised.items())
        ]


def _fold(target: dict[K, dt.datetime], changes: Mapping[K, dt.datetime]) -> None:
    """Later times win."""
    for key, at in changes.items():
        if key not in target or target[key] < at:
            target[key] = at


def is_active(row: SignalRow, now: dt.datetime) -> bool:
    lifetime = dt.timedelta(days=info(row.category).lifetime_days)
    ended = row.withdrawn_at is not None and row.withdrawn_at >= row.raised_at
    return not ended and row.raised_at <= now < row.raised_at + lifetime


def active_subjects(rows: Iterable[SignalRow], now: dt.datetime) -> dict[tuple[str, str], set[str]]:
    """Distinct subjects with an active signal per (street, category). Internal: never public."""
    out: defaultdict[tuple[str, str], set[str]] = defaultdict(set)
    for row in rows:
        if is_active(row, now):
            out[(row.street_id, row.category)].add(row.subject_key)
    return dict(out)


@dataclass(frozen=True, slots=True)
class PlaceStats:
    """Per (street, category): open reports now, reports closed and raised in the trend windows."""

    open: Mapping[tuple[str, str], int]
    closed: Mapping[tuple[str, str], int]  # closed within the current window
    this_window: Mapping[tuple[str, str], int]  # raised within the current window
    last_window: Mapping[tuple[str, str], int]  # raised within the window before


@dataclass(frozen=True, slots=True)
class Cell:
    """One (street, category)'s place counts, as `PlaceStats` holds them, and the span of times
    [valid_from, valid_until) over which they do not change by themselves (None: unbounded)."""

    open: int = 0
    closed: int = 0
    this_window: int = 0
    last_window: int = 0
    valid_from: dt.datetime | None = None
    valid_until: dt.datetime | None = None

    def holds_at(self, now: dt.datetime) -> bool:
        return (self.valid_from is None or self.valid_from <= now) and (
            self.valid_until is None or now < self.valid_until
        )

    def moved(self, before: Cell, after: Cell, *, until: dt.datetime | None = None) -> Cell:
        """These counts with some rows' contribution `before` a change replaced by theirs `after` it,
        over the span all three hold for (and not past `until`)."""
        froms = [t for t in (self.valid_from, after.valid_from) if t is not None]
        untils = [t for t in (self.valid_until, after.valid_until, until) if t is not None]
        return Cell(
            self.open - before.open + after.open,
            self.closed - before.closed + after.closed,
            self.this_window - before.this_window + after.this_window,
            self.last_window - before.last_window + after.last_window,
            max(froms) if froms else None,
            min(untils) if untils else None,
        )


def _span(
    raised: dt.datetime,
    ended: dt.datetime | None,
    offsets: tuple[dt.timedelta, ...],
    now: dt.datetime,
    window: dt.timedelta,
) -> tuple[dt.datetime | None, dt.datetime | None]:
    """A row's last break at or before `now` and first after it (None: no such break)."""
    since = until = None
    for offset in offsets:  # ascending, so the breaks are too
        at = raised + offset
        if at <= now:
            since = at
        else:
            until = at
            break
    if ended is not None:
        for at in (ended, ended + window):
            if at <= now:
                since = at if since is None or at > since else since
            elif until is None or at < until:
                until = at
    return since, until


def cells_of_rows(
    rows: Iterable[CountedRow], now: dt.datetime, trend_days: int
) -> dict[tuple[str, str], Cell]:
    """`Cell`s of (street, category, raised_at, withdrawn_at) rows of place categories: their counts
    at `now` (`place_stats`) and the span around `now` in which none of them changes by itself, as
    `repository.cell_counts` computes them in PostgreSQL (tested to agree); a cell per key with rows.

    A row's counts change only at its breaks: its raise, expiry (+ lifetime) and the trend windows
    sliding past it (+ W, + 2W), and, for a withdrawal at or after the raise, the withdrawal and the
    window sliding past that. A batch's own rows are counted here, in one pass of comparisons with
    cut-offs computed once, rather than read back from the database.
    """
    window = dt.timedelta(days=trend_days)
    this_from, last_from = now - window, now - 2 * window
    per_category: dict[str, tuple[dt.datetime, tuple[dt.timedelta, ...]]] = {}
    acc: dict[tuple[str, str], list[Any]] = {}  # Cell's fields, in order
    for street, category, raised, withdrawn in rows:
        if (known := per_category.get(category)) is None:
            lifetime = dt.timedelta(days=info(category).lifetime_days)
            known = per_category[category] = (
                now - lifetime,
                tuple(sorted({ZERO, lifetime, window, 2 * window})),
            )
        expired, offsets = known
        if (a := acc.get((street, category))) is None:
            a = acc[(street, category)] = [0, 0, 0, 0, None, None]
        ended = withdrawn if withdrawn is not None and withdrawn >= raised else None
        if raised <= now:
            if ended is None and raised > expired:
                a[0] += 1
            if raised > this_from:
                a[2] += 1
            elif raised > last_from:
                a[3] += 1
        if ended is not None and this_from < ended <= now:
            a[1] += 1
        since, until = _span(raised, ended, offsets, now, window)
        if since is not None and (a[4] is None or since > a[4]):
            a[4] = since
        if until is not None and (a[5] is None or until < a[5]):
            a[5] = until
    return {key: Cell(*a) for key, a in acc.items()}


def folded_rows(
    changed: Iterable[RaiseKey],
    stored_raised: Mapping[RaiseKey, dt.datetime],
    stored_withdrawn: Mapping[WithdrawKey, dt.datetime],
    delta: BatchDelta,
) -> tuple[list[CountedRow], list[CountedRow]]:
    """The `changed` rows as stored before a batch's fold and as the fold leaves them (later times
    win), as `cells_of_rows` takes them: rows that do not exist before are only in the second."""
    before: list[CountedRow] = []
    after: list[CountedRow] = []
    for key in changed:
        street, category, subject = key
        was = stored_raised.get(key)
        ended = stored_withdrawn.get((subject, category))
        if was is not None:
            before.append((street, category, was, ended))
        raised = delta.raised.get(key)
        if raised is None or (was is not None and was >= raised):
            raised = was
        withdrawn = delta.withdrawn.get((subject, category))
        if withdrawn is None or (ended is not None and ended >= withdrawn):
            withdrawn = ended
        if raised is not None:
            after.append((street, category, raised, withdrawn))
    return before, after


def place_stats(rows: Iterable[SignalRow], now: dt.datetime, trend_days: int) -> PlaceStats:
    """The place counts' definition; `repository.place_stats` computes the same in PostgreSQL."""
    window = dt.timedelta(days=trend_days)
    open_: Counter[tuple[str, str]] = Counter()
    closed: Counter[tuple[str, str]] = Counter()
    this: Counter[tuple[str, str]] = Counter()
    last: Counter[tuple[str, str]] = Counter()
    for row in rows:
        if info(row.category).sensitivity is not Sensitivity.PLACE:
            continue
        key = (row.street_id, row.category)
        if is_active(row, now):
            open_[key] += 1
        elif (
            row.withdrawn_at is not None
            and now - window < row.withdrawn_at <= now
            and row.withdrawn_at >= row.raised_at
        ):
            closed[key] += 1
        if now - window < row.raised_at <= now:
            this[key] += 1
        elif now - 2 * window < row.raised_at <= now - window:
            last[key] += 1
    return PlaceStats(dict(open_), dict(closed), dict(this), dict(last))


def person_memberships(
    rows: Iterable[SignalRow],
    period: str,
    unit_of: Callable[[str], str | None],
) -> dict[tuple[str, str], str]:
    """(subject, category) -> the one unit a subject counts in for a calendar month.

    A subject counts if a signal of theirs was active at some point in the month and has not been
    withdrawn since (rule 9: a withdrawal removes them from every later release). Their unit is
    that of their latest raise (ties broken by street id), so each cell's sensitivity stays 1.
    Streets with no person unit are left out.
    """
    year, month = parse_period(period)
    start, end = dt.datetime(year, month, 1, tzinfo=dt.UTC), period_end(period)
    latest: dict[tuple[str, str], tuple[dt.datetime, str]] = {}
    for row in rows:
        if info(row.category).sensitivity is not Sensitivity.PERSON:
            continue
        if row.withdrawn_at is not None and row.withdrawn_at >= row.raised_at:
            continue
        lifetime = dt.timedelta(days=info(row.category).lifetime_days)
        if not (row.raised_at < end and row.raised_at + lifetime > start):
            continue
        key = (row.subject_key, row.category)
        if key not in latest or latest[key] < (row.raised_at, row.street_id):
            latest[key] = (row.raised_at, row.street_id)
    out = {}
    for key, (_, street_id) in latest.items():
        unit = unit_of(street_id)
        if unit is not None:
            out[key] = unit
    return out
