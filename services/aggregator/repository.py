"""All of the aggregator's SQL (asyncpg), batched: one statement per table per batch, never per event."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Iterable, Mapping, Sequence
from typing import Any

import asyncpg
from pydantic_core import from_json, to_json

from shared.contracts import info

from .areas import Areas
from .disclosure import Cell, ReleaseResult, WardTotal
from .state import BatchDelta, PlaceStats, SignalRow, SignalState
from .views import Change, NeedKey, Previous

__all__ = [
    "StaleOffsets",
    "apply_delta",
    "claim_offsets",
    "clear_withheld",
    "delete_outbox",
    "fetch_outbox",
    "insert_dead_letters",
    "insert_offsets",
    "latest_quarter",
    "list_releases",
    "list_withheld",
    "load_ledger",
    "load_noise",
    "load_offsets",
    "load_previous",
    "load_ward_totals",
    "lock_areas",
    "lock_releases",
    "needs",
    "place_stats",
    "quarter_done",
    "record_withheld",
    "record_withheld_counts",
    "release_exists",
    "released_months",
    "reset_state",
    "rows",
    "save_quarter",
    "save_release",
    "snapshot",
    "streets_of_withdrawals",
    "withheld_summary",
    "write_changes",
]


class StaleOffsets(RuntimeError):
    """The stored position is not the one this consumer read from: another replica moved on."""


async def apply_delta(conn: asyncpg.Connection, delta: BatchDelta) -> None:
    """Fold a batch into the tables: later times win, so re-applying anything changes nothing."""
    if delta.raised:
        keys = sorted(delta.raised)  # a fixed lock order keeps concurrent replicas deadlock-free
        await conn.execute(
            """INSERT INTO aggregator.signals (street_id, category, subject_key, raised_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::text[], $4::timestamptz[])
               ON CONFLICT (street_id, category, subject_key)
               DO UPDATE SET raised_at = GREATEST(signals.raised_at, EXCLUDED.raised_at)""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [k[2] for k in keys],
            [delta.raised[k] for k in keys],
        )
    if delta.withdrawn:
        keys = sorted(delta.withdrawn)
        await conn.execute(
            """INSERT INTO aggregator.withdrawals (subject_key, category, withdrawn_at)
               SELECT * FROM unnest($1::text[], $2::text[], $3::timestamptz[])
               ON CONFLICT (subject_key, category)
               DO UPDATE SET withdrawn_at = GREATEST(withdrawals.withdrawn_at, EXCLUDED.withdrawn_at)""",
            [k[0] for k in keys],
            [k[1] for k in keys],
            [delta.withdrawn[k] for k in keys],
        )


