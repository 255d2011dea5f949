"""shared.subscribers on real Kafka: one-record consumers and poll-at-a-time consumers keep each key in
order, lose nothing, apply nothing twice, and dead-letter what breaks the contract."""

from __future__ import annotations

import asyncio
import base64
import contextlib
from collections import defaultdict
from collections.abc import AsyncIterator, Awaitable, Callable
from typing import Any

import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from faststream.kafka import KafkaBroker

from shared.contracts import DEAD_LETTERS, STREET_NEEDS, DeadLettered, StreetNeedChanged, Tombstone
from shared.kafka import make_broker
from shared.settings import CommonSettings
from shared.subscribers import subscribe_contract, subscribe_contract_batches
from tests.support import place_need

pytestmark = pytest.mark.integration

KEYS = 12
VERSIONS = 15


@contextlib.asynccontextmanager
async def _producer_and_dead_letters(
    settings: CommonSettings,
) -> AsyncIterator[tuple[AIOKafkaProducer, AIOKafkaConsumer]]:
    """A producer, and a reader of the dead letters written from now on."""
    producer = AIOKafkaProducer(bootstrap_servers=settings.kafka_bootstrap_servers, acks="all")
    dead = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=settings.kafka_bootstrap_servers,
        auto_offset_reset="latest",
        enable_auto_commit=False,
    )
    await producer.start()
    await dead.start()
    await dead.seek_to_end()
    try:
        yield producer, dead
    finally:
        await producer.stop()
        await dead.stop()


async def _write(producer: AIOKafkaProducer, areas: list[str], bad_key: bytes, gone: str) -> None:
    """VERSIONS needs per area (version after version), a malformed record and a tombstone."""
    for version in range(1, VERSIONS + 1):
        for area in areas:
            need = place_need(area, version)
            await producer.send(STREET_NEEDS.name, need.model_dump_json().encode(), key=need.key.encode())
    await producer.send(STREET_NEEDS.name, b"{not json", key=bad_key)
    await producer.send(STREET_NEEDS.name, None, key=gone.encode())
    await producer.flush()


def _polls_broker(
    settings: CommonSettings, group: str, apply: Callable[[list[Any]], Awaitable[None]], **options: int
) -> KafkaBroker:
    """A broker whose batch consumer of street-needs (group `group`) hands each poll to `apply`."""
    broker = make_broker(settings, client_id=group)
    subscribe_contract_batches(
        broker,
        STREET_NEEDS,
        service="test",
        group_id=group,
        title="test/street-needs",
        description="polls applied by the test",
        apply=apply,
        **options,
    )
    return broker


async def _letters_for(dead: AIOKafkaConsumer, key: bytes) -> list[DeadLettered]:
    """The dead letters of `key` among those read now (other tests write to the same topic)."""
    return [
        letter
        for records in (await dead.getmany(timeout_ms=200)).values()
        for r in records
        if (letter := DeadLettered.model_validate_json(r.value)).key_b64 == base64.b64encode(key).decode()
    ]


async def test_several_consumers_keep_each_key_in_order(
    kafka_settings: CommonSettings, random_id: str
) -> None:
    areas = [f"sub-{random_id}-{i}" for i in range(KEYS)]
    applied: dict[str, list[int]] = defaultdict(list)
    in_flight, most_in_flight = 0, 0
    removed: list[str] = []

    async def apply(item: StreetNeedChanged | Tombstone) -> None:
        nonlocal in_flight, most_in_flight
        if isinstance(item, Tombstone):
            if item.key.startswith(f"sub-{random_id}-"):  # not another test's tombstone
                removed.append(item.key)
            return
        if not item.area_id.startswith(f"sub-{random_id}-"):
            return  # another test's record on the same topic
        in_flight += 1
        most_in_flight = max(most_in_flight, in_flight)
        try:
            await asyncio.sleep(0.01)  # long enough for other partitions' records to be applied meanwhile
            applied[item.area_id].append(item.version)
        finally:
            in_flight -= 1

    broker = make_broker(kafka_settings, client_id=f"test-subscribers-{random_id}")
    subscribe_contract(
        broker,
        STREET_NEEDS,
        service="test",
        group_id=f"test-subscribers-{random_id}",
        title="test/street-needs",
        description="records applied by the test",
        apply=apply,
        consumers=3,
    )
    bad_key = f"sub-{random_id}-bad:fly_tipping".encode()
    letters: list[DeadLettered] = []
    async with _producer_and_dead_letters(kafka_settings) as (producer, dead):
        await broker.start()
        try:
            await _write(producer, areas, bad_key, gone=f"sub-{random_id}-0:fly_tipping")
            while sum(map(len, applied.values())) < KEYS * VERSIONS or not removed or not letters:
                letters += await _letters_for(dead, bad_key)
        finally:
            await broker.stop()

    assert {area: versions for area, versions in applied.items()} == {
        area: list(range(1, VERSIONS + 1)) for area in areas
    }  # every record once, each key's in the order written
    assert most_in_flight > 1  # records of different partitions were applied concurrently
    assert f"sub-{random_id}-0:fly_tipping" in removed
    assert letters[0].source_topic == STREET_NEEDS.name
    assert base64.b64decode(letters[0].original_b64) == b"{not json"
    assert letters[0].service == "test"


