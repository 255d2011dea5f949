"""`streetneeds notifier ...`: operators' view of e-mail alerts (counts only) and the digest schedule."""

from __future__ import annotations

import asyncio
import datetime as dt

import typer

from shared.db import create_pool, with_schema

from . import repository as repo
from .digests import build_due_digests
from .main import MIGRATIONS, NAME
from .settings import NotifierSettings

__all__ = ["app"]

app = typer.Typer(help="The notifier: e-mail alerts (counts, digest schedule).", no_args_is_help=True)


@app.command("stats")
def stats() -> None:
    """Alerts by status and frequency, mails waiting/sent/failed, suppressed addresses (no address shown)."""
    settings = NotifierSettings()
    counts = asyncio.run(with_schema(settings.database_dsn(), NAME, MIGRATIONS, repo.stats))
    for name, value in sorted(counts.items()):
        typer.echo(f"{name}: {value}")


@app.command("queue-digests")
def queue_digests(
    at: dt.datetime | None = typer.Option(None, help="Act as if it were this time (ISO 8601, with offset)."),
) -> None:
    """Queue the digests of the latest ended daily and weekly periods now (the service does this itself;
    a period already queued is never queued again)."""
    settings = NotifierSettings()
    now = at or dt.datetime.now(dt.UTC)
    if now.tzinfo is None:
        raise typer.BadParameter("give a time zone offset, e.g. 2026-11-27T07:00:00+00:00", param_hint="--at")

    async def run() -> dict[str, int]:
        pool = await create_pool(settings.database_dsn(), max_size=2)
        try:
            return await build_due_digests(pool, settings, now)
        finally:
            await pool.close()

    for period, queued in asyncio.run(run()).items():
        typer.echo(f"{period}: {queued} digests queued")
