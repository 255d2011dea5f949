"""The street-needs.v1 handler's wiring (in-memory broker): bad input is dead-lettered, never stored."""

from __future__ import annotations

from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.partners.context import PartnersContext
from services.partners.geometry import AreaGeometry
from services.partners.handlers import register_handlers
from shared.contracts import DEAD_LETTERS, STREET_NEEDS
from shared.ratelimit import TokenBucket
from shared.service import Runtime


async def test_malformed_records_are_dead_lettered_and_consumption_carries_on() -> None:
    broker = KafkaBroker()
    runtime = Runtime(name="partners", settings=None, broker=broker)  # no pool: nothing may be stored
    runtime.provide(
        PartnersContext(settings=None, pool=None, geometry=AreaGeometry(), replay_limiter=TokenBucket(1, 1))
    )
    register_handlers(broker, runtime, "partners")
    letters: list[dict] = []

    @broker.subscriber(DEAD_LETTERS.name)
    async def dead(body: dict) -> None:
        letters.append(body)

    async with TestKafkaBroker(broker) as test:
        await test.publish(b"{not json", topic=STREET_NEEDS.name, key=b"way/1:litter")
        await test.publish(b'{"schema_version": 1}', topic=STREET_NEEDS.name, key=b"way/1:litter")

    assert [d["source_topic"] for d in letters] == [STREET_NEEDS.name] * 2
    assert all(d["service"] == "partners" for d in letters)
    assert letters[1]["errors"]  # names the missing fields
