"""subscribe_contract_batches on faststream's in-memory broker: what the contract or the database
refuses is dead-lettered, and the rest of the poll is applied."""

from __future__ import annotations

import base64

import asyncpg
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import DEAD_LETTERS, STREET_NEEDS, DeadLettered, StreetNeedChanged, Tombstone
from shared.subscribers import subscribe_contract_batches
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
