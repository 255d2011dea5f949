"""The place counts PostgreSQL computes per batch are exactly those of the pure fold's definition."""

from __future__ import annotations

import datetime as dt
import random

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.main import MIGRATIONS
from services.aggregator.processing import PLACE_CATEGORIES
from services.aggregator.state import place_stats
from shared.contracts import CATALOGUE
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]

NOW = dt.datetime(2026, 3, 29, 1, 30, tzinfo=dt.UTC)  # a daylight-saving change in London
TREND_DAYS = 30


def edge_times(rnd: random.Random, lifetime_days: int) -> dt.datetime:
    """Times on and around every boundary the counts use: expiry, now, both trend windows."""
    window = dt.timedelta(days=TREND_DAYS)
    edges = [NOW, NOW - dt.timedelta(days=lifetime_days), NOW - window, NOW - 2 * window]
    at = rnd.choice(edges) + rnd.choice(
        [dt.timedelta(0), dt.timedelta(microseconds=1), -dt.timedelta(microseconds=1), dt.timedelta(hours=1)]
    )
    return at if rnd.random() < 0.6 else NOW - dt.timedelta(hours=rnd.randrange(-48, 24 * 100))


async def test_sql_place_stats_equal_the_pure_definition(stack, fresh_database_url, random_id):
    rnd = random.Random(random_id)
    conn = await asyncpg.connect(fresh_database_url, server_settings={"TimeZone": "Europe/London"})
    try:
        await apply_migrations(conn, "aggregator", MIGRATIONS)
        categories = [str(c) for c in CATALOGUE]
        streets = [f"s{i}" for i in range(12)]
        subjects = [f"{i:064x}" for i in range(40)]
        raised: dict[tuple[str, str, str], dt.datetime] = {}
        withdrawn: dict[tuple[str, str], dt.datetime] = {}
        for _ in range(3000):
            category = rnd.choice(categories)
            lifetime = CATALOGUE[category].lifetime_days
            raised[(rnd.choice(streets), category, rnd.choice(subjects))] = edge_times(rnd, lifetime)
        for street, category, subject in rnd.sample(sorted(raised), 800):
            at = raised[(street, category, subject)]
            withdrawn[(subject, category)] = rnd.choice(
                [at, at - dt.timedelta(microseconds=1), edge_times(rnd, TREND_DAYS)]
            )
        await conn.executemany(
            "INSERT INTO aggregator.signals VALUES ($1, $2, $3, $4)", [(*k, v) for k, v in raised.items()]
        )
        await conn.executemany(
            "INSERT INTO aggregator.withdrawals VALUES ($1, $2, $3)", [(*k, v) for k, v in withdrawn.items()]
        )
        rows = await repo.rows(conn)

        assert await repo.place_stats(conn, NOW, TREND_DAYS, PLACE_CATEGORIES) == place_stats(
            rows, NOW, TREND_DAYS
        )
        some_streets, some_categories = set(streets[:5]), set(PLACE_CATEGORIES[:4])
        subset = [r for r in rows if r.street_id in some_streets and r.category in some_categories]
        assert await repo.place_stats(conn, NOW, TREND_DAYS, some_categories, some_streets) == place_stats(
            subset, NOW, TREND_DAYS
        )
    finally:
        await conn.close()
