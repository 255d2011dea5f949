"""PostgreSQL storage of the gazetteer (schema `gazetteer`): idempotent save, load, search."""

from __future__ import annotations

import json
from pathlib import Path

import asyncpg
import shapely

from shared.db import apply_migrations

from .build import ImportReport
from .model import Gazetteer, Street, Unit, Ward
from .names import name_key, plain_name
from .osm import segment_order

__all__ = ["MIGRATIONS", "SCHEMA", "load", "migrate", "save", "search"]

SCHEMA = "gazetteer"
MIGRATIONS = Path(__file__).parent / "migrations"
# Child tables first. DELETE, not TRUNCATE: readers keep seeing the old gazetteer until commit.
_TABLES = ("postcodes", "unit_streets", "units", "segments", "streets", "wards", "boundary")


async def migrate(conn: asyncpg.Connection) -> list[str]:
    return await apply_migrations(conn, SCHEMA, MIGRATIONS)


async def save(conn: asyncpg.Connection, gazetteer: Gazetteer, report: ImportReport | None = None) -> None:
    """Replace the stored gazetteer with `gazetteer` in one transaction (same input, same rows)."""
    streets = sorted(gazetteer.streets.values(), key=lambda s: s.id)
    async with conn.transaction():
        for table in _TABLES:
            await conn.execute(f"DELETE FROM {SCHEMA}.{table}")
        await conn.copy_records_to_table(
            "streets",
            schema_name=SCHEMA,
            columns=[
                "id",
                "name",
                "norm_name",
                "search_name",
                "ward_code",
                "ward_name",
                "lsoa_code",
                "address_count",
                "geometry",
            ],
            records=[
                (
                    s.id,
                    s.name,
                    s.norm_name,
                    plain_name(s.name),
                    s.ward_code,
                    s.ward_name,
                    s.lsoa_code,
                    s.address_count,
                    shapely.to_wkb(s.geometry),
                )
                for s in streets
            ],
        )
        await conn.copy_records_to_table(
            "segments",
            schema_name=SCHEMA,
            columns=["id", "street_id"],
            records=[(seg, s.id) for s in streets for seg in s.segment_ids],
        )
        await conn.copy_records_to_table(
            "wards",
            schema_name=SCHEMA,
            columns=["code", "name", "geometry"],
            records=[(w.code, w.name, shapely.to_wkb(w.geometry)) for w in gazetteer.wards],
        )
        if gazetteer.boundary is not None:
            await conn.execute(
                f"INSERT INTO {SCHEMA}.boundary (geometry) VALUES ($1)", shapely.to_wkb(gazetteer.boundary)
            )
        await conn.copy_records_to_table(
            "units",
            schema_name=SCHEMA,
            columns=[
                "id",
                "min_addresses",
                "name",
                "ward_code",
                "is_ward",
                "publishable",
                "address_count",
                "street_ids",
            ],
            records=[
                (
                    u.id,
                    u.min_addresses,
                    u.name,
                    u.ward_code,
                    u.is_ward,
                    u.publishable,
                    u.address_count,
                    list(u.street_ids),
                )
                for u in gazetteer.units
            ],
        )
        await conn.copy_records_to_table(
            "unit_streets",
            schema_name=SCHEMA,
            columns=["street_id", "min_addresses", "unit_id"],
            records=[(s, u.min_addresses, u.id) for u in gazetteer.units for s in u.street_ids],
        )
        await conn.copy_records_to_table(
            "postcodes",
            schema_name=SCHEMA,
            columns=["postcode", "street_id", "rank"],
            records=[
                (code, sid, rank)
                for code, ids in sorted(gazetteer.postcodes.items())
                for rank, sid in enumerate(ids)
            ],
        )
        if report is not None:
            await conn.execute(
                f"INSERT INTO {SCHEMA}.imports (source, sha256, counts) VALUES ($1, $2, $3::jsonb)",
                report.source,
                report.sha256,
                json.dumps(report.as_counts()),
            )


async def load(conn: asyncpg.Connection) -> Gazetteer:
    """The stored gazetteer; one with no streets if nothing was imported yet.

    Raises asyncpg.UndefinedTableError/InvalidSchemaNameError if the migrations were never applied.
    """
    segments: dict[str, list[str]] = {}
    for r in await conn.fetch(f"SELECT id, street_id FROM {SCHEMA}.segments"):
        segments.setdefault(r["street_id"], []).append(r["id"])
    streets = {
        r["id"]: Street(
            id=r["id"],
            name=r["name"],
            norm_name=r["norm_name"],
            geometry=shapely.from_wkb(r["geometry"]),
            segment_ids=tuple(sorted(segments.get(r["id"], ()), key=segment_order)),
            address_count=r["address_count"],
            ward_code=r["ward_code"],
            ward_name=r["ward_name"],
            lsoa_code=r["lsoa_code"],
        )
        for r in await conn.fetch(f"SELECT * FROM {SCHEMA}.streets ORDER BY id")
    }
    units = [
        Unit(
            id=r["id"],
            min_addresses=r["min_addresses"],
            street_ids=tuple(r["street_ids"]),
            ward_code=r["ward_code"],
            is_ward=r["is_ward"],
            publishable=r["publishable"],
            address_count=r["address_count"],
            name=r["name"],
        )
        for r in await conn.fetch(f"SELECT * FROM {SCHEMA}.units ORDER BY id")
    ]
    wards = [
        Ward(r["code"], r["name"], shapely.from_wkb(r["geometry"]))
        for r in await conn.fetch(f"SELECT * FROM {SCHEMA}.wards ORDER BY code")
    ]
    boundary = await conn.fetchval(f"SELECT geometry FROM {SCHEMA}.boundary")
    postcodes: dict[str, list[str]] = {}
    for r in await conn.fetch(f"SELECT postcode, street_id FROM {SCHEMA}.postcodes ORDER BY postcode, rank"):
        postcodes.setdefault(r["postcode"], []).append(r["street_id"])
    return Gazetteer(
        streets=streets,
        units=units,
        wards=wards,
        boundary=shapely.from_wkb(boundary) if boundary is not None else None,
        postcodes={k: tuple(v) for k, v in postcodes.items()},
    )


async def search(conn: asyncpg.Connection, prefix: str, limit: int = 10) -> list[asyncpg.Record]:
    """Streets whose name, or a word of it, starts with `prefix`; same rules as Gazetteer.search.

    Names are normalised to letters, digits and spaces, so LIKE needs no escaping.
    """
    plain, key = plain_name(prefix), name_key(prefix)
    if not plain:
        return []
    rows: list[asyncpg.Record] = await conn.fetch(
        f"""
        SELECT id, name, ward_code, ward_name, lsoa_code, address_count
        FROM {SCHEMA}.streets
        WHERE search_name LIKE $1 || '%' OR norm_name LIKE $2 || '%'
           OR search_name LIKE '% ' || $1 || '%' OR norm_name LIKE '% ' || $2 || '%'
        ORDER BY (search_name LIKE $1 || '%' OR norm_name LIKE $2 || '%') DESC, norm_name, id
        LIMIT $3
        """,
        plain,
        key,
        limit,
    )
    return rows
