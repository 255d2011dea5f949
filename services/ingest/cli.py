"""`streetneeds ingest ...`: manage the council systems allowed to send signals."""

from __future__ import annotations

import asyncio
import re
import uuid
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import typer

from shared.contracts import Category
from shared.db import with_schema
from shared.keyfile import save_key
from shared.settings import CommonSettings

from . import repository
from .auth import generate_key, hash_key

app = typer.Typer(
    help="Council systems: create (prints the API key once), list, revoke.", no_args_is_help=True
)
_MIGRATIONS = Path(__file__).parent / "migrations"
_COUNCIL = re.compile(r"^[a-z0-9][a-z0-9-]{0,63}$")


T = TypeVar("T")


def _with_conn(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> Coroutine[Any, Any, T]:
    return with_schema(CommonSettings().database_url, "ingest", _MIGRATIONS, fn)


@app.command("create-system")
def create_system(
    name: str = typer.Argument(..., help="What the system is, e.g. 'Camden adult social care'."),
    council: str = typer.Option(..., "--council", help="Council id (a slug), e.g. camden."),
    category: list[str] = typer.Option(
        None, "--category", help="A category it may send (repeat); all if none."
    ),
    rate_per_minute: int | None = typer.Option(None, "--rate-per-minute", min=1, help="Its own rate limit."),
    key_file: Path | None = typer.Option(None, "--key-file", help="Also set `KEY=<key>` in this env file."),
    key_name: str = typer.Option("COUNCIL_API_KEY", "--key-name", help="Variable name used in --key-file."),
) -> None:
    """Register a council system and print its new API key (shown once; only its hash is stored)."""
    if not _COUNCIL.match(council):
        raise typer.BadParameter("lower-case letters, digits and '-' only", param_hint="--council")
    known = {c.value for c in Category}
    unknown = sorted(set(category or ()) - known)
    if unknown:
        raise typer.BadParameter(
            f"unknown: {', '.join(unknown)} (known: {', '.join(sorted(known))})", param_hint="--category"
        )
    key = generate_key()
    system = asyncio.run(
        _with_conn(
            lambda conn: repository.create_system(
                conn,
                name=name,
                council_id=council,
                key_hash=hash_key(key),
                categories=sorted(category or known),
                rate_per_minute=rate_per_minute,
            )
        )
    )
    if key_file is not None:
        save_key(key_file, key_name, key)
    typer.echo(f"system {system.id} ({council}): {', '.join(sorted(system.categories))}")
    typer.echo(f"API key (shown once): {key}")


@app.command("list-systems")
def list_systems() -> None:
    """List council systems (never their keys)."""
    for s in asyncio.run(_with_conn(repository.list_systems)):
        state = f"revoked {s.revoked_at:%Y-%m-%d}" if s.revoked_at else "active"
        typer.echo(f"{s.id}  {s.council_id:<12} {state:<18} {s.name}  [{', '.join(sorted(s.categories))}]")


@app.command("revoke-system")
def revoke_system(system_id: uuid.UUID = typer.Argument(..., help="The system's id.")) -> None:
    """Revoke a system's key at once; its signals already accepted stay."""
    if not asyncio.run(_with_conn(lambda conn: repository.revoke_system(conn, system_id))):
        typer.echo(f"no active system {system_id}", err=True)
        raise typer.Exit(1)
    typer.echo(f"revoked {system_id}")
