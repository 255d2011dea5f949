"""`streetneeds feeds ...`: housekeeping of residents' subscriptions."""

from __future__ import annotations

import asyncio

import typer
from pydantic import SecretStr

from shared.db import with_schema

from . import repository as repo
from .main import MIGRATIONS, NAME
from .settings import FeedsSettings

__all__ = ["app", "purge"]

app = typer.Typer(help="The feeds service: housekeeping of residents' subscriptions.", no_args_is_help=True)


async def purge(database_url: str | SecretStr, older_than_days: int) -> int:
    """Delete subscriptions unread for `older_than_days` days; returns how many."""
    # Migrations first: the column it reads may be new.
    return await with_schema(
        database_url, NAME, MIGRATIONS, lambda conn: repo.purge_subscriptions(conn, older_than_days)
    )


@app.command("purge-subscriptions")
def purge_subscriptions(
    older_than_days: int = typer.Option(
        ..., "--older-than-days", min=1, help="Delete those whose feed was not read in this many days."
    ),
) -> None:
    """Delete subscriptions nobody reads any more; their links then answer 404 (not found)."""
    deleted = asyncio.run(purge(FeedsSettings().database_url, older_than_days))
    typer.echo(f"subscriptions deleted: {deleted}")
