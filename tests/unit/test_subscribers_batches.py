"""subscribe_contract_batches: what the contract or the database refuses is dead-lettered and the
rest of the poll is applied (on faststream's in-memory broker); an empty poll does not sleep."""

from __future__ import annotations

import asyncio
import base64

import anyio
import asyncpg
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import DEAD_LETTERS, STREET_NEEDS, DeadLettered, StreetNeedChanged, Tombstone
from shared.subscribers import POLL_WAIT_MS, subscribe_contract_batches
from tests.support import place_need

POISON = 13  # the version the fake database refuses


async def test_a_record_the_database_refuses_is_dead_lettered_and_the_rest_applied() -> None:
    broker = KafkaBroker()
    applied: list[int] = []
    letters: list[DeadLettered] = []

    async def apply(items: list[StreetNeedChanged | Tombstone]) -> None:
        if any(isinstance(i, StreetNeedChanged) and i.version == POISON for i in items):
            raise asyncpg.DataError("value out of int32 range")  # what asyncpg raises for such a value
        applied.extend(i.version for i in items if isinstance(i, StreetNeedChanged))

    subscribe_contract_batches(
        broker,
        STREET_NEEDS,
        service="test",
        group_id="test-batches",
        title="test",
        description="test",
        apply=apply,
        max_records=10,
    )

    @broker.subscriber(DEAD_LETTERS.name)
    async def collect(msg: KafkaMessage) -> None:
        letters.append(DeadLettered.model_validate_json(msg.body))

    async with TestKafkaBroker(broker) as test:
        for version in (1, POISON, 2):
            need = place_need("s-1", version)
            await test.publish(
                need.model_dump_json().encode(), topic=STREET_NEEDS.name, key=need.key.encode()
            )
        await test.publish(b"{not json", topic=STREET_NEEDS.name, key=b"s-1:fly_tipping")

    assert applied == [1, 2]
    refused, broken = letters
    assert refused.reason == "refused by the database: DataError"
    assert refused.errors == ("value out of int32 range",)
    assert StreetNeedChanged.model_validate_json(base64.b64decode(refused.original_b64)).version == POISON
    assert broken.reason == "value is not a valid StreetNeedChanged"
    assert base64.b64decode(broken.original_b64) == b"{not json"


async def test_an_empty_poll_polls_again_at_once_and_a_record_ends_the_wait(monkeypatch) -> None:
    """faststream's batch poll sleeps after an empty poll (a record arriving then waits for the
    sleep's end); ours waits in aiokafka's `getmany`, which returns when the first record comes."""
    broker = KafkaBroker()
    subscribe_contract_batches(
        broker,
        STREET_NEEDS,
        service="test",
        group_id="test-polls",
        title="test",
        description="test",
        apply=lambda items: asyncio.sleep(0),
        max_records=7,
    )
    (subscriber,) = broker.subscribers
    slept: list[float] = []

    async def sleep(seconds: float) -> None:
        slept.append(seconds)

    monkeypatch.setattr(anyio, "sleep", sleep)
    polls: list[tuple[int, int]] = []
    records = ("r1", "r2", "r3")

    class Consumer:  # nothing on the first poll, records on two partitions on the second
        async def getmany(self, *, timeout_ms: int, max_records: int) -> dict[str, tuple[str, ...]]:
            polls.append((timeout_ms, max_records))
            return {} if len(polls) == 1 else {"p0": records[:2], "p1": records[2:]}

    consumer = Consumer()
    assert await subscriber.get_msg(consumer) == ()
    assert await subscriber.get_msg(consumer) == records
    assert polls == [(POLL_WAIT_MS, 7), (POLL_WAIT_MS, 7)]
    assert slept == []
