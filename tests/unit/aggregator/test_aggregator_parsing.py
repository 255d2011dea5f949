"""Records become events, or dead letters naming what is wrong; nothing invalid is accepted."""

from __future__ import annotations

import datetime as dt
import json
import uuid

from aiokafka.structs import ConsumerRecord

from services.aggregator.processing import parse_record
from shared.contracts import DeadLettered, SignalAnonymised


def record(value: bytes | None, offset: int = 7) -> ConsumerRecord:
    return ConsumerRecord(
        "signals-anonymised.v1", 2, offset, 0, 0, b"s1", value, None, len(value or b""), 2, []
    )


def valid(**changes) -> dict:
    event = SignalAnonymised(
        event_id=uuid.uuid4(),
        category="graffiti",
        sensitivity="place",
        action="raised",
        street_id="s1",
        subject_key="ab" * 32,
        key_version=1,
        occurred_at=dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC),
        council_id="c",
        source="kafka",
    )
    return {**json.loads(event.model_dump_json()), **changes}


def dead(value: bytes | None) -> DeadLettered:
    parsed = parse_record(record(value))
    assert isinstance(parsed, tuple)
    return DeadLettered.model_validate_json(parsed[1])


def test_a_valid_record_is_an_event() -> None:
    parsed = parse_record(record(json.dumps(valid()).encode()))
    assert isinstance(parsed, SignalAnonymised) and parsed.street_id == "s1"


def test_invalid_records_are_dead_letters_with_their_position_and_reason() -> None:
    letter = dead(json.dumps(valid(subject_key="not-a-pseudonym")).encode())
    assert letter.partition == 2 and letter.offset == 7 and letter.service == "aggregator"
    assert any(e.startswith("subject_key") for e in letter.errors)
    assert dead(b"{not json").errors
    assert dead(None).errors == ("empty value",)
    # A place category claiming to be a person one (or the reverse) is refused, not reclassified.
    assert "contradicts" in dead(json.dumps(valid(sensitivity="person")).encode()).errors[0]
