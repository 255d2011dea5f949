"""PostgreSQL plumbing: connection pools and forward-only, recorded, re-runnable migrations.

Each component owns one schema and a `migrations/` folder of `NNN_name.sql` files. A file is applied
once, in order, inside a transaction, and recorded in `<schema>.schema_migrations`; re-running is a
no-op. An advisory lock per schema makes concurrent starts (several replicas) safe.
"""

from __future__ import annotations

import hashlib
import logging
import re
import uuid
from collections.abc import Awaitable, Callable, Iterable, Mapping
from pathlib import Path
from typing import TypeVar
from urllib.parse import urlsplit, urlunsplit

import asyncpg
from pydantic import SecretStr

__all__ = [
    "READ_ONLY_SCHEMAS",
    "apply_migrations",
    "create_database",
    "create_pool",
    "drop_database",
    "dsn",
    "grant_service_role",
    "text_array",
    "with_schema",
]

# Reference data every service may read and none may change.
READ_ONLY_SCHEMAS = ("gazetteer",)

T = TypeVar("T")

log = logging.getLogger(__name__)
_NAME = re.compile(r"^(\d{3})_[a-z0-9_]+\.sql$")


def dsn(url: str | SecretStr) -> str:
    """The connection string, revealed only at the moment of connecting."""
    return url.get_secret_value() if isinstance(url, SecretStr) else url


def text_array(values: Iterable[str]) -> str:
    """A PostgreSQL array literal (cast it with `::text[]`): each element double-quoted, with `\\`
    and `"` escaped. A statement storing many rows passes one column per parameter, but a text[] of
    text[] cannot be one: PostgreSQL arrays are rectangular, so each row's array goes as its literal."""
    quoted = ('"' + v.replace("\\", "\\\\").replace('"', '\\"') + '"' for v in values)
    return "{" + ",".join(quoted) + "}"


async def create_pool(
    url: str | SecretStr,
    *,
    min_size: int = 1,
    max_size: int = 10,
    server_settings: Mapping[str, str] | None = None,
) -> asyncpg.Pool:
    """A pool whose connections go back without asyncpg's reset query (see `_no_reset_query`).
    `server_settings`: PostgreSQL settings of every connection, sent when it opens (no round trip)."""
    return await asyncpg.create_pool(
        dsn(url),
        min_size=min_size,
        max_size=max_size,
        reset=_no_reset_query,
        server_settings=dict(server_settings) if server_settings else None,
    )


async def _no_reset_query(conn: asyncpg.Connection) -> None:
    """Nothing to send: the pool has already rolled back a transaction left open and dropped the
    connection's listener callbacks (asyncpg does both before calling this).

    asyncpg's default sends `pg_advisory_unlock_all(); CLOSE ALL; UNLISTEN *; RESET ALL` on every
    release: a round trip per transaction, ~100 us of client CPU and 30 us of PostgreSQL's, and the
    caller waits for it before going on (a consumer before its next poll). Our services keep no
    session state on pooled connections, so there is nothing for it to undo: settings are `SET
    LOCAL`, row and advisory locks are the transaction's (the migrations' session lock is unlocked in
    a `finally`), cursors live in transactions, and a connection held for LISTEN removes its
    listener, which UNLISTENs, before it goes back. Keep it so: session state set on a pooled
    connection would reach the next borrower.
    """


async def apply_migrations(conn: asyncpg.Connection, schema: str, folder: Path) -> list[str]:
    """Apply the pending migrations of `folder` to `schema`; returns the names applied."""
    files = sorted(p for p in folder.glob("*.sql") if _NAME.match(p.name))
    lock = int.from_bytes(hashlib.sha256(schema.encode()).digest()[:4], "big")
    applied: list[str] = []
    await conn.execute("SELECT pg_advisory_lock($1)", lock)
    try:
        # Checked first: a service's own role may lack CREATE here (the gazetteer is read-only to it)
        # and needs nothing created once `streetneeds migrate` has run.
        if await conn.fetchval("SELECT to_regclass($1)", f'"{schema}".schema_migrations') is None:
            await conn.execute(f'CREATE SCHEMA IF NOT EXISTS "{schema}"')
            await conn.execute(
                f'CREATE TABLE IF NOT EXISTS "{schema}".schema_migrations ('
                " name text PRIMARY KEY, checksum text NOT NULL,"
                " applied_at timestamptz NOT NULL DEFAULT now())"
            )
        done = {
            r["name"]: r["checksum"]
            for r in await conn.fetch(f'SELECT name, checksum FROM "{schema}".schema_migrations')
        }
        for path in files:
            sql = path.read_text()
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if path.name in done:
                if done[path.name] != checksum:
                    # Forward-only: an applied migration is history; changes go in a new file.
                    raise RuntimeError(f"{schema}/{path.name} changed after it was applied")
                continue
            async with conn.transaction():
                await conn.execute(f'SET LOCAL search_path TO "{schema}", public')
                await conn.execute(sql)
                await conn.execute(
                    f'INSERT INTO "{schema}".schema_migrations (name, checksum) VALUES ($1, $2)',
                    path.name,
                    checksum,
                )
            applied.append(path.name)
            log.info("migration applied", extra={"schema": schema, "migration": path.name})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", lock)
    return applied


