"""Partner administration: create partners (API key shown once), list them, revoke them."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar
from uuid import UUID

import asyncpg
import typer

from shared.db import with_schema
from shared.keyfile import save_key
from shared.keys import hash_key, new_key

from . import repository
from .main import MIGRATIONS
from .settings import PartnersSettings

app = typer.Typer(help="VCS partner API keys.", no_args_is_help=True)


T = TypeVar("T")


def _run(action: Callable[[asyncpg.Connection], Awaitable[T]]) -> Coroutine[Any, Any, T]:
    return with_schema(PartnersSettings().database_url, "partners", MIGRATIONS, action)


@app.command("create-partner")
def create_partner(
    name: str = typer.Argument(..., help="The partner organisation's name."),
    key_file: Path | None = typer.Option(None, help="Also set PARTNER_API_KEY=<key> in this env file."),
) -> None:
    """Create a partner and print its API key. The key is shown once and only its hash is stored."""
    key = new_key()
    row = asyncio.run(_run(lambda conn: repository.create_partner(conn, name, hash_key(key))))
    typer.echo(f"partner {row['id']} ({name}) created. API key (shown once, keep it secret):")
    typer.echo(key)
    if key_file is not None:
        save_key(key_file, "PARTNER_API_KEY", key)
        typer.echo(f"written to {key_file}")


@app.command("list-partners")
def list_partners() -> None:
    """List partners (never their keys)."""
    for row in asyncio.run(_run(repository.list_partners)):
        state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
        typer.echo(f"{row['id']}\t{row['name']}\t{row['created_at']:%Y-%m-%d}\t{state}")


@app.command("revoke-partner")
def revoke_partner(partner_id: UUID = typer.Argument(..., help="Partner id from list-partners.")) -> None:
    """Revoke a partner's API key: its requests get 403 and its webhooks stop receiving."""
    if not asyncio.run(_run(lambda conn: repository.revoke_partner(conn, partner_id))):
        typer.echo(f"no partner {partner_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"partner {partner_id} revoked")


if __name__ == "__main__":
    app()
