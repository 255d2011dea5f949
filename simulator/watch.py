"""Watch `signals-anonymised.v1` for given event ids: proof (and timing) that simulated signals arrived."""

from __future__ import annotations

import asyncio
import time
import uuid
from collections.abc import Iterable

from aiokafka import AIOKafkaConsumer, TopicPartition

from shared.contracts import SIGNALS_ANONYMISED, SignalAnonymised
from shared.kafka import client_options
from shared.settings import CommonSettings

__all__ = ["AnonymisedWatcher"]


class AnonymisedWatcher:
    """Reads the anonymised topic from its end at `start()`, with no consumer group (nothing committed).

    `arrivals` maps each awaited event id to the monotonic time it was read.
    """

    def __init__(self, settings: CommonSettings) -> None:
        self._consumer = AIOKafkaConsumer(**client_options(settings), group_id=None, enable_auto_commit=False)
        self.arrivals: dict[uuid.UUID, float] = {}
        self.events: dict[uuid.UUID, SignalAnonymised] = {}

    async def start(self) -> None:
        """Connect and position at the topic's current end (call before sending)."""
        await self._consumer.start()
        topic = SIGNALS_ANONYMISED
        assigned = [TopicPartition(topic.name, p) for p in range(topic.partitions)]  # from the registry
        self._consumer.assign(assigned)
        await self._consumer.seek_to_end(*assigned)
        for tp in assigned:  # resolve the lazy seek now, so later records are not skipped
            await self._consumer.position(tp)

    async def wait_for(self, event_ids: Iterable[uuid.UUID], timeout_s: float) -> set[uuid.UUID]:
        """Read until every id has arrived or the timeout passes; returns the ids still missing."""
        missing = set(event_ids) - set(self.arrivals)
        deadline = time.monotonic() + timeout_s
        while missing and time.monotonic() < deadline:
            batches = await self._consumer.getmany(timeout_ms=500, max_records=5000)
            now = time.monotonic()
            for records in batches.values():
                for record in records:
                    event = SignalAnonymised.model_validate_json(record.value)
                    self.arrivals.setdefault(event.event_id, now)
                    self.events.setdefault(event.event_id, event)
                    missing.discard(event.event_id)
            await asyncio.sleep(0)
        return missing

    async def stop(self) -> None:
        await self._consumer.stop()
