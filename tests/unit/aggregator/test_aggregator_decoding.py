"""The fast decoder accepts exactly what the SignalAnonymised contract accepts, with the same values."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from aiokafka.structs import ConsumerRecord

from services.aggregator.decoding import FAST, FastSignal, decode_record
from services.aggregator.processing import parse_record
from shared.contracts import SignalAnonymised


def record(value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord("signals-anonymised.v1", 1, 3, 0, 0, b"s1", value, None, len(value or b""), 2, [])


def valid(**changes) -> dict:
    event = SignalAnonymised(
        event_id=uuid.uuid4(),
        category="fly_tipping",
        sensitivity="place",
        action="withdrawn",
        street_id="osm-w1",
        subject_key="0f" * 32,
        key_version=2,
        occurred_at=dt.datetime(2026, 5, 1, 10, tzinfo=dt.UTC),
        council_id="camden",
        source="http",
    )
    return {**json.loads(event.model_dump_json()), **changes}


def test_the_fast_struct_has_the_contracts_fields() -> None:
    # Should the contract change, every record would silently take the slow path: say so here.
    assert FAST and set(FastSignal.__struct_fields__) == set(SignalAnonymised.model_fields)


def test_a_valid_record_decodes_fast_to_the_same_values() -> None:
    body = valid(previous_keys=["1a" * 32])
    fast = decode_record(record(json.dumps(body).encode()))
    slow = parse_record(record(json.dumps(body).encode()))
    assert isinstance(fast, FastSignal) and isinstance(slow, SignalAnonymised)
    for name in SignalAnonymised.model_fields:
        assert getattr(fast, name) == getattr(slow, name), name
    assert fast.model_copy(update={"subject_key": "2b" * 32}).subject_key == "2b" * 32


@pytest.mark.parametrize(
    "changes",
    [
        {"subject_key": "AB" * 32},  # the contract wants lowercase hex
        {"subject_key": "ab" * 32 + "\n"},
        {"subject_key": "ab" * 31},
        {"previous_keys": ["zz" * 32]},
        {"previous_keys": ["ab" * 32] * 17},
        {"occurred_at": "2026-05-01T10:00:00"},  # no timezone
        {"sensitivity": "person"},  # contradicts the category
        {"category": "no_such_category"},
        {"action": "deleted"},
        {"source": "fax"},
        {"key_version": 0},
        {"street_id": "s" * 65},
        {"schema_version": 2},
        {"name": "Someone"},  # unknown fields are refused, personal data above all
    ],
)
def test_what_the_contract_refuses_is_dead_lettered_with_its_errors(changes: dict) -> None:
    value = json.dumps(valid(**changes)).encode()
    decoded = decode_record(record(value))
    assert isinstance(decoded, tuple)
    expected = parse_record(record(value))
    assert isinstance(expected, tuple) and decoded[0] == expected[0]
    letter, same = json.loads(decoded[1]), json.loads(expected[1])
    assert letter["errors"] == same["errors"] and letter["original_b64"] == same["original_b64"]


def test_what_only_the_lax_contract_accepts_is_still_accepted() -> None:
    value = json.dumps(valid(key_version="3")).encode()  # pydantic's lax mode takes "3" for an int
    decoded = decode_record(record(value))
    assert isinstance(decoded, SignalAnonymised) and decoded.key_version == 3
    assert isinstance(decode_record(record(None)), tuple)
