"""Fixtures shared by every tier: where the real broker and database are, and fresh databases.

Integration tests use the servers `make test` started (or the ones `KAFKA_BOOTSTRAP_SERVERS` and
`DATABASE_URL` point at). Where neither is given but a Docker engine is, testcontainers starts them.
Every test uses random ids (databases, consumer groups, streets), so nothing needs cleaning up.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import pytest

ROOT = Path(__file__).resolve().parents[1]


def _stack_env() -> dict[str, str]:
    env_file = ROOT / ".local/stack.env"
    values = {}
    if env_file.exists():
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            values[key.strip()] = value.strip()
    return values


def _docker_available() -> bool:
    try:
        import docker  # testcontainers' dependency

        docker.from_env().ping()
        return True
    except Exception:
        return False


@pytest.fixture(scope="session")
def stack() -> Iterator[dict[str, str]]:
    """`{"kafka": bootstrap, "database": url}` of real servers, or skip with the reason."""
    env = {**_stack_env(), **{k: v for k, v in os.environ.items()
                              if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")}}
    if "KAFKA_BOOTSTRAP_SERVERS" in env and "DATABASE_URL" in env:
        yield {"kafka": env["KAFKA_BOOTSTRAP_SERVERS"], "database": env["DATABASE_URL"]}
        return
    if not _docker_available():
        pytest.skip("no Kafka/PostgreSQL: run `make test` (starts them) or set "
                    "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL")
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:16") as pg:
        yield {"kafka": kafka.get_bootstrap_server(),
               "database": pg.get_connection_url(driver=None)}


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: dict[str, str]) -> str:
    return stack["kafka"]


def _with_database(url: str, name: str) -> str:
    parts = urlsplit(url)
    return urlunsplit(parts._replace(path=f"/{name}"))


@pytest.fixture
async def fresh_database_url(stack: dict[str, str]) -> AsyncIterator[str]:
    """A new, empty database for this test (dropped afterwards)."""
    name = f"t_{uuid.uuid4().hex[:12]}"
    admin = await asyncpg.connect(stack["database"])
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    yield _with_database(stack["database"], name)
    admin = await asyncpg.connect(stack["database"])
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


@pytest.fixture
def random_id() -> str:
    return uuid.uuid4().hex[:10]
