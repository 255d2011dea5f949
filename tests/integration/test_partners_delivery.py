"""The webhook delivery worker on a real database: woken by the commit that queued deliveries (not its
poll), each partner's deliveries in flight bounded across the batches it has claimed, one keep-alive
connection reused per host, and every outcome recorded."""

from __future__ import annotations

import asyncio
import datetime as dt
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import asyncpg
import pytest
from aiohttp import web
from aiokafka.structs import ConsumerRecord
from standardwebhooks import Webhook

from services.partners import delivery, repository
from services.partners.delivery import DeliveryWorker, Outcome
from services.partners.geometry import AreaGeometry
from services.partners.handlers import handle_batch
from services.partners.main import MIGRATIONS
from services.partners.payloads import webhook_body
from services.partners.settings import PartnersSettings
from services.partners.signing import new_secret
from shared.contracts import STREET_NEEDS, StreetNeedChanged
from shared.db import apply_migrations, create_pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

HOUR = 3600.0  # a poll interval no test waits for: what arrives came from a wake-up


def _settings(url: str, **overrides: Any) -> PartnersSettings:
    values: dict[str, Any] = {
        "database_url": url,
        "kafka_bootstrap_servers": "127.0.0.1:9",  # the worker never talks to Kafka
        "webhook_allow_loopback": True,
        "webhook_poll_interval_s": HOUR,
        "webhook_timeout_s": 10.0,
        **overrides,
    }
    return PartnersSettings(_env_file=None, **values)


def _records(ward: str, n: int, tag: str) -> tuple[ConsumerRecord, ...]:
    records = []
    for i in range(n):
        need = StreetNeedChanged(
            area_id=f"way/{tag}-{i}",
            area_kind="street",
            area_name=f"Test {i}",
            ward_code=ward,
            street_ids=(f"way/{tag}-{i}",),
            category="fly_tipping",
            sensitivity="place",
            count=3,
            since=dt.date(2026, 11, 1),
            period="live",
            published_at=dt.datetime.now(dt.UTC).replace(second=0, microsecond=0),
            version=1,
        )
        value = need.model_dump_json().encode()
        records.append(
            ConsumerRecord(STREET_NEEDS.name, 0, i, 0, 0, need.key.encode(), value, None, 0, 0, ())
        )
    return tuple(records)


async def _no_dead_letters(letters: object) -> None:
    pytest.fail(f"nothing here is malformed: {letters}")


async def _store(pool: asyncpg.Pool, records: tuple[ConsumerRecord, ...]) -> None:
    """What the street-needs.v1 consumer does with a polled batch (one transaction, then commit)."""
    await handle_batch(records, pool=pool, geometry=AreaGeometry(), publish_dead_letters=_no_dead_letters)


async def _until(check: Callable[[], Awaitable[Any]], what: str) -> Any:
    """Look again until `check()` is truthy; fail naming what never happened."""
    deadline = asyncio.get_running_loop().time() + 60.0
    while not (result := await check()):
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.05)
    return result


@pytest.fixture
async def pool(fresh_database_url: str) -> AsyncIterator[asyncpg.Pool]:
    pool = await create_pool(fresh_database_url)
    async with pool.acquire() as conn:
        await apply_migrations(conn, "partners", MIGRATIONS)
    yield pool
    await pool.close()


async def _webhook(pool: asyncpg.Pool, name: str, url: str, ward: str) -> tuple[dict[str, Any], str]:
    """A partner of its own and its webhook for `ward`: (the webhook, its secret)."""
    secret = new_secret()
    async with pool.acquire() as conn:
        partner = await repository.create_partner(conn, name, f"hash-{name}")
        return await repository.create_webhook(conn, partner["id"], url, [], [ward], secret), secret


async def _statuses(pool: asyncpg.Pool) -> Counter[str]:
    async with pool.acquire() as conn:
        return Counter(r["status"] for r in await conn.fetch("SELECT status FROM partners.deliveries"))


class Receiver:
    """A loopback webhook receiver (aiohttp): verifies each signature, notes the connection it came on."""

    def __init__(self) -> None:
        self.secrets: dict[str, str] = {}
        self.received: list[tuple[str, str]] = []  # (webhook-id, connection's client address)
        self.arrived = asyncio.Event()

    async def __aenter__(self) -> Receiver:
        app = web.Application()
        app.router.add_post("/{name}", self._hook)
        self.runner = web.AppRunner(app, access_log=None)
        await self.runner.setup()
        site = web.TCPSite(self.runner, "127.0.0.1", 0)
        await site.start()
        self.base = f"http://127.0.0.1:{self.runner.addresses[0][1]}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.runner.cleanup()

    async def _hook(self, request: web.Request) -> web.Response:
        body = await request.read()
        Webhook(self.secrets[request.match_info["name"]]).verify(body, dict(request.headers))
        peer = request.transport.get_extra_info("peername") if request.transport else None
        self.received.append((request.headers["webhook-id"], str(peer)))
        self.arrived.set()
        return web.Response(status=204)


@pytest.fixture
async def worker_for(pool: asyncpg.Pool) -> AsyncIterator[Callable[..., Awaitable[DeliveryWorker]]]:
    """Start a delivery worker with these settings; it is stopped (and its sessions closed) after the test."""
    tasks: list[asyncio.Task[None]] = []

    async def start(settings: PartnersSettings) -> DeliveryWorker:
        worker = DeliveryWorker(pool, settings)
        tasks.append(asyncio.create_task(worker.run()))
        await worker.idle.wait()  # it has listened, looked, found nothing due, and waits
        return worker

    yield start
    for task in tasks:
        task.cancel()
    await asyncio.gather(*tasks, return_exceptions=True)


