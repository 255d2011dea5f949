"""Place counts per (street, category) (aggregator.place_cells): kept by each batch, read by its refresh."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.contracts import info

from ..state import Cell

__all__ = [
    "CellsRead",
    "LockedRows",
    "cell_counts",
    "clear_cells",
    "columns",
    "dirty_cells",
    "lines",
    "lock_rows",
    "mark_dirty",
    "micros",
    "read_cells",
    "save_cells",
    "signal_rows",
    "stamp",
    "texts",
    "withdrawn_cells",
]

Key = tuple[str, str]  # (street_id, category)
RaiseKey = tuple[str, str, str]  # (street_id, category, subject_key)


def lifetimes(categories: Iterable[str], now: dt.datetime) -> tuple[list[str], list[dt.datetime]]:
    """The categories, sorted, and for each the time before which its signals have expired at `now`:
    per-category cut-offs computed here, so the arithmetic is Python's exact timedelta (PostgreSQL's
    `+ interval '1 day'` follows the session's time zone across daylight saving)."""
    cats = sorted(set(categories))
    return cats, [now - dt.timedelta(days=info(c).lifetime_days) for c in cats]


def lines(values: Sequence[str]) -> str:
    """Texts as one parameter, a PostgreSQL array literal for `texts($n)`: asyncpg encodes a text[]
    element by element (~0.3 us each), and a batch's keys are ~10^5 of them; a join is ~50 times less."""
    items = values
    if not items:
        return "{}"
    plain = "".join(items)
    if '"' in plain or "\\" in plain:  # escape what the literal's syntax needs (ids never have these)
        items = [v.replace("\\", "\\\\").replace('"', '\\"') for v in items]
    return '{"' + '","'.join(items) + '"}'


def columns(keys: Sequence[tuple[str, ...]], n: int) -> list[str]:
    """The `n` columns of `keys`, each as `lines` (transposed in C: a batch has ~10^4 keys)."""
    return [lines(column) for column in zip(*keys, strict=True)] if keys else ["{}"] * n


def texts(param: str) -> str:
    """The SQL of a text[] made of a `lines` parameter."""
    return f"({param}::text)::text[]"


_EPOCH = dt.datetime(1970, 1, 1, tzinfo=dt.UTC)
_MICROSECOND = dt.timedelta(microseconds=1)


