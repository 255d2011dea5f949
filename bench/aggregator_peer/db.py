"""Bench databases: created fresh with the Camden gazetteer (or k copies of it), dropped afterwards."""

from __future__ import annotations

import dataclasses

import asyncpg
import numpy as np
import shapely

from shared.contracts import SIGNALS_ANONYMISED
from shared.db import create_database
from shared.gazetteer import Gazetteer, Ward
from shared.gazetteer import repository as gazetteer_repository
from shared.gazetteer.camden import build_camden

__all__ = [
    "AGGREGATOR_TABLES",
    "camden_gazetteer",
    "cloned",
    "database_with",
    "reset_aggregator",
    "stored_offsets",
    "table_bytes",
]

AGGREGATOR_TABLES = ("signals", "withdrawals", "consumer_offsets", "published", "outbox", "withheld")


def camden_gazetteer() -> Gazetteer:
    """What `make setup` imports, built with the gazetteer's own API."""
    return build_camden()[0]


def cloned(gazetteer: Gazetteer, copies: int) -> Gazetteer:
    """`copies` side-by-side copies of a borough (ids suffixed `~k`, geometry shifted east by k x
    0.3 degrees): a gazetteer the size of several councils, with one borough's real structure."""
    streets, units, wards = {}, [], []
    for k in range(copies):
        sfx = "" if k == 0 else f"~{k}"

        def move(geom, k=k):
            return shapely.transform(geom, lambda xy, k=k: xy + np.array([0.3 * k, 0.0]))

        for s in gazetteer.streets.values():
            streets[s.id + sfx] = dataclasses.replace(
                s,
                id=s.id + sfx,
                geometry=move(s.geometry),
                segment_ids=tuple(seg + sfx for seg in s.segment_ids),
                ward_code=s.ward_code and s.ward_code + sfx,
            )
        units += [
            dataclasses.replace(
                u,
                id=u.id + sfx,
                street_ids=tuple(i + sfx for i in u.street_ids),
                ward_code=u.ward_code and u.ward_code + sfx,
            )
            for u in gazetteer.units
        ]
        wards += [Ward(w.code + sfx, w.name, move(w.geometry)) for w in gazetteer.wards]
    return Gazetteer(streets=streets, units=units, wards=wards, boundary=None)


async def database_with(admin_url: str, gazetteer: Gazetteer) -> str:
    """A new database holding `gazetteer`; returns its URL (drop it with shared.db.drop_database)."""
    url = await create_database(admin_url, prefix="bench")
    conn = await asyncpg.connect(url)
    try:
        await gazetteer_repository.migrate(conn)
        await gazetteer_repository.save(conn, gazetteer)
    finally:
        await conn.close()
    return url


async def reset_aggregator(url: str) -> None:
    """Forget the aggregator's state and stored positions (the service re-creates its schema)."""
    conn = await asyncpg.connect(url)
    try:
        await conn.execute("DROP SCHEMA IF EXISTS aggregator CASCADE")
    finally:
        await conn.close()


async def stored_offsets(conn: asyncpg.Connection) -> dict[int, int]:
    """The aggregator's own positions (committed with its state), {} before its first batch."""
    try:
        rows = await conn.fetch(
            "SELECT partition, next_offset FROM aggregator.consumer_offsets WHERE topic = $1",
            SIGNALS_ANONYMISED.name,
        )
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return {}
    return {r["partition"]: r["next_offset"] for r in rows}


async def table_bytes(conn: asyncpg.Connection) -> dict[str, int]:
    """pg_total_relation_size (table + indexes + TOAST) of the aggregator's state tables."""
    return {
        t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", f"aggregator.{t}")
        for t in AGGREGATOR_TABLES
    }
