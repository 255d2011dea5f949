"""Gazetteer: import time of the Camden extract, and snapping throughput (vectorised vs one by one)."""

from __future__ import annotations

import asyncio
import time

import asyncpg
import numpy as np

from shared.db import create_database, drop_database
from shared.gazetteer import repository
from shared.gazetteer.camden import build_camden
from shared.gazetteer.model import Gazetteer

POINTS = 1_000_000
ONE_BY_ONE = 5_000


def camden() -> tuple[Gazetteer, float]:
    started = time.perf_counter()
    gaz, _ = build_camden()
    return gaz, time.perf_counter() - started


async def save(url: str, gaz: Gazetteer) -> float:
    conn = await asyncpg.connect(url)
    try:
        started = time.perf_counter()
        await repository.migrate(conn)
        await repository.save(conn, gaz)
        return time.perf_counter() - started
    finally:
        await conn.close()


async def _save_timed(admin_url: str, gaz: Gazetteer) -> float:
    url = await create_database(admin_url, prefix="bench")
    try:
        return await save(url, gaz)
    finally:
        await drop_database(admin_url, url)


def run(env: dict[str, str]) -> list[dict]:
    gaz, build_s = camden()
    rows = [
        {
            "benchmark": "gazetteer build (Camden .osm.pbf)",
            "value": build_s,
            "unit": "s",
            "notes": f"{len(gaz.streets)} streets, {gaz.address_count} addresses, {len(gaz.units)} units",
        }
    ]
    if "DATABASE_URL" in env:
        rows.append(
            {
                "benchmark": "gazetteer save to PostgreSQL",
                "value": asyncio.run(_save_timed(env["DATABASE_URL"], gaz)),
                "unit": "s",
                "notes": "migrate + COPY into a fresh database",
            }
        )
    started = time.perf_counter()
    snapper = gaz.snapper
    setup_s = time.perf_counter() - started
    rng = np.random.default_rng(1)
    xmin, ymin, xmax, ymax = gaz.boundary.bounds
    lons, lats = rng.uniform(xmin, xmax, POINTS), rng.uniform(ymin, ymax, POINTS)
    started = time.perf_counter()
    ids, _ = snapper.snap_many(lons, lats)
    many = POINTS / (time.perf_counter() - started)
    started = time.perf_counter()
    for lon, lat in zip(lons[:ONE_BY_ONE].tolist(), lats[:ONE_BY_ONE].tolist(), strict=True):
        try:
            snapper.snap_one(lon, lat)
        except ValueError:
            pass
    one = ONE_BY_ONE / (time.perf_counter() - started)
    hit = sum(i is not None for i in ids) / POINTS
    return [
        *rows,
        {
            "benchmark": "snap_many (vectorised)",
            "value": many,
            "unit": "points/s",
            "notes": f"{POINTS:,} uniform points in Camden's bbox, one call; {hit:.0%} within "
            f"{snapper.max_distance_m:.0f} m of a street; the snapper's grid of candidate segments took "
            f"{setup_s:.1f} s to build (once, at start-up)",
        },
        {
            "benchmark": "snap_one (one by one)",
            "value": one,
            "unit": "points/s",
            "notes": f"{ONE_BY_ONE:,} of the same points; snap_many is {many / one:.0f}x faster",
        },
    ]
