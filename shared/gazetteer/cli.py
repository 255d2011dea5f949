"""`streetneeds gazetteer ...`: import an OpenStreetMap extract into PostgreSQL, search streets."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

import asyncpg
import typer
from tqdm import tqdm

from . import repository
from .build import ImportReport, build_gazetteer
from .model import Gazetteer
from .search import Found, StreetFinder

app = typer.Typer(
    help="Street gazetteer: streets, addresses per street, wards and publication units from OpenStreetMap.",
    no_args_is_help=True,
)

_DB = typer.Option(..., envvar="DATABASE_URL", help="PostgreSQL URL.", show_default=False)
_FILE: dict[str, Any] = {"exists": True, "dir_okay": False, "readable": True}


@app.command("import")
def import_(
    file: Path = typer.Argument(..., help="OSM extract (.osm.pbf, .osm) or GeoJSON of streets.", **_FILE),
    wards: Path | None = typer.Option(None, help="Wards GeoJSON (ward code/name properties).", **_FILE),
    lsoas: Path | None = typer.Option(None, help="LSOA GeoJSON (lsoa code/name properties).", **_FILE),
    boundary: Path | None = typer.Option(
        None,
        help="Council boundary GeoJSON: keeps only the streets inside it; points outside it are rejected.",
        **_FILE,
    ),
    database_url: str = _DB,
) -> None:
    """Import (or re-import: same file, same ids) the gazetteer; applies its migrations first."""
    started = time.perf_counter()
    with tqdm(desc=f"reading {file.name}", unit=" objects", unit_scale=True) as bar:
        gazetteer, report = build_gazetteer(
            file, wards=wards, lsoas=lsoas, boundary=boundary, progress=bar.update
        )
    typer.echo("saving...")
    asyncio.run(_save(database_url, gazetteer, report))
    typer.echo(_summary(gazetteer, report, time.perf_counter() - started))


async def _save(dsn: str, gazetteer: Gazetteer, report: ImportReport) -> None:
    conn = await asyncpg.connect(dsn)
    try:
        await repository.migrate(conn)
        await repository.save(conn, gazetteer, report)
    finally:
        await conn.close()


def _summary(gazetteer: Gazetteer, report: ImportReport, seconds: float) -> str:
    a = report.addresses
    lines = [
        f"imported {report.source} (sha256 {report.sha256[:12]}) in {seconds:.1f} s",
        f"  streets:   {report.streets} ({report.segments} OSM segments)",
        f"  addresses: {a.get('counted', 0)} counted of {a.get('read', 0)} read "
        f"({a.get('by_name', 0)} by addr:street, {a.get('by_proximity', 0)} by proximity, "
        f"{a.get('duplicates', 0)} duplicates, {a.get('unmatched', 0)} unmatched)",
        f"  postcodes: {report.postcodes.get('postcodes', 0)} on {report.postcodes.get('pairs', 0)} "
        f"postcode-street pairs, from {report.postcodes.get('read', 0)} tagged objects "
        f"({report.postcodes.get('unmatched', 0)} on no street)",
        f"  wards:     {len(gazetteer.wards)}; streets without a ward: "
        f"{sum(s.ward_code is None for s in gazetteer.streets.values())}",
    ]
    for threshold in report.units:
        units = gazetteer.units_for(threshold)
        held = sum(not u.publishable for u in units)
        lines.append(
            f"  units >= {threshold} addresses: {len(units)} "
            f"({sum(u.is_ward for u in units)} whole wards, {held} not publishable)"
        )
    return "\n".join(lines)


@app.command()
def search(
    query: str = typer.Argument(..., help="A street name (typos are fine), a postcode or part of one."),
    limit: int = typer.Option(10, min=1, max=100),
    database_url: str = _DB,
) -> None:
    """Find streets as residents do: by name, forgiving typos and abbreviations, or by postcode."""
    found = asyncio.run(_search(database_url, query, limit))
    if found.kind == "postcodes":
        typer.echo("postcodes: " + ", ".join(found.postcodes))
    elif found.kind == "unknown_postcode":
        typer.echo(f"no street has the postcode {found.postcode}")
    elif not found.streets:
        typer.echo("no streets found")
    for s in found.streets:
        typer.echo(f"{s.id}  {s.name}  ({s.ward_name or 'no ward'}, {s.address_count} addresses)")


async def _search(dsn: str, query: str, limit: int) -> Found:
    conn = await asyncpg.connect(dsn)
    try:
        await repository.migrate(conn)
        gazetteer = await repository.load(conn)
    finally:
        await conn.close()
    return StreetFinder(gazetteer).find(query, limit=limit)
