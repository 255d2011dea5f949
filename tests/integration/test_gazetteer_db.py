"""The gazetteer in PostgreSQL: import Camden into a fresh database, re-import, load."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

import asyncpg
import pytest
import shapely

from shared.gazetteer import build_gazetteer
from shared.gazetteer import repository as repo

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAMDEN = Path(__file__).resolve().parents[2] / "data" / "camden"
TABLES = ("streets", "segments", "wards", "boundary", "units", "unit_streets")


@pytest.fixture
async def conn():
    dsn = os.environ.get("DATABASE_URL")
    if not dsn:
        pytest.skip("DATABASE_URL is not set (make test sets it; or point it at a PostgreSQL)")
    name = f"gz_{secrets.token_hex(6)}"
    admin = await asyncpg.connect(dsn)
    await admin.execute(f'CREATE DATABASE "{name}"')
    db = await asyncpg.connect(dsn, database=name)
    try:
        yield db
    finally:
        await db.close()
        await admin.execute(f'DROP DATABASE "{name}"')
        await admin.close()


async def snapshot(conn) -> dict:
    out = {t: await conn.fetchval(f"SELECT count(*) FROM gazetteer.{t}") for t in TABLES}
    out["street_ids"] = [r[0] for r in await conn.fetch("SELECT id FROM gazetteer.streets ORDER BY id")]
    out["unit_ids"] = [r[0] for r in await conn.fetch("SELECT id FROM gazetteer.units ORDER BY id")]
    out["segments_of"] = await conn.fetch("SELECT id, street_id FROM gazetteer.segments ORDER BY id")
    return out


async def test_import_reimport_and_load(conn):
    gazetteer, report = build_gazetteer(
        CAMDEN / "camden.osm.pbf",
        wards=CAMDEN / "wards-2022.geojson",
        lsoas=CAMDEN / "lsoa-2021.geojson",
        boundary=CAMDEN / "boundary.geojson",
    )
    assert await repo.migrate(conn) == ["001_init.sql", "002_postcodes.sql"]
    await repo.save(conn, gazetteer, report)
    first = await snapshot(conn)
    assert first["streets"] == len(gazetteer.streets) and first["wards"] == 20
    assert first["boundary"] == 1 and first["units"] == len(gazetteer.units)
    assert first["unit_streets"] == 2 * len(gazetteer.streets)  # one unit per street at 8 and 40

    again, report_again = build_gazetteer(
        CAMDEN / "camden.osm.pbf",
        wards=CAMDEN / "wards-2022.geojson",
        lsoas=CAMDEN / "lsoa-2021.geojson",
        boundary=CAMDEN / "boundary.geojson",
    )
    assert await repo.migrate(conn) == []
    await repo.save(conn, again, report_again)
    assert await snapshot(conn) == first
    imports = await conn.fetch("SELECT sha256, counts FROM gazetteer.imports ORDER BY id")
    assert len(imports) == 2 and imports[0]["sha256"] == imports[1]["sha256"] == report.sha256

    loaded = await repo.load(conn)
    assert list(loaded.streets) == sorted(gazetteer.streets)
    for sid, street in gazetteer.streets.items():
        got = loaded.streets[sid]
        assert (
            got.name,
            got.norm_name,
            got.address_count,
            got.ward_code,
            got.ward_name,
            got.lsoa_code,
            got.segment_ids,
        ) == (
            street.name,
            street.norm_name,
            street.address_count,
            street.ward_code,
            street.ward_name,
            street.lsoa_code,
            street.segment_ids,
        )
        assert shapely.equals_exact(got.geometry, street.geometry, tolerance=0)
    assert sorted(loaded.units, key=lambda u: u.id) == sorted(gazetteer.units, key=lambda u: u.id)
    assert [w.code for w in loaded.wards] == [w.code for w in gazetteer.wards]
    assert loaded.postcodes == gazetteer.postcodes and len(loaded.postcodes) > 1000
    assert loaded.boundary is not None and loaded.boundary.equals(gazetteer.boundary)

    [agar] = [s for s in loaded.streets.values() if s.name == "Agar Grove"]
    point = agar.geometry.interpolate(0.5, normalized=True)
    assert loaded.snapper.snap_one(point.x, point.y)[0] == agar.id
    assert loaded.contains(point.x, point.y)
    rows = await repo.search(conn, "agar gr", 5)
    assert [r["id"] for r in rows] == [s.id for s in loaded.search("agar gr", 5)] == [agar.id]
    assert [r["name"] for r in await repo.search(conn, "kings cross rd")] == [
        s.name for s in loaded.search("kings cross rd")
    ]


async def test_load_before_any_import(conn):
    with pytest.raises((asyncpg.UndefinedTableError, asyncpg.InvalidSchemaNameError)):
        await repo.load(conn)  # services treat this as "no gazetteer yet"
    await repo.migrate(conn)
    empty = await repo.load(conn)
    assert empty.streets == {} and empty.units == [] and empty.boundary is None
