"""What the chaos suite watches from outside: a webhook receiver, SSE followers, and the topics as read."""

from __future__ import annotations

import asyncio
import json
import time
from collections import Counter
from dataclasses import dataclass, field

import httpx
from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from fastapi import FastAPI, Request, Response
from standardwebhooks import Webhook


@dataclass
class Receipt:
    webhook_id: str
    body: bytes
    at: float  # time.monotonic() on arrival


class WebhookReceiver:
    """A partner's endpoint: verifies each delivery's signature, records it, answers 204."""

    def __init__(self) -> None:
        self.secret: str | None = None
        self.receipts: list[Receipt] = []
        self.bad_signatures = 0
        self.app = FastAPI()
        self.app.post("/hook")(self._hook)

    async def _hook(self, request: Request) -> Response:
        body = await request.body()
        try:
            Webhook(self.secret).verify(body, dict(request.headers))
        except Exception:
            self.bad_signatures += 1
            return Response(status_code=400)
        self.receipts.append(Receipt(request.headers["webhook-id"], body, time.monotonic()))
        return Response(status_code=204)


@dataclass
class SseEvent:
    id: int
    event: str
    data: str


@dataclass
class SseFollower:
    """A resident's browser on one ward's live updates: reconnects with Last-Event-ID whenever the
    stream breaks (a killed feeds process, a restart), as EventSource does."""

    url: str
    source: str = "127.0.0.1"  # each resident its own address: feeds caps streams per client
    last_id: int | None = None
    events: list[SseEvent] = field(default_factory=list)
    reconnects: int = 0
    connected: asyncio.Event = field(default_factory=asyncio.Event)

    async def run(self) -> None:
        transport = httpx.AsyncHTTPTransport(local_address=self.source)
        async with httpx.AsyncClient(timeout=httpx.Timeout(10, read=15), transport=transport) as client:
            while True:
                headers = {"Accept": "text/event-stream"}
                if self.last_id is not None:
                    headers["Last-Event-ID"] = str(self.last_id)
                try:
                    async with client.stream("GET", self.url, headers=headers) as response:
                        if response.status_code != 200:
                            raise httpx.HTTPError(f"HTTP {response.status_code}")
                        self.connected.set()
                        await self._read(response)
                except (httpx.HTTPError, httpx.StreamError):
                    pass
                self.reconnects += 1
                await asyncio.sleep(0.5)

    async def _read(self, response: httpx.Response) -> None:
        fields: dict[str, str] = {}
        async for line in response.aiter_lines():
            if line == "":
                if "id" in fields:
                    event = SseEvent(
                        int(fields["id"]), fields.get("event", "message"), fields.get("data", "")
                    )
                    self.events.append(event)
                    self.last_id = event.id
                fields = {}
            elif not line.startswith(":"):
                name, _, value = line.partition(":")
                fields[name] = value.removeprefix(" ")

    def repeats(self) -> int:
        return sum(n - 1 for n in Counter(e.id for e in self.events).values())


async def partitions(bootstrap: str, topic: str) -> list[TopicPartition]:
    """Every partition of `topic`, from the cluster's metadata."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        (described,) = await admin.describe_topics([topic])
    finally:
        await admin.close()
    assert not described["error_code"] and described["partitions"], f"no topic {topic}"
    return [
        TopicPartition(topic, p["partition"])
        for p in sorted(described["partitions"], key=lambda p: p["partition"])
    ]


async def end_offsets(bootstrap: str, topic: str) -> dict[int, int]:
    """The next offset of each partition of `topic`: where a consumer that has read everything stands."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(await partitions(bootstrap, topic))
        return {tp.partition: end for tp, end in ends.items()}
    finally:
        await consumer.stop()


async def read_topic(bootstrap: str, topic: str) -> list:
    """Every record of `topic` from the beginning to its end now, partition by partition in order."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        parts = await partitions(bootstrap, topic)
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        records = []
        for tp in parts:
            while await consumer.position(tp) < ends[tp]:
                got = await consumer.getmany(tp, timeout_ms=1000, max_records=5000)
                records.extend(r for r in got.get(tp, []) if r.offset < ends[tp])
        return records
    finally:
        await consumer.stop()


async def group_lag(bootstrap: str, group: str, topics: list[str]) -> int:
    """Records on `topics` that consumer group `group` has not committed yet."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await admin.start()
    await consumer.start()
    try:
        committed = await admin.list_consumer_group_offsets(group)
        parts = [tp for t in topics for tp in await partitions(bootstrap, t)]
        ends = await consumer.end_offsets(parts)
        lag = 0
        for tp, end in ends.items():
            meta = committed.get(tp)
            lag += end - (meta.offset if meta is not None and meta.offset >= 0 else 0)
        return lag
    finally:
        await consumer.stop()
        await admin.close()


def latest_by_key(records: list) -> dict[str, dict | None]:
    """What a compacted topic says now: the last value per key (None: a tombstone)."""
    latest: dict[str, dict | None] = {}
    for r in records:
        latest[r.key.decode()] = json.loads(r.value) if r.value is not None else None
    return latest
