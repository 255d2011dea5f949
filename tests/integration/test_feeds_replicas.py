"""Two feeds replicas (one database, one consumer group): a live client on either sees every change.

Each replica consumes only some partitions of prompts.v1, so live updates travel through
PostgreSQL LISTEN/NOTIFY: a change stored by replica A reaches an SSE client connected to B, also
after B's listener connection was killed, and a prompt from the real broker reaches clients on both.
"I can help" counts are the same on both, and a response that could not be published is not counted.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer
from fastapi import FastAPI

from services.feeds.consume import apply_event
from services.feeds.main import create_app
from services.feeds.settings import FeedsSettings
from shared.contracts import PROMPTS, PromptPublished
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

AGAR_GROVE = "Agar Grove"


@asynccontextmanager
async def _replica(database_url: str, kafka: str, group_id: str) -> AsyncIterator[tuple[str, FastAPI]]:
    sock, base = loopback_socket()
    settings = FeedsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        base_url=base,
        group_id=group_id,
        _env_file=None,
    )
    app = create_app(settings)
    async with serve(app, sock):
        yield base, app


@pytest.fixture
async def replicas(stack, fresh_database_url, random_id):
    group = f"feeds-replicas-{random_id}"
    async with (
        _replica(fresh_database_url, stack["kafka"], group) as a,
        _replica(fresh_database_url, stack["kafka"], group) as b,
    ):
        yield a, b


class Live:
    """An SSE client: collects the `data` of each `prompt` event."""

    def __init__(self, client: httpx.AsyncClient, url: str) -> None:
        self.prompts: asyncio.Queue[dict] = asyncio.Queue()
        self.connected = asyncio.Event()
        self.task = asyncio.create_task(self._run(client, url))

    async def _run(self, client: httpx.AsyncClient, url: str) -> None:
        async with client.stream("GET", url, timeout=None) as response:
            self.connected.set()
            event = ""
            async for line in response.aiter_lines():
                if line.startswith("event:"):
                    event = line.partition(":")[2].strip()
                elif line.startswith("data:") and event == "prompt":
                    await self.prompts.put(json.loads(line.partition(":")[2]))

    async def seen(self, title: str) -> bool:
        """True once a prompt with this title arrives (others, e.g. another test's, pass by)."""
        while (await asyncio.wait_for(self.prompts.get(), 60))["title"] != title:
            pass
        return True

    async def close(self) -> None:
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def _live(base: str, street: dict) -> tuple[httpx.AsyncClient, Live]:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    live = Live(client, f"/streets/{street['id']}/events")
    await asyncio.wait_for(live.connected.wait(), 30)
    return client, live


def _prompt(street: dict, random_id: str, n: int) -> PromptPublished:
    return PromptPublished(
        prompt_id=f"r{random_id}{n}-{street['id']}:graffiti",
        revision=1,
        area_id=street["id"],
        area_kind="street",
        area_name=street["name"],
        ward_code=street["ward_code"],
        street_ids=(street["id"],),
        category="graffiti",
        sensitivity="place",
        title=f"Graffiti on {street['name']} ({random_id} {n})",
        body="A wall needs painting.",
        published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )


async def _agar_grove(base: str) -> dict:
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        found = (await client.get("/v1/streets", params={"q": "agar"})).json()["streets"]
    return next(s for s in found if s["name"] == AGAR_GROVE)


async def test_change_stored_by_one_replica_reaches_a_client_of_the_other_even_after_reconnect(
    replicas, fresh_database_url, random_id
):
    (_, app_a), (base_b, _) = replicas
    street = await _agar_grove(base_b)
    client, live = await _live(base_b, street)
    runtime_a = app_a.state.runtime
    try:
        first = _prompt(street, random_id, 1)
        await apply_event(runtime_a.pool, runtime_a.settings, first)  # what A's consumer does
        assert await live.seen(first.title)

        # Kill every listener connection: each replica reconnects and catches up what it missed.
        admin = await asyncpg.connect(fresh_database_url)
        try:
            killed = await admin.fetchval(
                "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
                "WHERE application_name = 'feeds-listener' AND datname = current_database()"
            )
            assert killed == 2
            second = _prompt(street, random_id, 2)
            await apply_event(runtime_a.pool, runtime_a.settings, second)
        finally:
            await admin.close()
        assert await live.seen(second.title)
    finally:
        await live.close()
        await client.aclose()


async def test_prompt_from_the_broker_reaches_clients_of_both_replicas(replicas, stack, random_id):
    (base_a, _), (base_b, _) = replicas
    street = await _agar_grove(base_a)
    clients = [await _live(base, street) for base in (base_a, base_b)]
    prompt = _prompt(street, random_id, 3)
    producer = AIOKafkaProducer(bootstrap_servers=stack["kafka"], acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(
            PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
        )
    finally:
        await producer.stop()
    try:
        for _, live in clients:
            assert await live.seen(prompt.title)
    finally:
        for client, live in clients:
            await live.close()
            await client.aclose()


async def test_i_can_help_counts_are_shared_and_never_count_an_unpublished_response(
    replicas, random_id, monkeypatch
):
    (base_a, app_a), (base_b, _) = replicas
    street = await _agar_grove(base_a)
    prompt = _prompt(street, random_id, 4)
    runtime_a = app_a.state.runtime
    await apply_event(runtime_a.pool, runtime_a.settings, prompt)
    path = f"/v1/prompts/{prompt.prompt_id}/responses"
    async with (
        httpx.AsyncClient(base_url=base_a, timeout=30) as a,
        httpx.AsyncClient(base_url=base_b, timeout=30) as b,
    ):
        assert (await a.post(path)).json()["responses"] == 1
        assert (await b.post(path)).json()["responses"] == 2

        async def broker_down(*args, **kwargs):
            raise ConnectionError("broker unavailable")

        monkeypatch.setattr(runtime_a.broker, "publish", broker_down)
        assert (await a.post(path)).status_code == 500
        for client in (a, b):
            page = await client.get(f"/prompts/{prompt.prompt_id}")
            assert "2 neighbours said they can help" in page.text