def micros(values: Iterable[dt.datetime]) -> list[int]:
    """Aware times as whole microseconds since the epoch, a bigint[] parameter for `stamp`: asyncpg encodes a
    timestamptz[] element by element (~1.2 us each, measured), a bigint[] ~8 times faster, and a
    batch folds ~10^4 times. Exact (timestamptz's own resolution); naive times raise TypeError."""
    return [(t - _EPOCH) // _MICROSECOND for t in values]


def stamp(column: str) -> str:
    """The SQL of the timestamptz that a `micros` element (`column`, a bigint) stands for. Exact: the
    product is whole microseconds, well inside float8's exact range."""
    return f"timestamptz 'epoch' + {column} * interval '1 microsecond'"


# The same counts as `state.place_stats` / `signals.place_stats`, per (street, category), with the
# span around $3 in which none of them changes by itself: a count changes only at a raise ($r), its
# expiry (+ lifetime), the windows sliding past it (+ W, + 2W), and, for a withdrawal at or after the
# raise, the withdrawal and the window sliding past it. Intervals are made of seconds (a time, not
# days), so the additions are exact whatever the session's time zone.
_BREAKS = (
    "s.raised_at",
    "s.raised_at + l.lifetime",
    "s.raised_at + make_interval(secs => $4)",
    "s.raised_at + make_interval(secs => 2 * $4)",
    "CASE WHEN w.withdrawn_at >= s.raised_at THEN w.withdrawn_at END",
    "CASE WHEN w.withdrawn_at >= s.raised_at THEN w.withdrawn_at + make_interval(secs => $4) END",
)
_SINCE = ", ".join(f"CASE WHEN {b} <= $3 THEN {b} END" for b in _BREAKS)
_UNTIL = ", ".join(f"CASE WHEN {b} > $3 THEN {b} END" for b in _BREAKS)
_OF_CELLS = f"""(SELECT s.* FROM unnest({texts("$6")}, {texts("$7")}) AS k(street_id, category)
                JOIN aggregator.signals s USING (street_id, category))"""
_COUNTS = f"""SELECT s.street_id, s.category,
       count(*) FILTER (WHERE (w.withdrawn_at IS NULL OR w.withdrawn_at < s.raised_at)
                        AND s.raised_at <= $3 AND s.raised_at > l.expired_at) AS open,
       count(*) FILTER (WHERE w.withdrawn_at >= s.raised_at AND w.withdrawn_at <= $3
                        AND w.withdrawn_at > $3 - make_interval(secs => $4)) AS closed,
       count(*) FILTER (WHERE s.raised_at > $3 - make_interval(secs => $4) AND s.raised_at <= $3) AS this,
       count(*) FILTER (WHERE s.raised_at > $3 - make_interval(secs => 2 * $4)
                        AND s.raised_at <= $3 - make_interval(secs => $4)) AS last,
       max(GREATEST({_SINCE})) AS valid_from,
       min(LEAST({_UNTIL})) AS valid_until
   FROM {_OF_CELLS} s
   JOIN (SELECT category, expired_at, make_interval(secs => secs) AS lifetime
         FROM unnest($1::text[], $2::timestamptz[], $5::float8[]) AS u(category, expired_at, secs)) AS l
     USING (category)
   LEFT JOIN aggregator.withdrawals w USING (subject_key, category)
   GROUP BY s.street_id, s.category""".replace("$3", "$3::timestamptz").replace("$4", "$4::float8")


async def cell_counts(
    conn: asyncpg.Connection,
    now: dt.datetime,
    trend_days: int,
    categories: Iterable[str],
    cells: Iterable[Key],
) -> dict[Key, Cell]:
    """Counts at `now` of the signal rows of `cells` (every cell listed is in the answer), of
    `categories` only; each with the span it holds for.

    Exact where `window` and lifetimes are whole seconds, as `signals.place_stats` and
    `state.cells_of_rows` (tested to agree).
    """
    cats, expired = lifetimes(categories, now)
    args: list[Any] = [
        cats,
        expired,
        now,
        dt.timedelta(days=trend_days).total_seconds(),
        [dt.timedelta(days=info(c).lifetime_days).total_seconds() for c in cats],
    ]
    wanted = sorted(set(cells))
    args += columns(wanted, 2)
    found: dict[Key, Cell] = {k: Cell() for k in wanted if k[1] in cats}
    if not cats:
        return found
    for r in await conn.fetch(_COUNTS, *args):
        found[(r["street_id"], r["category"])] = Cell(
            r["open"], r["closed"], r["this"], r["last"], r["valid_from"], r["valid_until"]
        )
    return found


@dataclass(frozen=True, slots=True)
class LockedRows:
    """The signal rows a fold changes or may end (`changed`: the raises' keys, which may not exist
    yet, and the rows found through the withdrawals), with what is stored of them before it: the
    raise times of those that exist, and their subjects' withdrawals. Enough to count them before
    and after the fold (`state.folded_rows`) without reading them again."""

    changed: list[RaiseKey]
    raised: dict[RaiseKey, dt.datetime]
    withdrawn: dict[tuple[str, str], dt.datetime]  # (subject_key, category)


async def lock_rows(
    conn: asyncpg.Connection,
    raised: Iterable[RaiseKey],
    withdrawn: Iterable[tuple[str, str]],
    categories: Iterable[str],
) -> LockedRows:
    """Lock, until the transaction ends, the signal rows of `categories` that a fold of these raises
    and (subject, category) withdrawals changes or may end, and read what is stored of them.

    One statement in one global order: replicas folding into the same rows wait for each other
    without deadlocks, so what a batch reads of its rows differs from what its fold leaves by its
    own change alone.
    """
    cats = set(categories)
    raises = sorted(k for k in set(raised) if k[1] in cats)
    ends = sorted(k for k in set(withdrawn) if k[1] in cats)
    if not raises and not ends:
        return LockedRows([], {}, {})
    # Rows come back with a street; withdrawals (of the raises' subjects and the rows') without.
    found = await conn.fetch(
        f"""WITH locked AS MATERIALIZED (
               SELECT s.street_id, s.category, s.subject_key, s.raised_at FROM aggregator.signals s
               JOIN (SELECT * FROM unnest({texts("$1")}, {texts("$2")}, {texts("$3")})
                       AS r(street_id, category, subject_key)
                     UNION
                     SELECT e.street_id, e.category, e.subject_key
                     FROM unnest({texts("$4")}, {texts("$5")}) AS w(subject_key, category)
                     JOIN aggregator.signals e USING (subject_key, category)) AS k
                 USING (street_id, category, subject_key)
               ORDER BY 1, 2, 3 FOR UPDATE OF s)
           SELECT street_id, category, subject_key, raised_at, NULL::timestamptz AS withdrawn_at FROM locked
           UNION ALL
           SELECT NULL, w.category, w.subject_key, NULL, w.withdrawn_at FROM aggregator.withdrawals w
           JOIN (SELECT * FROM unnest({texts("$3")}, {texts("$2")}) AS r(subject_key, category)
                 UNION
                 SELECT subject_key, category FROM locked) AS p
             USING (subject_key, category)""",
        *columns(raises, 3),
        *columns(ends, 2),
    )
    stored_raised: dict[RaiseKey, dt.datetime] = {}
    stored_withdrawn: dict[tuple[str, str], dt.datetime] = {}
    for street_id, category, subject_key, raised_at, withdrawn_at in found:
        if street_id is None:
            stored_withdrawn[(subject_key, category)] = withdrawn_at
        else:
            stored_raised[(street_id, category, subject_key)] = raised_at
    mine = set(raises)
    changed = raises + [k for k in stored_raised if k not in mine]
    return LockedRows(changed, stored_raised, stored_withdrawn)


@dataclass(frozen=True, slots=True)
class CellsRead:
    """What `read_cells` found of a batch's own cells and of the others of the areas it touches."""

    kept: dict[Key, Cell]  # own cells whose kept counts hold (the others are to be recomputed)
    sums: dict[tuple[str, str], tuple[int, int, int]]  # (area, category): summed (open, this, last)
    stale: set[Key]  # other cells with no kept counts that hold (to be recomputed and added)


async def read_cells(
    conn: asyncpg.Connection, own: Iterable[Key], others: Mapping[Key, str], now: dt.datetime
) -> CellsRead:
    """The kept counts of the `own` cells that hold at `now`, one by one; and those of the cells
    `others` lists (with their areas), summed per (area, category) over those that hold, with the
    ones that do not.

    A batch's refresh reads its own cells, to move their counts, and every other street of the areas
    it touches, summed here so that it receives a row per area, not one per street (~10 times fewer,
    each decoded into Python before). One statement for both: two were one more round trip per
    batch on the live path. Rows tell themselves apart: a sum has no street, an own cell no area.
    """
    mine = sorted(set(own))
    keys = sorted(others)
    if not mine and not keys:
        return CellsRead({}, {}, set())
    rows = await conn.fetch(
        f"""WITH k AS MATERIALIZED (
               SELECT k.area_id, k.street_id, k.category, c.open, c.closed, c.this_window,
                   c.last_window, c.valid_from, c.valid_until,
                   c.street_id IS NOT NULL AND (c.valid_from IS NULL OR c.valid_from <= $6)
                       AND (c.valid_until IS NULL OR $6 < c.valid_until) AS holds
               FROM (SELECT s, c, NULL::text FROM unnest({texts("$1")}, {texts("$2")}) AS o(s, c)
                     UNION ALL
                     SELECT * FROM unnest({texts("$3")}, {texts("$4")}, {texts("$5")}))
                   AS k(street_id, category, area_id)
               LEFT JOIN aggregator.place_cells c USING (street_id, category))
           SELECT area_id, category, NULL::text AS street_id, sum(open)::int AS open, NULL::int AS closed,
               sum(this_window)::int AS this_window, sum(last_window)::int AS last_window,
               NULL::timestamptz AS valid_from, NULL::timestamptz AS valid_until
           FROM k WHERE holds AND area_id IS NOT NULL GROUP BY area_id, category
           UNION ALL
           SELECT area_id, category, street_id, open, closed, this_window, last_window, valid_from,
               valid_until
           FROM k WHERE CASE WHEN area_id IS NULL THEN holds ELSE NOT holds END""",
        *columns(mine, 2),
        *columns(keys, 2),
        lines([others[k] for k in keys]),
        now,
    )
    read = CellsRead({}, {}, set())
    for area_id, category, street_id, open_, closed, this, last, since, until in rows:
        if street_id is None:
            read.sums[(area_id, category)] = (open_, this, last)
        elif area_id is None:
            read.kept[(street_id, category)] = Cell(open_, closed, this, last, since, until)
        else:
            read.stale.add((street_id, category))
    return read


async def save_cells(conn: asyncpg.Connection, cells: Mapping[Key, Cell]) -> None:
    """Upsert kept counts (callers hold the locks of the cells' areas)."""
    if not cells:
        return
    keys = sorted(cells)
    values = [cells[k] for k in keys]
    await conn.execute(
        f"""INSERT INTO aggregator.place_cells
               (street_id, category, open, closed, this_window, last_window, valid_from, valid_until)
           SELECT * FROM unnest({texts("$1")}, {texts("$2")}, $3::int[], $4::int[], $5::int[], $6::int[],
                                $7::timestamptz[], $8::timestamptz[])
           ON CONFLICT (street_id, category) DO UPDATE SET
               open = EXCLUDED.open, closed = EXCLUDED.closed, this_window = EXCLUDED.this_window,
               last_window = EXCLUDED.last_window, valid_from = EXCLUDED.valid_from,
               valid_until = EXCLUDED.valid_until""",
        *columns(keys, 2),
        [v.open for v in values],
        [v.closed for v in values],
        [v.this_window for v in values],
        [v.last_window for v in values],
        [v.valid_from for v in values],
        [v.valid_until for v in values],
    )


async def signal_rows(conn: asyncpg.Connection) -> int:
    """About how many signal rows there are (PostgreSQL's statistics: no scan)."""
    n = await conn.fetchval(
        "SELECT n_live_tup FROM pg_stat_user_tables WHERE relid = 'aggregator.signals'::regclass"
    )
    return int(n or 0)


async def clear_cells(conn: asyncpg.Connection) -> None:
    """Forget every kept count (state changed beneath them): the next batches recompute what they read.

    The table is locked first, against every other writer: a DELETE of all rows locks them in the
    heap's order, while other lanes and replicas upsert theirs in key order, and the two orders
    deadlocked (PostgreSQL then fails one batch, which is read again). The lock waits for writers in
    flight to commit and holds new ones until this transaction ends, so it also clears what they kept.
    """
    await conn.execute("LOCK TABLE aggregator.place_cells IN SHARE ROW EXCLUSIVE MODE")
    await conn.execute("DELETE FROM aggregator.place_cells")


# A kept count marked dirty holds at no time: every reader recounts it (`read_cells`), and a batch
# that refreshes the place view recounts and publishes the dirty cells (`dirty_cells`): its lane's,
# and the others no lane of its process claims whose areas' locks it can take without waiting.
_DIRTY = "'-infinity'::timestamptz"


async def mark_dirty(conn: asyncpg.Connection, cells: Iterable[Key]) -> None:
    """Mark the kept counts of `cells` dirty, creating rows for cells with none (callers hold the
    locks of the cells' areas, as every writer of kept counts does)."""
    keys = sorted(set(cells))
    if keys:
        await conn.execute(
            f"""INSERT INTO aggregator.place_cells
                   (street_id, category, open, closed, this_window, last_window, valid_from, valid_until)
               SELECT street_id, category, 0, 0, 0, 0, NULL, {_DIRTY}
               FROM unnest({texts("$1")}, {texts("$2")}) AS k(street_id, category)
               ON CONFLICT (street_id, category) DO UPDATE SET valid_until = {_DIRTY}""",
            *columns(keys, 2),
        )


async def dirty_cells(conn: asyncpg.Connection) -> set[Key]:
    """The cells whose kept counts are marked dirty."""
    rows = await conn.fetch(
        f"SELECT street_id, category FROM aggregator.place_cells WHERE valid_until = {_DIRTY}"
    )
    return {(r["street_id"], r["category"]) for r in rows}


async def withdrawn_cells(
    conn: asyncpg.Connection, withdrawn: Iterable[tuple[str, str]], categories: Iterable[str]
) -> set[Key]:
    """The cells (of `categories`) holding rows of these (subject, category) withdrawals."""
    cats = set(categories)
    ends = sorted(k for k in withdrawn if k[1] in cats)
    if not ends:
        return set()
    rows = await conn.fetch(
        f"""SELECT DISTINCT s.street_id, s.category
           FROM unnest({texts("$1")}, {texts("$2")}) AS w(subject_key, category)
           JOIN aggregator.signals s USING (subject_key, category)""",
        *columns(ends, 2),
    )
    return {(r["street_id"], r["category"]) for r in rows}
