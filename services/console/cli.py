"""`streetneeds console ...`: create the console's operators (the password is printed once)."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import asyncpg
import typer

from shared.db import with_schema
from shared.keyfile import save_key
from shared.settings import CommonSettings

from . import repository
from .security import ROLES, USERNAME, generate_password, hash_password

app = typer.Typer(help="The operators' console: create operators, list them.", no_args_is_help=True)
_MIGRATIONS = Path(__file__).parent / "migrations"


T = TypeVar("T")


def _with_conn(fn: Callable[[asyncpg.Connection], Awaitable[T]]) -> Coroutine[Any, Any, T]:
    return with_schema(CommonSettings().database_url, "console", _MIGRATIONS, fn)


@app.command("create-operator")
def create_operator(
    name: str = typer.Argument(..., help="User name: lower-case letters, digits, '.', '_' or '-'."),
    role: str = typer.Option("viewer", "--role", help="viewer, operator or admin."),
    key_file: Path | None = typer.Option(
        None, "--key-file", help="Also set CONSOLE_USERNAME and CONSOLE_PASSWORD in this env file."
    ),
) -> None:
    """Create an operator with a generated password, printed once (only its scrypt hash is stored)."""
    if not USERNAME.match(name):
        raise typer.BadParameter("2-63 lower-case letters, digits, '.', '_' or '-'", param_hint="NAME")
    if role not in ROLES:
        raise typer.BadParameter(f"one of {', '.join(ROLES)}", param_hint="--role")
    password = generate_password()

    async def create(conn: asyncpg.Connection) -> None:
        if await repository.find_operator(conn, name):
            typer.echo(f"an operator called {name} already exists", err=True)
            raise typer.Exit(1)
        await repository.create_operator(conn, name, hash_password(password), role)
        await repository.add_audit(conn, "(command line)", "create operator", name, "done", f"role {role}")

    asyncio.run(_with_conn(create))
    if key_file is not None:
        save_key(key_file, "CONSOLE_USERNAME", name)
        save_key(key_file, "CONSOLE_PASSWORD", password)
    typer.echo(f"operator {name} ({role})")
    typer.echo(f"password (shown once): {password}")


@app.command("list-operators")
def list_operators() -> None:
    """List operators and their roles (never their passwords)."""
    for o in asyncio.run(_with_conn(repository.list_operators)):
        state = f"disabled {o.disabled_at:%Y-%m-%d}" if o.disabled_at else "active"
        typer.echo(f"{o.username:<24} {o.role:<9} {state}")
