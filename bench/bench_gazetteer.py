"""Gazetteer: import time of the Camden extract, snapping throughput (vectorised vs one by one), and
residents' street search latency over 100,000 streets."""

from __future__ import annotations

import asyncio
import statistics
import time

import asyncpg
import numpy as np

from shared.db import create_database, drop_database
from shared.gazetteer import repository
from shared.gazetteer.camden import build_camden
from shared.gazetteer.model import Gazetteer, Street
from shared.gazetteer.search import StreetFinder

POINTS = 1_000_000
SNAP_CALLS = 3  # snap_many's rate is the median of these calls (the first one's is in the notes)
ONE_BY_ONE = 5_000
SEARCH_STREETS = 100_000
SEARCHES = 1_000


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
    # A service snaps all day: the median of a few calls, not the first alone, whose arrays' pages
    # are new to the process (the first call's rate is reported beside it).
    rates = []
    for _ in range(SNAP_CALLS):
        started = time.perf_counter()
        ids, _ = snapper.snap_many(lons, lats)
        rates.append(POINTS / (time.perf_counter() - started))
    many = statistics.median(rates)
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
        *search_rows(gaz),
        {
            "benchmark": "snap_many (vectorised)",
            "value": many,
            "unit": "points/s",
            "notes": f"{POINTS:,} uniform points in Camden's bbox in one call, the median of "
            f"{SNAP_CALLS} calls (the first {rates[0]:,.0f} points/s); {hit:.0%} within "
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


def _typo(name: str, rng: np.random.Generator) -> str:
    """What residents type: lower case, one letter dropped, "road"/"street" abbreviated."""
    text = name.lower().replace(" road", " rd").replace(" street", " st")
    i = int(rng.integers(1, max(2, len(text) - 1)))
    return text[:i] + text[i + 1 :]


def search_rows(gaz: Gazetteer) -> list[dict]:
    """Search p50/p99 over SEARCH_STREETS streets: Camden's names with other places' words added,
    so there are many near-duplicates (the hard case for fuzzy matching)."""
    rng = np.random.default_rng(2)
    names = sorted({s.name for s in gaz.streets.values()})
    words = sorted({w for n in names for w in n.split() if w.isalpha() and len(w) > 3})
    geometry = next(iter(gaz.streets.values())).geometry
    streets: dict[str, Street] = {}
    for i in range(SEARCH_STREETS):
        base = names[i % len(names)]
        name = base if i < len(names) else f"{words[int(rng.integers(len(words)))]} {base}"
        streets[f"b{i}"] = Street(
            f"b{i}", name, name.lower(), geometry, (f"way/{i}",), int(rng.integers(0, 80))
        )
    finder = StreetFinder(Gazetteer(streets=streets))
    started = time.perf_counter()
    finder.streets("warm up")  # builds the index once, as a service does at start-up
    index_s = time.perf_counter() - started
    queries = [_typo(names[int(rng.integers(len(names)))], rng) for _ in range(SEARCHES)]
    took = []
    for q in queries:
        started = time.perf_counter()
        finder.find(q)
        took.append(time.perf_counter() - started)
    p50, p99 = (float(np.percentile(took, q)) * 1000 for q in (50, 99))
    note = (
        f"{SEARCH_STREETS:,} streets, {SEARCHES:,} misspelt queries (rapidfuzz WRatio); "
        f"index built in {index_s:.1f} s"
    )
    return [
        {"benchmark": "street search p50 (100k streets)", "value": p50, "unit": "ms", "notes": note},
        {"benchmark": "street search p99 (100k streets)", "value": p99, "unit": "ms", "notes": note},
    ]
