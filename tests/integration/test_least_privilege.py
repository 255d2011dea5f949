"""Least privilege (issue 11, High 2): each service's PostgreSQL role, created by `migrate`, may use its
own schema and only read the gazetteer; `make run` gives each service only its own secrets."""

from __future__ import annotations

import importlib.util
import secrets
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

from shared.migrations import migrate_all
from shared.registry import SERVICES

pytestmark = pytest.mark.integration
ROOT = Path(__file__).resolve().parents[2]


def _role_url(admin_url: str, role: str) -> str:
    parts = urlsplit(admin_url)
    host = parts.netloc.rpartition("@")[2]
    return urlunsplit(parts._replace(netloc=f"{role}:{secrets.token_urlsafe(16)}@{host}"))


@pytest.fixture
async def roles(fresh_database_url: str, random_id: str) -> AsyncIterator[dict[str, str]]:
    """schema -> URL of that service's own role, granted by migrate_all on a fresh database."""
    urls = {s.schema: _role_url(fresh_database_url, f"t_{random_id}_{s.name}") for s in SERVICES}
    await migrate_all(fresh_database_url, roles=urls)
    yield urls
    conn = await asyncpg.connect(fresh_database_url)
    try:
        for url in urls.values():
            role = urlsplit(url).username
            await conn.execute(f'DROP OWNED BY "{role}"')
            await conn.execute(f'DROP ROLE "{role}"')
    finally:
        await conn.close()


async def _tables(conn: asyncpg.Connection, schema: str) -> list[str]:
    rows = await conn.fetch(
        "SELECT table_name FROM information_schema.tables"
        " WHERE table_schema = $1 AND table_type = 'BASE TABLE'",
        schema,
    )
    return [r["table_name"] for r in rows]


async def test_a_service_role_cannot_read_another_services_tables(
    fresh_database_url: str, roles: dict[str, str]
) -> None:
    admin = await asyncpg.connect(fresh_database_url)
    try:
        ingest_tables = await _tables(admin, "ingest")
    finally:
        await admin.close()
    assert "council_systems" in ingest_tables
    for schema in ("feeds", "aggregator", "partners"):
        conn = await asyncpg.connect(roles[schema])
        try:
            for table in ingest_tables:
                with pytest.raises(asyncpg.InsufficientPrivilegeError):
                    await conn.fetch(f'SELECT * FROM ingest."{table}" LIMIT 1')
        finally:
            await conn.close()


async def test_a_service_role_uses_its_schema_and_only_reads_the_gazetteer(roles: dict[str, str]) -> None:
    conn = await asyncpg.connect(roles["feeds"])
    try:
        for table in await _tables(conn, "feeds"):
            await conn.fetch(f'SELECT * FROM feeds."{table}" LIMIT 1')
        await conn.execute("CREATE TABLE feeds.t_least_privilege (x int)")
        await conn.execute("INSERT INTO feeds.t_least_privilege VALUES (1)")
        assert await conn.fetchval("SELECT count(*) FROM gazetteer.streets") > 0
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("DELETE FROM gazetteer.streets")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE TABLE gazetteer.t_nope (x int)")
        with pytest.raises(asyncpg.InsufficientPrivilegeError):
            await conn.execute("CREATE SCHEMA t_nope")
        await conn.execute("DROP TABLE feeds.t_least_privilege")
    finally:
        await conn.close()


def _run_py():
    spec = importlib.util.spec_from_file_location("local_run", ROOT / "deploy/local/run.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)  # type: ignore[union-attr]
    return module


def test_make_run_gives_each_service_only_its_own_secrets() -> None:
    run = _run_py()
    env = {
        "DATABASE_URL": "postgresql://admin@db/x",
        "KAFKA_BOOTSTRAP_SERVERS": "k:1",
        "INGEST_PSEUDONYM_KEYS": "1:" + "k" * 40,
        "INGEST_DATABASE_URL": "postgresql://streetneeds_ingest:pw@db/x",
        "FEEDS_DATABASE_URL": "postgresql://streetneeds_feeds:pw@db/x",
        "AGGREGATOR_OPERATOR_TOKEN": "a" * 32,
    }
    feeds = run.own_env(env, "feeds")
    ingest = run.own_env(env, "ingest")
    assert "INGEST_PSEUDONYM_KEYS" not in feeds and "AGGREGATOR_OPERATOR_TOKEN" not in feeds
    assert feeds["DATABASE_URL"] == env["FEEDS_DATABASE_URL"]
    assert ingest["INGEST_PSEUDONYM_KEYS"] == env["INGEST_PSEUDONYM_KEYS"]
    assert ingest["DATABASE_URL"] == env["INGEST_DATABASE_URL"]
    assert "AGGREGATOR_OPERATOR_TOKEN" not in ingest
