"""Topic.decode: every consumer reads its records through its topic's contract, the same way."""

from __future__ import annotations

import datetime as dt
import json

import pytest

from shared.contracts import (
    PROMPTS,
    RESIDENT_RESPONSES,
    STREET_NEEDS,
    ContractError,
    PromptRetired,
    ResidentResponded,
    StreetNeedChanged,
    Tombstone,
)

NEED = StreetNeedChanged(
    area_id="s1",
    area_kind="street",
    area_name="Agar Grove",
    street_ids=("s1",),
    category="fly_tipping",
    sensitivity="place",
    count=3,
    since=dt.date(2026, 11, 1),
    period="live",
    published_at=dt.datetime(2026, 11, 20, 10, 0, tzinfo=dt.UTC),
    version=2,
)


def test_a_valid_record_decodes_to_its_model():
    assert STREET_NEEDS.decode(b"s1:fly_tipping", NEED.model_dump_json().encode()) == NEED


def test_a_union_topic_decodes_by_discriminator():
    retired = PromptRetired(
        prompt_id="s1:fly_tipping", area_id="s1", category="fly_tipping", retired_at=dt.datetime.now(dt.UTC)
    )
    assert PROMPTS.decode(b"s1:fly_tipping", retired.model_dump_json().encode()) == retired


def test_a_null_value_on_a_compacted_topic_is_a_tombstone():
    assert STREET_NEEDS.decode(b"s1:fly_tipping", None) == Tombstone("s1:fly_tipping")
    assert PROMPTS.decode(b"s1:isolation", b"") == Tombstone("s1:isolation")


@pytest.mark.parametrize(
    ("topic", "key", "value", "reason"),
    [
        (STREET_NEEDS, b"\xff\xfe", None, "key is not UTF-8"),
        (STREET_NEEDS, b"s1:not_a_category", None, "key is not"),
        (STREET_NEEDS, b"no-category", None, "key is not"),
        (STREET_NEEDS, None, None, "names nothing"),
        (RESIDENT_RESPONSES, b"p1", None, "names nothing"),  # not compacted: no tombstones
        (STREET_NEEDS, b"s1:fly_tipping", b"{not json", "not a valid"),
        (STREET_NEEDS, b"s2:fly_tipping", None, None),  # placeholder row replaced below
    ],
)
def test_broken_records_raise_a_contract_error_with_a_reason(topic, key, value, reason):
    if reason is None:  # a key that disagrees with the value's own key
        key, value, reason = b"s2:fly_tipping", NEED.model_dump_json().encode(), "does not match"
    with pytest.raises(ContractError) as caught:
        topic.decode(key, value)
    assert reason in caught.value.reason


def test_field_errors_name_the_field_but_never_echo_the_value():
    bad = json.loads(NEED.model_dump_json()) | {"count": "secret-value-42"}
    with pytest.raises(ContractError) as caught:
        STREET_NEEDS.decode(b"s1:fly_tipping", json.dumps(bad).encode())
    assert any(e.startswith("count:") for e in caught.value.errors)
    assert "secret-value-42" not in " ".join(caught.value.errors)


def test_events_without_a_key_of_their_own_decode_whatever_the_record_key():
    response = ResidentResponded(
        response_id="0b7f6a8e-3c1b-4a38-9c53-5c2f8c1e9d10",
        prompt_id="s1:fly_tipping",
        area_id="s1",
        category="fly_tipping",
        responded_on=dt.date(2026, 11, 20),
    )
    assert RESIDENT_RESPONSES.decode(b"s1:fly_tipping", response.model_dump_json().encode()) == response


def test_a_version_beyond_a_postgres_integer_is_refused_not_stored():
    """Every consumer stores versions in `integer` columns: a larger one must be dead-lettered by the
    contract, not fail each retry and hold its partition (a prompter was stuck on one)."""
    value = json.loads(NEED.model_dump_json())
    value["version"] = 2**31
    with pytest.raises(ContractError):
        STREET_NEEDS.decode(b"s1:fly_tipping", json.dumps(value).encode())
    value["version"] = 2**31 - 1
    assert STREET_NEEDS.decode(b"s1:fly_tipping", json.dumps(value).encode()).version == 2**31 - 1
