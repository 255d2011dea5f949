"""Handler wiring on the in-memory broker: needs, tombstones, responses, and dead-lettering."""

from __future__ import annotations

import base64
import uuid
from pathlib import Path

import pytest
from faststream.kafka import KafkaBroker, TestKafkaBroker
from faststream.kafka.annotations import KafkaMessage

from services.prompter.context import PrompterContext
from services.prompter.handlers import register_handlers
from services.prompter.matching import NO_PLACES
from shared.contracts import (
    DEAD_LETTERS,
    RESIDENT_RESPONSES,
    STREET_NEEDS,
    DeadLettered,
    StreetNeedChanged,
    Tombstone,
)
from shared.service import Runtime

DATA = Path(__file__).resolve().parents[2] / "data/prompter"
RAW = (DATA / "need_fly_tipping_street.json").read_bytes()
KEY = b"way/2001:fly_tipping"


class FakePublisher:
    def __init__(self) -> None:
        self.applied, self.retired, self.responses = [], [], []

    async def apply_needs(self, items):
        for item in items:
            if isinstance(item, Tombstone):
                self.retired.append(item.key)
            else:
                self.applied.append(item)

    async def count_response(self, response):
        self.responses.append(response)


@pytest.fixture
def wired():
    broker = KafkaBroker()
    runtime = Runtime(name="prompter", settings=None, broker=broker)  # type: ignore[arg-type]
    publisher = FakePublisher()
    runtime.provide(PrompterContext(None, None, NO_PLACES, publisher))  # type: ignore[arg-type]
    register_handlers(broker, runtime, "prompter-test")
    letters: list[bytes] = []

    @broker.subscriber(DEAD_LETTERS.name)
    async def collect(msg: KafkaMessage) -> None:
        letters.append(msg.body)

    return broker, publisher, letters


async def test_need_is_applied(wired):
    broker, publisher, letters = wired
    async with TestKafkaBroker(broker) as br:
        await br.publish(RAW, topic=STREET_NEEDS.name, key=KEY)
    assert publisher.applied == [StreetNeedChanged.model_validate_json(RAW)]
    assert letters == []


async def test_tombstone_retires(wired):
    broker, publisher, _ = wired
    async with TestKafkaBroker(broker) as br:
        await br.publish(None, topic=STREET_NEEDS.name, key=KEY)
    assert publisher.retired == ["way/2001:fly_tipping"] and publisher.applied == []


async def test_malformed_need_is_dead_lettered_and_the_consumer_carries_on(wired):
    broker, publisher, letters = wired
    async with TestKafkaBroker(broker) as br:
        await br.publish(b'{"area_id": 1}', topic=STREET_NEEDS.name, key=KEY)
        await br.publish(RAW, topic=STREET_NEEDS.name, key=KEY)
    (letter,) = [DeadLettered.model_validate_json(b) for b in letters]
    assert letter.service == "prompter" and letter.source_topic == STREET_NEEDS.name
    assert base64.b64decode(letter.original_b64) == b'{"area_id": 1}'
    assert base64.b64decode(letter.key_b64) == KEY
    assert "StreetNeedChanged" in letter.reason and any(e.startswith("area_kind") for e in letter.errors)
    assert len(publisher.applied) == 1


async def test_response_is_counted_and_a_bad_one_dead_lettered(wired):
    broker, publisher, letters = wired
    response = {
        "schema_version": 1,
        "response_id": str(uuid.uuid4()),
        "prompt_id": "way/2001:fly_tipping",
        "area_id": "way/2001",
        "category": "fly_tipping",
        "kind": "can_help",
        "responded_on": "2026-11-20",
    }
    async with TestKafkaBroker(broker) as br:
        await br.publish(response, topic=RESIDENT_RESPONSES.name, key=b"way/2001:fly_tipping")
        await br.publish({**response, "name": "Alice"}, topic=RESIDENT_RESPONSES.name)
    assert [str(r.response_id) for r in publisher.responses] == [response["response_id"]]
    assert [DeadLettered.model_validate_json(b).source_topic for b in letters] == [RESIDENT_RESPONSES.name]