async def test_batches_apply_each_poll_at_once_and_a_failed_poll_comes_again_whole(
    kafka_settings: CommonSettings, random_id: str
) -> None:
    """subscribe_contract_batches: a poll is handed over whole, each key in order; when `apply` raises,
    the poll is read again (nothing committed); bad records are dead-lettered; offsets are committed,
    so a restarted consumer of the group goes on after them."""
    prefix = f"bat-{random_id}-"
    areas = [f"{prefix}{i}" for i in range(KEYS)]
    applied: dict[str, list[int]] = defaultdict(list)
    polls: list[int] = []  # how many of this test's records each poll carried
    failed = False
    removed: list[str] = []
    sentinel_applied = asyncio.Event()

    async def apply(items: list[StreetNeedChanged | Tombstone]) -> None:
        nonlocal failed
        ours = [i for i in items if i.key.startswith(prefix)]
        if ours and not failed:
            failed = True  # the first poll with our records fails once: it must come again whole
            raise RuntimeError("simulated failure")
        polls.append(len(ours))
        for item in ours:
            if isinstance(item, Tombstone):
                removed.append(item.key)
            else:
                applied[item.area_id].append(item.version)
                if item.area_id == f"{prefix}sentinel":
                    sentinel_applied.set()

    def consumer_broker():
        return _polls_broker(kafka_settings, f"test-batches-{random_id}", apply, max_records=100)

    bad_key = f"{prefix}bad:fly_tipping".encode()
    letters: list[DeadLettered] = []
    async with _producer_and_dead_letters(kafka_settings) as (producer, dead):
        # Written before the consumer starts, so its polls find many records waiting.
        await _write(producer, areas, bad_key, gone=f"{prefix}0:fly_tipping")
        broker = consumer_broker()
        await broker.start()
        try:
            while sum(map(len, applied.values())) < KEYS * VERSIONS or not removed or not letters:
                letters += await _letters_for(dead, bad_key)
        finally:
            await broker.stop()

        # The group's offsets were committed: a new consumer of it reads only what comes after.
        before = {area: list(versions) for area, versions in applied.items()}
        sentinel = place_need(f"{prefix}sentinel", 1)
        await producer.send_and_wait(
            STREET_NEEDS.name, sentinel.model_dump_json().encode(), key=sentinel.key.encode()
        )
        broker = consumer_broker()
        await broker.start()
        try:
            await sentinel_applied.wait()
        finally:
            await broker.stop()

    assert failed
    assert before == {area: list(range(1, VERSIONS + 1)) for area in areas}  # once each, in order
    assert {a: v for a, v in applied.items() if a != sentinel.area_id} == before  # nothing again
    assert max(polls) > 1  # records were handed over a poll at a time
    assert removed == [f"{prefix}0:fly_tipping"]
    assert base64.b64decode(letters[0].original_b64) == b"{not json" and letters[0].service == "test"


async def test_a_resting_consumer_applies_what_came_during_its_rest_in_one_poll(
    kafka_settings: CommonSettings, random_id: str
) -> None:
    """`rest_ms` (the notifier's and partners' pacing): records sent one by one while the consumer
    rests after a short poll are applied together by the next poll, not a poll each."""
    prefix = f"rest-{random_id}-"
    polls: list[tuple[int, list[str]]] = []  # (records in the poll, this test's keys among them)
    changed = asyncio.Event()

    async def apply(items: list[StreetNeedChanged | Tombstone]) -> None:
        if ours := [i.key for i in items if i.key.startswith(prefix)]:
            polls.append((len(items), ours))
            changed.set()

    async def send(area: str) -> str:
        need = place_need(area, 1)
        await producer.send_and_wait(
            STREET_NEEDS.name, need.model_dump_json().encode(), key=need.key.encode()
        )
        return need.key

    async def applied(keys: set[str]) -> None:
        while not keys <= {k for _, ours in polls for k in ours}:
            changed.clear()
            await changed.wait()

    # The rest is far longer than sending the records below takes.
    broker = _polls_broker(kafka_settings, f"test-rest-{random_id}", apply, max_records=500, rest_ms=5_000)
    async with _producer_and_dead_letters(kafka_settings) as (producer, _dead):
        await broker.start()
        try:
            # The group reads the topic from its start (other tests' records: full polls, no rest).
            # Once a record of ours comes alone in a short poll, the consumer has caught up and rests.
            for i in range(100):
                key = await send(f"{prefix}marker-{i}")
                await applied({key})
                if polls[-1] == (1, [key]):
                    break
            before = len(polls)
            keys = {await send(f"{prefix}{i}") for i in range(20)}  # one at a time, during the rest
            await applied(keys)
        finally:
            await broker.stop()

    assert polls[before - 1][0] == 1  # the consumer was keeping up: a lone record, a short poll
    # Not a poll each: the poll after the rest takes what was fetched meanwhile. At most one more,
    # for records that reached a partition whose earlier records were still waiting to be taken
    # (aiokafka fetches a partition again only once they have been).
    assert set().union(*(ours for _, ours in polls[before:])) == keys
    assert len(polls) - before <= 2
