"""Test helpers: an app on a real socket (SSE, several replicas), an anonymised signal, a place need
and a prompt to publish, and a pool for a patched batch."""

from __future__ import annotations

import asyncio
import datetime as dt
import socket
import uuid
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.structs import OffsetAndMetadata
from fastapi import FastAPI

from shared.contracts import (
    CATALOGUE,
    Category,
    PromptPublished,
    Sensitivity,
    SignalAnonymised,
    StreetNeedChanged,
    Topic,
)


class OneConnection:
    """A pool whose connection (None) goes to a patched `process_batch`: no database reached."""

    @asynccontextmanager
    async def acquire(self) -> AsyncIterator[None]:
        yield None


def loopback_socket() -> tuple[socket.socket, str]:
    """A bound socket on a free loopback port, and its base URL (bind first: no port race)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serve(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """Run `app` with uvicorn (lifespan included) on `sock` until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error here
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task


async def group_at_end(bootstrap: str, group_id: str, topic: Topic) -> None:
    """Commit `group_id`'s positions at `topic`'s current end, before the group first runs: a service
    under test then applies only what its test sends, not the whole suite's earlier records (a
    backlog it would still be working through while the test ran, far more than a test expects)."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap.split(","), group_id=group_id, enable_auto_commit=False
    )
    await consumer.start()
    try:
        parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(parts)
        ends = await consumer.end_offsets(parts)
        await consumer.commit({tp: OffsetAndMetadata(end, "") for tp, end in ends.items()})
    finally:
        await consumer.stop()


def anonymised(
    street_id: str,
    category: str,
    subject_key: str,
    at: dt.datetime,
    *,
    action: str = "raised",
    previous: tuple[str, ...] = (),
) -> SignalAnonymised:
    """A SignalAnonymised as ingest sends it (a rotated key's event names the keys before it)."""
    return SignalAnonymised(
        event_id=uuid.uuid4(),
        category=category,
        sensitivity=CATALOGUE[category].sensitivity,
        action=action,
        street_id=street_id,
        subject_key=subject_key,
        key_version=2 if previous else 1,
        previous_keys=previous,
        occurred_at=at,
        council_id="test",
        source="kafka",
    )


def place_need(
    area_id: str, version: int, *, count: int | None = None, ward_code: str = "E05000001"
) -> StreetNeedChanged:
    """A street's fly-tipping need at `version` (its count is the version unless given)."""
    return StreetNeedChanged(
        area_id=area_id,
        area_kind="street",
        area_name=f"Test {area_id}",
        ward_code=ward_code,
        street_ids=(area_id,),
        category=Category.FLY_TIPPING,
        sensitivity=Sensitivity.PLACE,
        count=version if count is None else count,
        since=dt.date(2026, 11, 1),
        period="live",
        published_at=dt.datetime(2026, 11, 22, 10, version % 60, tzinfo=dt.UTC),
        version=version,
    )


def street_prompt(
    street_id: str,
    prompt_id: str,
    title: str,
    *,
    revision: int = 1,
    category: Category | str = Category.FLY_TIPPING,
    published_at: dt.datetime | None = None,
) -> PromptPublished:
    """A place prompt on one street (published now unless given), as the prompter publishes it."""
    return PromptPublished(
        prompt_id=prompt_id,
        revision=revision,
        area_id=street_id,
        area_kind="street",
        area_name="Test street",
        street_ids=(street_id,),
        category=Category(category),
        sensitivity=Sensitivity.PLACE,
        title=title,
        body="Bags dumped by the bins.",
        published_at=published_at or dt.datetime.now(dt.UTC),
    )
