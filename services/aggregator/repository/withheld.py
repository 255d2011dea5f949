"""Held-back cells (aggregator.withheld): the audit of what rule 8 kept back, as counts by reason."""

from __future__ import annotations

from collections import Counter
from collections.abc import Iterable, Mapping

import asyncpg


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
    found: list[asyncpg.Record] = await conn.fetch(
        """SELECT period, category, reason, sum(cells)::int AS cells, max(recorded_at) AS recorded_at
           FROM (SELECT period, category, reason, cells, recorded_at FROM aggregator.withheld_counts
                 UNION ALL
                 SELECT period, category, reason, 1, recorded_at FROM aggregator.withheld) AS held
           WHERE $1::text IS NULL OR period = $1
           GROUP BY period, category, reason
           ORDER BY period DESC, category, reason""",
        period,
    )
    return found


async def forget_withheld(conn: asyncpg.Connection, period: str, keys: Iterable[tuple[str, str]]) -> None:
    """Drop the audit rows of these (area, category) cells: they are no longer held back."""
    ordered = sorted(set(keys))
    if ordered:
        await conn.execute(
            """DELETE FROM aggregator.withheld w USING unnest($2::text[], $3::text[]) AS k(area_id, category)
               WHERE w.period = $1 AND w.area_id = k.area_id AND w.category = k.category""",
            period,
            [k[0] for k in ordered],
            [k[1] for k in ordered],
        )


async def clear_withheld(conn: asyncpg.Connection, period: str) -> None:
    """Drop a period's audit rows before its decisions are recorded afresh."""
    await conn.execute("DELETE FROM aggregator.withheld WHERE period = $1", period)


async def list_withheld(
    conn: asyncpg.Connection, period: str | None, limit: int, offset: int
) -> list[asyncpg.Record]:
    found: list[asyncpg.Record] = await conn.fetch(
        """SELECT period, area_id, category, reason, recorded_at FROM aggregator.withheld
           WHERE $1::text IS NULL OR period = $1
           ORDER BY period DESC, area_id, category LIMIT $2 OFFSET $3""",
        period,
        limit,
        offset,
    )
    return found
