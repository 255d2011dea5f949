"""Bench databases: created fresh with the Camden gazetteer (or k copies of it), dropped afterwards."""

from __future__ import annotations

import dataclasses
import uuid
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import numpy as np
import shapely

from shared.contracts import SIGNALS_ANONYMISED
from shared.gazetteer import Gazetteer, Ward, build_gazetteer
from shared.gazetteer import repository as gazetteer_repository

__all__ = ["AGGREGATOR_TABLES", "camden_gazetteer", "cloned", "create_database", "drop_database",
           "reset_aggregator", "stored_offsets", "table_bytes"]

CAMDEN = Path(__file__).resolve().parents[2] / "data" / "camden"
AGGREGATOR_TABLES = ("signals", "withdrawals", "consumer_offsets", "published", "outbox", "withheld")


def camden_gazetteer() -> Gazetteer:
    """What `make setup` imports, built with the gazetteer's own API."""
    gazetteer, _ = build_gazetteer(CAMDEN / "camden.osm.pbf", wards=CAMDEN / "wards-2022.geojson",
                                   lsoas=CAMDEN / "lsoa-2021.geojson",
                                   boundary=CAMDEN / "boundary.geojson")
    return gazetteer


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
                s, id=s.id + sfx, geometry=move(s.geometry),
                segment_ids=tuple(seg + sfx for seg in s.segment_ids),
                ward_code=s.ward_code and s.ward_code + sfx)
        units += [dataclasses.replace(u, id=u.id + sfx, street_ids=tuple(i + sfx for i in u.street_ids),
                                      ward_code=u.ward_code and u.ward_code + sfx)
                  for u in gazetteer.units]
        wards += [Ward(w.code + sfx, w.name, move(w.geometry)) for w in gazetteer.wards]
    return Gazetteer(streets=streets, units=units, wards=wards, boundary=None)


def _database_url(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(admin_url: str, gazetteer: Gazetteer) -> tuple[str, str]:
    """A new database holding `gazetteer`; returns (name, url)."""
    name = f"bench_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    url = _database_url(admin_url, name)
    conn = await asyncpg.connect(url)
    try:
        await gazetteer_repository.migrate(conn)
        await gazetteer_repository.save(conn, gazetteer)
    finally:
        await conn.close()
    return name, url


async def drop_database(admin_url: str, name: str) -> None:
    admin = await asyncpg.connect(admin_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


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
        rows = await conn.fetch("SELECT partition, next_offset FROM aggregator.consumer_offsets"
                                " WHERE topic = $1", SIGNALS_ANONYMISED.name)
    except (asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError):
        return {}
    return {r["partition"]: r["next_offset"] for r in rows}


async def table_bytes(conn: asyncpg.Connection) -> dict[str, int]:
    """pg_total_relation_size (table + indexes + TOAST) of the aggregator's state tables."""
    return {t: await conn.fetchval("SELECT pg_total_relation_size($1::regclass)", f"aggregator.{t}")
            for t in AGGREGATOR_TABLES}
