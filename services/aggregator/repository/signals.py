"""Signals and withdrawals (aggregator.signals, .withdrawals): the state every need is counted from."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Sequence
from typing import Any

import asyncpg

from ..state import BatchDelta, PlaceStats, SignalRow, SignalState
from .cells import columns, lifetimes, micros, stamp, texts


async def apply_delta(conn: asyncpg.Connection, delta: BatchDelta) -> None:
    """Fold a batch into the tables: later times win, so re-applying anything changes nothing.

    A row is rewritten only when the time moves on: a redelivered or replayed event leaves no dead
    row version behind (the indexes stay as small as the state).
    """
    if delta.raised:
        keys = sorted(delta.raised)  # a fixed lock order keeps concurrent replicas deadlock-free
        await conn.execute(
            f"""INSERT INTO aggregator.signals (street_id, category, subject_key, raised_at)
               SELECT s, c, k, {stamp("t")}
               FROM unnest({texts("$1")}, {texts("$2")}, {texts("$3")}, $4::int8[]) AS u(s, c, k, t)
               ON CONFLICT (street_id, category, subject_key)
               DO UPDATE SET raised_at = EXCLUDED.raised_at WHERE signals.raised_at < EXCLUDED.raised_at""",
            *columns(keys, 3),
            micros(delta.raised[k] for k in keys),
        )
    if delta.withdrawn:
        wkeys = sorted(delta.withdrawn)
        await conn.execute(
            f"""INSERT INTO aggregator.withdrawals (subject_key, category, withdrawn_at)
               SELECT k, c, {stamp("t")} FROM unnest({texts("$1")}, {texts("$2")}, $3::int8[]) AS u(k, c, t)
               ON CONFLICT (subject_key, category)
               DO UPDATE SET withdrawn_at = EXCLUDED.withdrawn_at
               WHERE withdrawals.withdrawn_at < EXCLUDED.withdrawn_at""",
            *columns(wkeys, 2),
            micros(delta.withdrawn[k] for k in wkeys),
        )


_ROWS = """SELECT s.street_id, s.category, s.subject_key, s.raised_at, w.withdrawn_at
           FROM aggregator.signals s LEFT JOIN aggregator.withdrawals w USING (subject_key, category)"""


def _row(r: asyncpg.Record) -> SignalRow:
    return SignalRow(r["street_id"], r["category"], r["subject_key"], r["raised_at"], r["withdrawn_at"])


async def rows(
    conn: asyncpg.Connection, *, streets: Sequence[str] | None = None, categories: Sequence[str] | None = None
) -> list[SignalRow]:
    """Signal rows with their withdrawals, optionally for some streets and categories."""
    where, args = [], []
    if streets is not None:
        args.append(list(streets))
        where.append(f"s.street_id = ANY(${len(args)})")
    if categories is not None:
        args.append(list(categories))
        where.append(f"s.category = ANY(${len(args)})")
    sql = _ROWS + (" WHERE " + " AND ".join(where) if where else "")
    return [_row(r) for r in await conn.fetch(sql, *args)]


async def place_stats(
    conn: asyncpg.Connection,
    now: dt.datetime,
    trend_days: int,
    categories: Iterable[str],
    streets: Iterable[str] | None = None,
) -> PlaceStats:
    """`state.place_stats` of the stored rows of `categories` (on `streets`, or all), computed by
    PostgreSQL; only counts that are not zero.

    The same definitions as the pure function, in SQL, so that a batch reads a few counts per
    (street, category) instead of every signal row of its areas;
    `tests/integration/test_aggregator_place_stats.py` checks the two agree. Lifetimes become
    per-category cut-offs (`cells.lifetimes`).
    """
    cats, expired = lifetimes(categories, now)
    window = dt.timedelta(days=trend_days)
    args: list[Any] = [cats, expired, now, now - window, now - 2 * window]
    # The category filter on `s` lets the scan use the key's (street_id, category) prefix and skips
    # other categories' rows before the join.
    where = "WHERE s.category = ANY($1::text[])"
    if streets is not None:
        args.append(sorted(set(streets)))
        where += " AND s.street_id = ANY($6::text[])"
    # The join hashes a large part of the state: in memory on the aggregator's pools (SESSION_SETTINGS).
    found = await conn.fetch(
        f"""SELECT s.street_id, s.category,
               count(*) FILTER (WHERE (w.withdrawn_at IS NULL OR w.withdrawn_at < s.raised_at)
                                AND s.raised_at <= $3 AND s.raised_at > l.expired_at) AS open,
               count(*) FILTER (WHERE w.withdrawn_at >= s.raised_at
                                AND w.withdrawn_at > $4 AND w.withdrawn_at <= $3) AS closed,
               count(*) FILTER (WHERE s.raised_at > $4 AND s.raised_at <= $3) AS this,
               count(*) FILTER (WHERE s.raised_at > $5 AND s.raised_at <= $4) AS last
           FROM aggregator.signals s
           JOIN unnest($1::text[], $2::timestamptz[]) AS l(category, expired_at) USING (category)
           LEFT JOIN aggregator.withdrawals w USING (subject_key, category)
           {where}
           GROUP BY s.street_id, s.category""",
        *args,
    )
    out: tuple[dict[tuple[str, str], int], ...] = ({}, {}, {}, {})
    for r in found:
        key = (r["street_id"], r["category"])
        for target, n in zip(out, (r["open"], r["closed"], r["this"], r["last"]), strict=True):
            if n:
                target[key] = n
    return PlaceStats(*out)


async def snapshot(conn: asyncpg.Connection) -> SignalState:
    """The whole fold, as the pure model holds it (for rebuild checks and tests)."""
    state = SignalState()
    for r in await conn.fetch("SELECT street_id, category, subject_key, raised_at FROM aggregator.signals"):
        state.raised[(r["street_id"], r["category"], r["subject_key"])] = r["raised_at"]
    for r in await conn.fetch("SELECT subject_key, category, withdrawn_at FROM aggregator.withdrawals"):
        state.withdrawn[(r["subject_key"], r["category"])] = r["withdrawn_at"]
    return state


async def reset_state(conn: asyncpg.Connection) -> None:
    """Empty the fold and its positions (rebuild). Releases, noise, ledger and audit are history."""
    await conn.execute(
        "TRUNCATE aggregator.signals, aggregator.withdrawals, aggregator.consumer_offsets,"
        " aggregator.place_cells"
    )


_AREA_LOCK = "hashtextextended('aggregator.area:' || a, 0)"


async def lock_areas(conn: asyncpg.Connection, area_ids: Iterable[str]) -> None:
    """Serialise recomputation per area across replicas, in one global order (no deadlocks)."""
    ids = sorted(set(area_ids))
    if ids:
        await conn.execute(
            f"""SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT {_AREA_LOCK} AS h FROM unnest($1::text[]) AS a ORDER BY h) AS l""",
            ids,
        )


async def try_lock_areas(conn: asyncpg.Connection, area_ids: Iterable[str]) -> set[str]:
    """Take the locks of `area_ids` that no other transaction holds, without waiting; the ids taken.

    Never waiting, it closes no cycle with `lock_areas`' ordered waits, provided the caller waits
    for no lock after it (a transaction then waits only while holding ordered locks)."""
    ids = sorted(set(area_ids))
    if not ids:
        return set()
    rows = await conn.fetch(
        f"SELECT a FROM unnest($1::text[]) AS a WHERE pg_try_advisory_xact_lock({_AREA_LOCK})", ids
    )
    return {r[0] for r in rows}
