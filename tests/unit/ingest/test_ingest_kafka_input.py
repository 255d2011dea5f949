"""Kafka input: unauthenticated, malformed and out-of-scope records are dead-lettered; the rest go on."""

from __future__ import annotations

import base64
import datetime as dt
import json
import uuid

from aiokafka.structs import ConsumerRecord

from services.ingest.kafka_input import handle_records
from services.ingest.pipeline import Outcome
from services.ingest.repository import System

SYSTEM = System(uuid.uuid4(), "asc", "camden", frozenset({"isolation"}), None, dt.datetime.now(dt.UTC))


def _record(offset, value, key=b"secret"):
    headers = [("x-api-key", key)] if key else []
    return ConsumerRecord("council-signals.v1", 0, offset, 0, 0, b"k", value, None, len(value), 0, headers)


class FakePipeline:
    def __init__(self):
        self.seen = []

    async def accept(self, items, system, source):
        self.seen.extend(items)
        return [
            Outcome(
                i,
                "rejected",
                errors=("location: too far from any street (212 m)",),
                reason="too_far_from_street",
            )
            if item.get("event_id") == "far"
            else Outcome(i, "accepted")
            for i, item in enumerate(items)
        ]


async def test_bad_records_are_dead_lettered_and_good_ones_go_on():
    pipeline, dead = FakePipeline(), []

    async def find(key):
        return SYSTEM if key == "secret" else None

    async def publish(records):
        dead.extend(records)

    good = json.dumps({"event_id": "ok", "category": "isolation"}).encode()
    records = [
        _record(0, b"{not json"),
        _record(1, good, key=None),
        _record(2, good, key=b"wrong"),
        _record(3, json.dumps({"event_id": "x", "category": "overcrowding"}).encode()),
        _record(4, json.dumps({"event_id": "far", "category": "isolation"}).encode()),
        _record(5, good),
    ]
    await handle_records(records, pipeline=pipeline, find_system=find, publish_dead_letters=publish)
    assert [d.offset for d in dead] == [0, 1, 2, 3, 4]
    reasons = [d.reason for d in dead]
    assert reasons[0] == "invalid JSON" and "x-api-key" in reasons[1] and "unknown" in reasons[2]
    assert "overcrowding" in reasons[3] and reasons[4] == "rejected: too_far_from_street"
    assert dead[4].errors == ("location: too far from any street (212 m)",)
    assert base64.b64decode(dead[0].original_b64) == b"{not json"
    assert [i["event_id"] for i in pipeline.seen] == ["far", "ok"]
