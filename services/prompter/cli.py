"""Organisations' API keys: create (shown once), list, revoke — `streetneeds prompter ...`."""

from __future__ import annotations

import asyncio
import os
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, Literal, TypeVar
from uuid import UUID

import asyncpg
import typer

from shared.db import with_schema
from shared.keyfile import save_key
from shared.keys import hash_key, new_key

from . import org_repository as org_repo
from .main import MIGRATIONS
from .settings import PrompterSettings

app = typer.Typer(help="Organisations (VCS groups, council teams) and their API keys.", no_args_is_help=True)
ORG_KEY_PREFIX = "sno_"


T = TypeVar("T")


def _run(action: Callable[[asyncpg.Connection], Awaitable[T]]) -> Coroutine[Any, Any, T]:
    return with_schema(PrompterSettings().database_url, "prompter", MIGRATIONS, action)


@app.command("create-organisation")
def create_organisation(
    name: str = typer.Argument(..., help="The organisation's name, as residents will see it."),
    kind: str = typer.Option("vcs", help="vcs (a voluntary or community group) or council."),
    council_admin: bool = typer.Option(
        False, "--council-admin", help="A council team that sees every change and runs the platforms."
    ),
    key_file: Path | None = typer.Option(None, help="Also set KEY_NAME=<key> in this env file."),
    key_name: str = typer.Option("ORGANISATION_API_KEY", help="The variable name in --key-file."),
    key_from_env: str | None = typer.Option(
        None,
        help="Register the key held in this environment variable instead of a new one (e.g. give a VCS "
        "partner's existing partners-service key to its organisation). Never pass keys as arguments.",
    ),
) -> None:
    """Create an organisation and print its API key (shown once; only its hash is stored)."""
    if kind not in ("vcs", "council"):
        typer.echo("--kind must be vcs or council", err=True)
        raise typer.Exit(2)
    if council_admin and kind != "council":
        typer.echo("--council-admin needs --kind council", err=True)
        raise typer.Exit(2)
    k: Literal["vcs", "council"] = "council" if kind == "council" else "vcs"  # checked above
    key = os.environ.get(key_from_env, "") if key_from_env else new_key(ORG_KEY_PREFIX)
    if len(key) < 32:
        typer.echo(f"${key_from_env} must hold a key of at least 32 characters", err=True)
        raise typer.Exit(2)
    try:
        row = asyncio.run(
            _run(lambda conn: org_repo.create_organisation(conn, name, k, hash_key(key), council_admin))
        )
    except asyncpg.UniqueViolationError:
        typer.echo("that key already belongs to an organisation", err=True)
        raise typer.Exit(1) from None
    typer.echo(f"organisation {row['id']} ({name}, {kind}) created. API key (shown once, keep it secret):")
    typer.echo(key)
    if key_file is not None:
        save_key(key_file, key_name, key)
        typer.echo(f"written to {key_file}")


@app.command("list-organisations")
def list_organisations() -> None:
    """List organisations (never their keys)."""
    for row in asyncio.run(_run(org_repo.list_organisations)):
        state = f"revoked {row['revoked_at']:%Y-%m-%d}" if row["revoked_at"] else "active"
        admin = " council-admin" if row["council_admin"] else ""
        typer.echo(f"{row['id']}\t{row['name']}\t{row['kind']}{admin}\t{state}")


@app.command("revoke-organisation")
def revoke_organisation(
    organisation_id: UUID = typer.Argument(..., help="Id from list-organisations."),
) -> None:
    """Revoke an organisation's key: its requests get 403 and its web sign-in ends."""
    if not asyncio.run(_run(lambda conn: org_repo.revoke_organisation(conn, organisation_id))):
        typer.echo(f"no organisation {organisation_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"organisation {organisation_id} revoked")


if __name__ == "__main__":
    app()
