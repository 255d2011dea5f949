"""Feeds' event stream on the real broker and database: resume points and connection caps (issue 11 item 6).

A recent Last-Event-ID is replayed; 0, one further back than the replay window, or one past the newest
change gets one `refresh` event (id = the newest change) and then live changes; streams are capped per
client (429) and in all (503), as problem+json.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.feeds.main import create_app
from services.feeds.settings import FeedsSettings
from shared.contracts import PROMPTS
from shared.db import create_database, drop_database
from tests.integration.test_feeds_service import SseReader, _prompt, _street
from tests.support import group_at_end, loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

REPLAY = 2  # a small replay window, so a few prompts put a resume point beyond it


@pytest.fixture(scope="module")
async def served(stack, gazetteer_template) -> AsyncIterator[tuple[str, FeedsSettings]]:
    database_url = await create_database(stack["database"], prefix="t_feeds_sse", template=gazetteer_template)
    sock, base = loopback_socket()
    group_id = f"feeds-sse-{uuid.uuid4().hex[:8]}"
    await group_at_end(stack["kafka"], group_id, PROMPTS)  # resume points count this test's changes only
    settings = FeedsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=stack["kafka"],
        base_url=base,
        group_id=group_id,
        sse_heartbeat_s=1.0,
        sse_replay_limit=REPLAY,
        sse_max_per_client=2,
        sse_max_clients=5,
        trusted_proxies="127.0.0.1/32",  # so each test client can stand for its own address
        _env_file=None,
    )
    try:
        async with serve(create_app(settings), sock):
            yield base, settings
    finally:
        await drop_database(stack["database"], database_url)


def _client(base: str, address: str) -> httpx.AsyncClient:
    return httpx.AsyncClient(base_url=base, timeout=30, headers={"X-Forwarded-For": address})


async def _publish(producer, street: dict, random_id: str, n: int) -> str:
    prompt = _prompt(street, f"{random_id}n{n}", title=f"Fly-tipping {random_id} number {n}")
    await producer.send_and_wait(
        PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
    )
    return prompt.prompt_id


async def _next_block(reader: SseReader) -> dict:
    return await asyncio.wait_for(reader.events.get(), 60)


async def test_streams_are_capped_per_client_and_in_all(served):
    base, _ = served
    readers: list[SseReader] = []
    clients = [_client(base, f"203.0.113.{n}") for n in range(4)]
    try:
        street = await _street(clients[0], "agar", "Agar Grove")
        url = f"/streets/{street['id']}/events"
        for client in clients[:2]:
            for _ in range(2):
                reader = SseReader(client, url)
                await asyncio.wait_for(reader.connected.wait(), 30)
                readers.append(reader)
        per_client = await clients[0].get(url)
        assert per_client.status_code == 429
        assert per_client.headers["content-type"].startswith("application/problem+json")
        assert per_client.headers["retry-after"] == "30"
        fifth = SseReader(clients[2], url)
        await asyncio.wait_for(fifth.connected.wait(), 30)
        readers.append(fifth)
        in_all = await clients[3].get(url)
        assert in_all.status_code == 503
        assert in_all.headers["content-type"].startswith("application/problem+json")
    finally:
        for reader in readers:
            await reader.close()
        for client in clients:
            await client.aclose()


async def test_resume_points_recent_replayed_old_zero_and_future_refresh(served, producer, random_id):
    base, _ = served
    async with _client(base, "198.51.100.10") as client:
        street = await _street(client, "agar", "Agar Grove")
        url = f"/streets/{street['id']}/events"
        live = SseReader(client, url)
        await asyncio.wait_for(live.connected.wait(), 30)
        ids = []
        for n in range(4):
            prompt_id = await _publish(producer, street, random_id, n)
            ids.append(int((await live.next("prompt", prompt_id))["id"]))
        await live.close()
    newest = ids[-1]

    # Within the window: the missed change is replayed, no refresh.
    async with _client(base, "198.51.100.11") as client:
        recent = SseReader(client, url, last_event_id=str(ids[-2]))
        block = await _next_block(recent)
        assert block["event"] == "prompt" and block["id"] == str(newest)
        await recent.close()

    # 0, beyond the window, and past the newest change: one refresh carrying the newest id, then live.
    for n, resume in enumerate(["0", str(ids[0] - 1), str(newest + 1000)], start=10):
        async with _client(base, f"198.51.100.{n}") as client:
            reader = SseReader(client, url, last_event_id=resume)
            first = await _next_block(reader)
            assert first["event"] == "refresh", (resume, first)
            assert int(first["id"]) >= newest
            assert "reload" in json.loads(first["data"])["reason"]
            prompt_id = await _publish(producer, street, random_id, n)
            after = await reader.next("prompt", prompt_id)  # live from now, even after a future id
            assert int(after["id"]) > int(first["id"])
            await reader.close()


async def test_a_resume_point_that_is_not_a_number_is_a_problem(served):
    base, _ = served
    async with _client(base, "198.51.100.20") as client:
        street = await _street(client, "agar", "Agar Grove")
        response = await client.get(f"/streets/{street['id']}/events", headers={"Last-Event-ID": "-1"})
        assert response.status_code == 400
        assert response.headers["content-type"].startswith("application/problem+json")
        assert response.json()["errors"][0]["field"] == "Last-Event-ID"