async def test_an_idle_worker_is_woken_by_the_commit_that_queued_deliveries(
    pool, worker_for, fresh_database_url, random_id
):
    ward = f"W{random_id}"
    async with Receiver() as receiver:
        hook, receiver.secrets[random_id] = await _webhook(
            pool, random_id, f"{receiver.base}/{random_id}", ward
        )
        worker = await worker_for(_settings(fresh_database_url))

        await _store(pool, _records(ward, 1, random_id))  # the consumer's transaction commits
        await asyncio.wait_for(receiver.arrived.wait(), 60)  # sooner than its hourly poll: woken
        assert len(receiver.received) == 1
        await _until(lambda: _delivered(pool, 1), "the delivery recorded")

        # A replay queues in its own transaction: that commit wakes the worker too.
        await _until(lambda: _is_set(worker.idle), "the worker waiting again")
        receiver.arrived.clear()
        async with pool.acquire() as conn, conn.transaction():
            since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
            assert await repository.replay_history(conn, hook, since, None, webhook_body) == 1
        await asyncio.wait_for(receiver.arrived.wait(), 60)
        await _until(lambda: _delivered(pool, 2), "the replay recorded")
    assert [message for message, _ in receiver.received] == [receiver.received[0][0]] * 2  # same webhook-id


async def test_a_worker_whose_listening_connection_is_lost_listens_again_at_once(
    pool, worker_for, fresh_database_url, random_id
):
    ward = f"W{random_id}"
    async with Receiver() as receiver:
        _, receiver.secrets[random_id] = await _webhook(pool, random_id, f"{receiver.base}/{random_id}", ward)
        worker = await worker_for(_settings(fresh_database_url))
        lost = worker.listener.pid
        assert lost is not None
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT pg_terminate_backend($1)", lost)

        async def listening_again() -> bool:
            return worker.listener.pid not in (None, lost) and worker.idle.is_set()

        await _until(listening_again, "a new listening connection, long before the hourly poll")
        await _store(pool, _records(ward, 1, random_id))
        await asyncio.wait_for(receiver.arrived.wait(), 60)  # woken through the new connection
        await _until(lambda: _delivered(pool, 1), "the delivery recorded")


async def _delivered(pool: asyncpg.Pool, n: int) -> bool:
    return (await _statuses(pool))["delivered"] == n


async def _is_set(event: asyncio.Event) -> bool:
    return event.is_set()


async def test_one_partner_reuses_one_keep_alive_connection(pool, worker_for, fresh_database_url, random_id):
    ward = f"W{random_id}"
    async with Receiver() as receiver:
        _, receiver.secrets[random_id] = await _webhook(pool, random_id, f"{receiver.base}/{random_id}", ward)
        await worker_for(_settings(fresh_database_url, webhook_partner_concurrency=1, webhook_batch_size=3))
        await _store(pool, _records(ward, 7, random_id))  # three batches, one delivery at a time
        await _until(lambda: _delivered(pool, 7), "seven deliveries recorded")
    assert len({message for message, _ in receiver.received}) == 7
    assert len({peer for _, peer in receiver.received}) == 1  # every request on the same connection


async def test_each_partner_has_at_most_its_concurrency_in_flight_across_batches(
    pool, worker_for, fresh_database_url, random_id, monkeypatch
):
    ward = f"W{random_id}"
    first, _ = await _webhook(pool, f"{random_id}a", "http://127.0.0.1:9/a", ward)
    second, _ = await _webhook(pool, f"{random_id}b", "http://127.0.0.1:9/b", ward)
    in_flight: Counter[Any] = Counter()
    peak: Counter[Any] = Counter()
    release = asyncio.Event()

    async def held_send(clients: object, settings: object, item: dict[str, Any]) -> Outcome:
        partner = item["partner_id"]
        in_flight[partner] += 1
        peak[partner] = max(peak[partner], in_flight[partner])
        await release.wait()  # every receiver answers only when the test says so
        in_flight[partner] -= 1
        return Outcome(True, 204)

    monkeypatch.setattr(delivery, "send", held_send)
    # Batches of 4 and two in flight: 8 of the 12 deliveries are claimed while the first ones are held.
    settings = _settings(fresh_database_url, webhook_partner_concurrency=2, webhook_batch_size=4)
    await worker_for(settings)
    await _store(pool, _records(ward, 6, random_id))  # 6 changes x 2 webhooks = 12 deliveries

    async def claimed() -> bool:
        async with pool.acquire() as conn:
            leased = await conn.fetchval(
                "SELECT count(*) FROM partners.deliveries"
                " WHERE status = 'pending' AND next_attempt_at > now()"
            )
        return leased == delivery.PIPELINE * settings.webhook_batch_size

    await _until(claimed, "two batches claimed")
    for _ in range(10):
        await asyncio.sleep(0)  # let the second batch's deliveries reach their partners' gates
    # Each partner has two deliveries in each claimed batch: two in flight, two waiting at its gate.
    assert dict(in_flight) == {first["partner_id"]: 2, second["partner_id"]: 2}
    release.set()
    await _until(lambda: _delivered(pool, 12), "all twelve recorded delivered")
    assert dict(peak) == {first["partner_id"]: 2, second["partner_id"]: 2}