async def load_offsets(conn: asyncpg.Connection, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM aggregator.consumer_offsets"
        " WHERE topic = $1 AND partition = ANY($2)",
        topic,
        list(partitions),
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def insert_offsets(conn: asyncpg.Connection, topic: str, starts: Mapping[int, int]) -> None:
    """Store the starting position of partitions that have none yet."""
    await conn.executemany(
        "INSERT INTO aggregator.consumer_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        [(topic, p, o) for p, o in sorted(starts.items())],
    )


async def claim_offsets(
    conn: asyncpg.Connection, topic: str, moves: Mapping[int, tuple[int | None, int, int]]
) -> None:
    """Move each partition (expected position, new position, records applied), or raise StaleOffsets.

    The compare-and-set fences out a replica that lost a partition but still finishes a batch:
    its transaction rolls back instead of counting the batch a second time.
    """
    parts = sorted(moves)
    expected = [moves[p][0] for p in parts]
    new = [moves[p][1] for p in parts]
    applied = [moves[p][2] for p in parts]
    done = await conn.fetchval(
        """WITH input AS (
               SELECT * FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[])
                   AS t(p, expected, new, n)),
           updated AS (
               UPDATE aggregator.consumer_offsets o
               SET next_offset = i.new, records = o.records + i.n, updated_at = now()
               FROM input i WHERE o.topic = $1 AND o.partition = i.p AND o.next_offset = i.expected
               RETURNING 1),
           inserted AS (
               INSERT INTO aggregator.consumer_offsets (topic, partition, next_offset, records)
               SELECT $1, p, new, n FROM input WHERE expected IS NULL
               ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted)""",
        topic,
        parts,
        expected,
        new,
        applied,
    )
    if done != len(parts):
        raise StaleOffsets(f"{topic}: stored positions moved for some of partitions {parts}")


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


async def streets_of_withdrawals(
    conn: asyncpg.Connection, keys: Iterable[tuple[str, str]]
) -> set[tuple[str, str]]:
    """(street, category) pairs a batch's withdrawals may have ended."""
    keys = list(keys)
    if not keys:
        return set()
    found = await conn.fetch(
        """SELECT DISTINCT s.street_id, s.category FROM aggregator.signals s
           JOIN unnest($1::text[], $2::text[]) AS k(subject_key, category) USING (subject_key, category)""",
        [k[0] for k in keys],
        [k[1] for k in keys],
    )
    return {(r["street_id"], r["category"]) for r in found}


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
    per-category cut-offs computed here, so the arithmetic is Python's exact timedelta
    (PostgreSQL's `+ interval '1 day'` follows the session's time zone across daylight saving).
    """
    cats = sorted(set(categories))
    window = dt.timedelta(days=trend_days)
    args: list[Any] = [
        cats,
        [now - dt.timedelta(days=info(c).lifetime_days) for c in cats],
        now,
        now - window,
        now - 2 * window,
    ]
    where = ""
    if streets is not None:
        args.append(sorted(set(streets)))
        where = "WHERE s.street_id = ANY($6::text[])"
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
    out: tuple[dict, ...] = ({}, {}, {}, {})
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
    await conn.execute("TRUNCATE aggregator.signals, aggregator.withdrawals, aggregator.consumer_offsets")


async def lock_areas(conn: asyncpg.Connection, area_ids: Iterable[str]) -> None:
    """Serialise recomputation per area across replicas, in one global order (no deadlocks)."""
    ids = sorted(set(area_ids))
    if ids:
        await conn.execute(
            """SELECT pg_advisory_xact_lock(h) FROM (
                   SELECT DISTINCT hashtextextended('aggregator.area:' || a, 0) AS h
                   FROM unnest($1::text[]) AS a ORDER BY h) AS l""",
            ids,
        )


async def lock_releases(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('aggregator.releases', 0))")


async def load_previous(
    conn: asyncpg.Connection, *, sensitivity: str, keys: Iterable[NeedKey] | None = None
) -> dict[NeedKey, Previous]:
    """The last published state of `keys` (every key of `sensitivity` when None)."""
    args: list[Any] = [sensitivity]
    sql = (
        "SELECT area_id, category, content, version, since, live FROM aggregator.published p"
        " WHERE sensitivity = $1"
    )
    if keys is not None:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        args += [[k[0] for k in wanted], [k[1] for k in wanted]]
        sql = sql.replace(
            " p WHERE",
            " p JOIN unnest($2::text[], $3::text[]) AS k(area_id, category) USING (area_id, category) WHERE",
        )
    return {
        (r["area_id"], r["category"]): Previous(from_json(r["content"]), r["version"], r["since"], r["live"])
        for r in await conn.fetch(sql, *args)
    }


async def write_changes(
    conn: asyncpg.Connection, changes: Sequence[Change], areas: Areas, topic: str
) -> None:
    """Record each change as the last published value and queue it in the outbox, atomically."""
    if not changes:
        return
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "area",
            "cat",
            "sens",
            "live",
            "content",
            "payload",
            "version",
            "since",
            "ward",
            "streets",
            "minlon",
            "minlat",
            "maxlon",
            "maxlat",
        )
    }
    outbox_keys, outbox_values = [], []
    for ch in changes:
        area_id, category = ch.key
        view, msg = ch.view, ch.message
        area = view.area if view else areas.area(area_id)
        bounds = areas.bounds(area) if area else (None,) * 4
        payload = msg.model_dump_json() if msg else None
        for name, value in zip(
            cols,
            (
                area_id,
                category,
                str(info(category).sensitivity),
                msg is not None,
                to_json(view.content() if view else {}).decode(),
                payload,
                ch.version,
                ch.since,
                area.ward_code if area else None,
                list(area.street_ids) if area else [],
                *bounds,
            ),
            strict=True,
        ):
            cols[name].append(value)
        outbox_keys.append(f"{area_id}:{category}".encode())
        outbox_values.append(payload.encode() if payload else None)
    await conn.execute(
        """INSERT INTO aggregator.published (area_id, category, sensitivity, live, content, payload,
               version, since, ward_code, street_ids, min_lon, min_lat, max_lon, max_lat)
           SELECT a, c, s, l, ct::jsonb, p::jsonb, v, d, w, string_to_array(st, E'\\x1f'),
                  x0, y0, x1, y1
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[],
                       $7::int[], $8::date[], $9::text[], $10::text[], $11::float8[], $12::float8[],
                       $13::float8[], $14::float8[])
                AS t(a, c, s, l, ct, p, v, d, w, st, x0, y0, x1, y1)
           ON CONFLICT (area_id, category) DO UPDATE SET
               live = EXCLUDED.live, content = EXCLUDED.content, payload = EXCLUDED.payload,
               version = EXCLUDED.version, since = EXCLUDED.since, ward_code = EXCLUDED.ward_code,
               street_ids = EXCLUDED.street_ids, min_lon = EXCLUDED.min_lon,
               min_lat = EXCLUDED.min_lat, max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat,
               updated_at = now()""",
        *[cols[k] if k != "streets" else ["\x1f".join(s) for s in cols[k]] for k in cols],
    )
    await _queue(conn, topic, outbox_keys, outbox_values)


async def _queue(
    conn: asyncpg.Connection, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes | None]
) -> None:
    """Append to the outbox in one statement; ids follow the order given (the relay's order)."""
    await conn.execute(
        """INSERT INTO aggregator.outbox (topic, key, value)
           SELECT $1, k, v FROM unnest($2::bytea[], $3::bytea[]) WITH ORDINALITY AS t(k, v, i) ORDER BY i""",
        topic,
        list(keys),
        list(values),
    )


async def insert_dead_letters(
    conn: asyncpg.Connection, topic: str, items: Sequence[tuple[bytes, bytes]]
) -> None:
    if items:
        await _queue(conn, topic, [k for k, _ in items], [v for _, v in items])


async def fetch_outbox(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    return await conn.fetch("SELECT id, topic, key, value FROM aggregator.outbox ORDER BY id LIMIT $1", limit)


async def delete_outbox(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM aggregator.outbox WHERE id = ANY($1::bigint[])", list(ids))


async def record_withheld(
    conn: asyncpg.Connection, period: str, items: Mapping[tuple[str, str], str]
) -> None:
    """Upsert audit rows for held-back cells (rule 8)."""
    if items:
        keys = sorted(items)
        await conn.execute(
            """INSERT INTO aggregator.withheld (period, area_id, category, reason)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::text[])
               ON CONFLICT (period, area_id, category)
               DO UPDATE SET reason = EXCLUDED.reason, recorded_at = now()""",
            period,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [items[k] for k in keys],
        )


async def record_withheld_counts(
    conn: asyncpg.Connection, period: str, held: Iterable[tuple[str, str]]
) -> None:
    """A monthly release's audit: how many cells were held back per category and reason (rule 8).

    Never which units: a list of units held back "below threshold" would say where 1-7 flagged
    residents live, and "budget_exhausted" per unit where someone is flagged often.
    """
    counts = Counter(held)
    if counts:
        keys = sorted(counts)
        await conn.execute(
            """INSERT INTO aggregator.withheld_counts (period, category, reason, cells)
               SELECT $1, * FROM unnest($2::text[], $3::text[], $4::int[])
               ON CONFLICT (period, category, reason)
               DO UPDATE SET cells = EXCLUDED.cells, recorded_at = now()""",
            period,
            [k[0] for k in keys],
            [k[1] for k in keys],
            [counts[k] for k in keys],
        )


async def withheld_summary(conn: asyncpg.Connection, period: str | None) -> list[asyncpg.Record]:
    """Held-back cells counted per period, category and reason, over every kind of period."""
    return await conn.fetch(
        """SELECT period, category, reason, sum(cells)::int AS cells, max(recorded_at) AS recorded_at
           FROM (SELECT period, category, reason, cells, recorded_at FROM aggregator.withheld_counts
                 UNION ALL
                 SELECT period, category, reason, 1, recorded_at FROM aggregator.withheld) AS held
           WHERE $1::text IS NULL OR period = $1
           GROUP BY period, category, reason
           ORDER BY period DESC, category, reason""",
        period,
    )


async def clear_withheld(conn: asyncpg.Connection, period: str) -> None:
    """Drop a period's audit rows before its decisions are recorded afresh."""
    await conn.execute("DELETE FROM aggregator.withheld WHERE period = $1", period)


async def release_exists(conn: asyncpg.Connection, period: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM aggregator.releases WHERE period = $1", period))


async def load_noise(conn: asyncpg.Connection, period: str) -> dict[tuple[str, str, str], int]:
    found = await conn.fetch(
        "SELECT unit_id, category, noisy_count FROM aggregator.noise_draws WHERE period = $1", period
    )
    return {(period, r["unit_id"], r["category"]): r["noisy_count"] for r in found}


async def load_ledger(
    conn: asyncpg.Connection, subjects: Iterable[str], year: int
) -> dict[tuple[str, str], float]:
    found = await conn.fetch(
        """SELECT subject_key, period, epsilon FROM aggregator.epsilon_ledger
           WHERE subject_key = ANY($1) AND period LIKE $2""",
        list(set(subjects)),
        f"{year:04d}-%",
    )
    return {(r["subject_key"], r["period"]): r["epsilon"] for r in found}


async def save_release(
    conn: asyncpg.Connection,
    result: ReleaseResult,
    charges: Mapping[tuple[str, str], float],
    subjects: int,
    now: dt.datetime,
    *,
    ward_totals: bool = True,
) -> None:
    """Persist a release: its noise (before anything is published), ledger, cells, audit and
    (when `ward_totals`, i.e. the policy keeps ward aggregates) its safe ward totals."""
    draws = sorted(result.new_draws.items())
    await conn.executemany(
        "INSERT INTO aggregator.noise_draws (period, unit_id, category, noisy_count) VALUES ($1, $2, $3, $4)"
        " ON CONFLICT DO NOTHING",
        [(p, u, c, n) for (p, u, c), n in draws],
    )
    await conn.executemany(
        "INSERT INTO aggregator.epsilon_ledger (subject_key, period, epsilon) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        [(s, p, e) for (s, p), e in sorted(charges.items())],
    )
    cells: Sequence[Cell] = result.published
    await conn.executemany(
        "INSERT INTO aggregator.release_cells (period, unit_id, category, band, rounded_count)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(result.period, c.unit_id, c.category, c.band, c.rounded_count) for c in cells],
    )
    await record_withheld_counts(conn, result.period, [(w.category, w.reason) for w in result.withheld])
    totals = sorted(result.ward_totals.items())
    await conn.executemany(
        "INSERT INTO aggregator.ward_totals (period, ward_code, category, total, cells)"
        " VALUES ($1, $2, $3, $4, $5) ON CONFLICT DO NOTHING",
        [(result.period, w, c, n, result.ward_cells.get((w, c), 0)) for (w, c), n in totals],
    )
    await conn.execute(
        "INSERT INTO aggregator.releases (period, released_at, published_cells, withheld_cells, subjects,"
        " ward_totals) VALUES ($1, $2, $3, $4, $5, $6)",
        result.period,
        now,
        len(cells),
        len(result.withheld),
        subjects,
        ward_totals,
    )


async def released_months(conn: asyncpg.Connection, months: Sequence[str]) -> dict[str, bool]:
    """Which of `months` are released, each with whether its ward totals were kept."""
    found = await conn.fetch(
        "SELECT period, ward_totals FROM aggregator.releases WHERE period = ANY($1)", list(months)
    )
    return {r["period"]: r["ward_totals"] for r in found}


async def load_ward_totals(
    conn: asyncpg.Connection, months: Sequence[str]
) -> dict[tuple[str, str, str], WardTotal]:
    found = await conn.fetch(
        "SELECT period, ward_code, category, total, cells FROM aggregator.ward_totals WHERE period = ANY($1)",
        list(months),
    )
    return {(r["period"], r["ward_code"], r["category"]): WardTotal(r["total"], r["cells"]) for r in found}


async def quarter_done(conn: asyncpg.Connection, quarter: str) -> bool:
    return bool(await conn.fetchval("SELECT 1 FROM aggregator.quarter_trends WHERE quarter = $1", quarter))


async def latest_quarter(conn: asyncpg.Connection) -> str | None:
    return await conn.fetchval("SELECT max(quarter) FROM aggregator.quarter_trends")


async def save_quarter(
    conn: asyncpg.Connection, quarter: str, now: dt.datetime, published: int, withheld: int
) -> None:
    await conn.execute(
        "INSERT INTO aggregator.quarter_trends (quarter, computed_at, published, withheld)"
        " VALUES ($1, $2, $3, $4)",
        quarter,
        now,
        published,
        withheld,
    )


async def list_releases(conn: asyncpg.Connection) -> list[asyncpg.Record]:
    return await conn.fetch(
        "SELECT period, released_at, published_cells, withheld_cells, subjects FROM aggregator.releases"
        " ORDER BY period DESC"
    )


async def list_withheld(
    conn: asyncpg.Connection, period: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    return await conn.fetch(
        """SELECT period, area_id, category, reason, recorded_at FROM aggregator.withheld
           WHERE $1::text IS NULL OR period = $1
           ORDER BY period DESC, area_id, category LIMIT $2 OFFSET $3""",
        period,
        limit,
        offset,
    )


async def needs(
    conn: asyncpg.Connection,
    *,
    street: str | None = None,
    ward: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    category: str | None = None,
    area_id: str | None = None,
    limit: int = 1000,
) -> list[asyncpg.Record]:
    """Live published needs, filtered; each row's `payload` is the public StreetNeedChanged."""
    where, args = ["live"], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if street is not None:
        where.append(f"street_ids @> ARRAY[{arg(street)}::text]")
    if ward is not None:
        where.append(f"ward_code = {arg(ward)}")
    if area_id is not None:
        where.append(f"area_id = {arg(area_id)}")
    if category is not None:
        where.append(f"category = {arg(category)}")
    if bbox is not None:
        x0, y0, x1, y1 = (arg(v) for v in bbox)
        where.append(f"max_lon >= {x0} AND min_lon <= {x1} AND max_lat >= {y0} AND min_lat <= {y1}")
    sql = (
        f"SELECT area_id, category, payload FROM aggregator.published WHERE {' AND '.join(where)}"
        f" ORDER BY area_id, category LIMIT {arg(limit)}"
    )
    return await conn.fetch(sql, *args)
