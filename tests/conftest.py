"""Fixtures shared by every tier: where the real broker and database are, and fresh databases.

Integration tests use the servers `make test` started (or the ones `KAFKA_BOOTSTRAP_SERVERS` and
`DATABASE_URL` point at). Where neither is given but a Docker engine is, testcontainers starts them.
Every test uses random ids (databases, consumer groups, streets), so nothing needs cleaning up.
"""

from __future__ import annotations

import asyncio
import os
import uuid
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from urllib.parse import urlsplit

# A topic namespace of this run's own, set before any project module reads the registry: the suite
# never sees events of a running demo or an earlier run, and services it starts inherit the prefix.
os.environ.setdefault("STREETNEEDS_TOPIC_PREFIX", f"test-{uuid.uuid4().hex[:8]}.")

import asyncpg
import pytest

from shared.db import create_database, drop_database
from shared.settings import CommonSettings

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
    env = {
        **_stack_env(),
        **{k: v for k, v in os.environ.items() if k in ("KAFKA_BOOTSTRAP_SERVERS", "DATABASE_URL")},
    }
    if "KAFKA_BOOTSTRAP_SERVERS" in env and "DATABASE_URL" in env:
        yield from _with_topics({"kafka": env["KAFKA_BOOTSTRAP_SERVERS"], "database": env["DATABASE_URL"]})
        return
    if not _docker_available():
        pytest.skip(
            "no Kafka/PostgreSQL: run `make test` (starts them) or set "
            "KAFKA_BOOTSTRAP_SERVERS and DATABASE_URL"
        )
    from testcontainers.kafka import KafkaContainer
    from testcontainers.postgres import PostgresContainer

    with KafkaContainer().with_kraft() as kafka, PostgresContainer("postgres:16") as pg:
        yield from _with_topics(
            {"kafka": kafka.get_bootstrap_server(), "database": pg.get_connection_url(driver=None)}
        )


def _with_topics(servers: dict[str, str]) -> Iterator[dict[str, str]]:
    """This run's topics exist from the start (as `make setup` creates them) and go afterwards."""
    from shared.kafka import ensure_topics

    asyncio.run(ensure_topics(_settings(servers)))
    yield servers
    asyncio.run(_delete_run_topics(servers["kafka"]))


@pytest.fixture(scope="session")
def kafka_bootstrap(stack: dict[str, str]) -> str:
    return stack["kafka"]


def _settings(servers: dict[str, str]) -> CommonSettings:
    return CommonSettings(database_url=servers["database"], kafka_bootstrap_servers=servers["kafka"])


@pytest.fixture(scope="session")
def kafka_settings(stack: dict[str, str]) -> CommonSettings:
    """The stack as settings, for the shared Kafka clients (make_broker, ensure_topics, ...)."""
    return _settings(stack)


async def _delete_run_topics(bootstrap: str) -> None:
    """Delete this run's topics, including those that services started by tests created."""
    from aiokafka.admin import AIOKafkaAdminClient

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        prefix = os.environ["STREETNEEDS_TOPIC_PREFIX"]
        ours = [t for t in await admin.list_topics() if prefix and t.startswith(prefix)]
        if ours:
            await admin.delete_topics(ours)
    finally:
        await admin.close()


@pytest.fixture(scope="session")
def camden_build():
    """(gazetteer, import report) for the shipped Camden data, built once per session."""
    from shared.gazetteer.camden import build_camden

    return build_camden()


@pytest.fixture(scope="session")
def camden_gazetteer(camden_build):
    return camden_build[0]


@pytest.fixture(scope="session")
async def gazetteer_template(stack: dict[str, str], camden_gazetteer) -> AsyncIterator[str]:
    """A template database holding the Camden gazetteer, so each fresh database is a cheap copy."""
    from shared.gazetteer import repository

    url = await create_database(stack["database"], prefix="tpl")
    conn = await asyncpg.connect(url)
    try:
        await repository.migrate(conn)
        await repository.save(conn, camden_gazetteer)
    finally:
        await conn.close()
    yield urlsplit(url).path.lstrip("/")
    await drop_database(stack["database"], url)


@pytest.fixture
async def fresh_database_url(stack: dict[str, str], gazetteer_template: str) -> AsyncIterator[str]:
    """A new database for this test holding only the Camden gazetteer (dropped afterwards)."""
    url = await create_database(stack["database"], prefix="t", template=gazetteer_template)
    yield url
    await drop_database(stack["database"], url)


@pytest.fixture
def random_id() -> str:
    return uuid.uuid4().hex[:10]


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Every integration test gets a timeout, so a stuck broker or consumer fails instead of hanging CI."""
    for item in items:
        if item.get_closest_marker("integration") and not item.get_closest_marker("timeout"):
            item.add_marker(pytest.mark.timeout(180))
