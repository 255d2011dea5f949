"""Ingest keys each anonymised signal by its street's place unit (the gazetteer's `signal_key`)."""

from __future__ import annotations

import asyncio
import datetime as dt
import uuid

from services.ingest.pipeline import Pipeline
from shared.contracts import SIGNALS_ANONYMISED, Category, Sensitivity, SignalAnonymised
from shared.privacy import MIN_STREET_ADDRESSES


class _Producer:
    """Records what is sent; every send is acknowledged at once."""

    def __init__(self) -> None:
        self.sent: list[tuple[str, bytes, bytes]] = []

    async def send(self, topic: str, value: bytes, key: bytes, timestamp_ms: int) -> asyncio.Future[None]:
        self.sent.append((topic, key, value))
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        done.set_result(None)
        return done


def _event(street_id: str) -> SignalAnonymised:
    return SignalAnonymised(
        event_id=uuid.uuid4(),
        category=Category.FLY_TIPPING,
        sensitivity=Sensitivity.PLACE,
        action="raised",
        street_id=street_id,
        subject_key="ab" * 32,
        key_version=1,
        occurred_at=dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
        council_id="camden",
        source="http",
    )


async def test_signals_of_one_place_unit_share_its_key(camden_gazetteer):
    unit = next(u for u in camden_gazetteer.units_for(MIN_STREET_ADDRESSES) if len(u.street_ids) > 1)
    producer = _Producer()
    pipeline = Pipeline(None, producer, camden_gazetteer, None, 100.0)  # type: ignore[arg-type]
    await pipeline._produce([_event(s) for s in unit.street_ids])
    assert [(topic, key) for topic, key, _ in producer.sent] == [
        (SIGNALS_ANONYMISED.name, unit.id.encode())
    ] * len(unit.street_ids)
    assert [SignalAnonymised.model_validate_json(v).street_id for _, _, v in producer.sent] == list(
        unit.street_ids
    )
