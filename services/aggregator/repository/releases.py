"""Monthly releases and quarterly trends (aggregator.releases, ledger, noise, ward totals)."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence

import asyncpg

from ..disclosure import Cell, ReleaseResult, WardTotal
from .withheld import record_withheld_counts


async def lock_releases(conn: asyncpg.Connection) -> None:
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('aggregator.releases', 0))")


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
    found: str | None = await conn.fetchval("SELECT max(quarter) FROM aggregator.quarter_trends")
    return found


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
    found: list[asyncpg.Record] = await conn.fetch(
        "SELECT period, released_at, published_cells, withheld_cells, subjects FROM aggregator.releases"
        " ORDER BY period DESC"
    )
    return found