async def grant_service_role(
    conn: asyncpg.Connection, role: str, password: str | None, schema: str, *, read: tuple[str, ...] = ()
) -> None:
    """Create (or update) `role`: all rights in its own `schema`, SELECT only in `read`, nothing else.

    Run by the administrator after the migrations; default privileges cover tables later migrations
    add. Roles are cluster-wide, grants are per database.
    """
    ident = await conn.fetchval("SELECT quote_ident($1)", role)
    exists = await conn.fetchval("SELECT true FROM pg_roles WHERE rolname = $1", role)
    login = (
        f"LOGIN PASSWORD {await conn.fetchval('SELECT quote_literal($1)', password)}" if password else "LOGIN"
    )
    options = f"{login} NOSUPERUSER NOCREATEDB NOCREATEROLE NOINHERIT NOREPLICATION NOBYPASSRLS"
    await conn.execute(f"{'ALTER' if exists else 'CREATE'} ROLE {ident} WITH {options}")
    database = await conn.fetchval("SELECT quote_ident(current_database())")
    own = f'"{schema}"'
    statements = [
        f"GRANT CONNECT, TEMPORARY ON DATABASE {database} TO {ident}",
        f"REVOKE CREATE ON SCHEMA public FROM {ident}",
        f"GRANT USAGE, CREATE ON SCHEMA {own} TO {ident}",
        f"GRANT ALL ON ALL TABLES IN SCHEMA {own} TO {ident}",
        f"GRANT ALL ON ALL SEQUENCES IN SCHEMA {own} TO {ident}",
        f"GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA {own} TO {ident}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {own} GRANT ALL ON TABLES TO {ident}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {own} GRANT ALL ON SEQUENCES TO {ident}",
        f"ALTER DEFAULT PRIVILEGES IN SCHEMA {own} GRANT EXECUTE ON FUNCTIONS TO {ident}",
    ]
    for other in read:
        if await conn.fetchval("SELECT true FROM pg_namespace WHERE nspname = $1", other):
            statements += [
                f'GRANT USAGE ON SCHEMA "{other}" TO {ident}',
                f'GRANT SELECT ON ALL TABLES IN SCHEMA "{other}" TO {ident}',
                f'GRANT EXECUTE ON ALL FUNCTIONS IN SCHEMA "{other}" TO {ident}',
                f'ALTER DEFAULT PRIVILEGES IN SCHEMA "{other}" GRANT SELECT ON TABLES TO {ident}',
            ]
    async with conn.transaction():
        for statement in statements:
            await conn.execute(statement)
    log.info("service role granted", extra={"role": role, "schema": schema})


async def with_schema(
    database_url: str | SecretStr,
    schema: str,
    folder: Path,
    action: Callable[[asyncpg.Connection], Awaitable[T]],
) -> T:
    """Run a command-line task on one connection, after bringing `schema` up to date."""
    conn = await asyncpg.connect(dsn(database_url))
    try:
        await apply_migrations(conn, schema, folder)
        return await action(conn)
    finally:
        await conn.close()


def _database_url(url: str, name: str) -> str:
    return urlunsplit(urlsplit(url)._replace(path=f"/{name}"))


async def create_database(server_url: str, *, prefix: str = "db", template: str | None = None) -> str:
    """A new database on `server_url`'s server (optionally a copy of `template`); returns its URL."""
    name = f"{prefix}_{uuid.uuid4().hex[:12]}"
    conn = await asyncpg.connect(server_url)
    try:
        copy = f' TEMPLATE "{template}"' if template else ""
        await conn.execute(f'CREATE DATABASE "{name}"{copy}')
    finally:
        await conn.close()
    return _database_url(server_url, name)


async def drop_database(server_url: str, database_url: str) -> None:
    """Drop the database `database_url` names, even with sessions still connected to it."""
    name = urlsplit(database_url).path.lstrip("/")
    conn = await asyncpg.connect(server_url)
    try:
        await conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await conn.close()
