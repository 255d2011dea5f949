"""The event contracts: minimisation, validation, privacy shape, registry, and docs/ in step with code."""

from __future__ import annotations

import datetime as dt
import json
import uuid

import pytest
from pydantic import TypeAdapter, ValidationError

from services import docs
from shared.contracts import (
    ALL_TOPICS,
    CATALOGUE,
    PROMPTS,
    CouncilSignal,
    PromptEvent,
    PromptRetired,
    Sensitivity,
    SignalAnonymised,
    StreetNeedChanged,
)

NOW = dt.datetime(2026, 11, 1, 9, 30, tzinfo=dt.UTC)


def council_signal(**over) -> dict:
    body = {
        "event_id": "asc-1",
        "category": "isolation",
        "action": "raised",
        "subject_ref": "P-123",
        "occurred_at": NOW.isoformat(),
        "location": {"lat": 51.54, "lon": -0.13},
    }
    body.update(over)
    return body


def test_council_signal_drops_fields_the_contract_does_not_name():
    signal = CouncilSignal.model_validate(council_signal(date_of_birth="1941-02-03", nhs_number="x"))
    dumped = signal.model_dump_json()
    assert "1941" not in dumped and "nhs" not in dumped


@pytest.mark.parametrize(
    "location, message",
    [
        ({"lat": 51.5}, "lat and lon must be given together"),
        ({}, "give lat and lon, street_id, or address"),
        ({"lat": 99, "lon": 0}, "less than or equal to 90"),
    ],
)
def test_location_must_say_where(location, message):
    with pytest.raises(ValidationError, match=message):
        CouncilSignal.model_validate(council_signal(location=location))


def test_occurred_at_needs_a_timezone():
    with pytest.raises(ValidationError, match="timezone"):
        CouncilSignal.model_validate(council_signal(occurred_at="2026-11-01T09:30:00"))


def test_anonymised_signal_refuses_personal_fields():
    with pytest.raises(ValidationError, match="Extra inputs are not permitted"):
        SignalAnonymised(
            event_id=uuid.uuid4(),
            category="isolation",
            sensitivity="person",
            action="raised",
            street_id="s-1",
            subject_key="a" * 64,
            key_version=1,
            occurred_at=NOW,
            council_id="camden",
            source="http",
            name="Ann",
        )


def _need(**over) -> dict:
    body = {
        "area_id": "u40-abc",
        "area_kind": "unit",
        "area_name": "Agar Grove and 2 nearby streets",
        "street_ids": ("s-1",),
        "category": "isolation",
        "sensitivity": "person",
        "band": "some",
        "since": "2026-10-01",
        "period": "2026-10",
        "published_at": NOW.isoformat(),
        "version": 1,
    }
    body.update(over)
    return body


def test_person_need_is_published_as_a_band_never_a_count():
    assert StreetNeedChanged.model_validate(_need()).key == "u40-abc:isolation"
    with pytest.raises(ValidationError, match="never a count"):
        StreetNeedChanged.model_validate(_need(count=9))
    with pytest.raises(ValidationError, match="never a count"):
        StreetNeedChanged.model_validate(_need(band=None))


def test_place_need_carries_a_count():
    need = _need(category="fly_tipping", sensitivity="place", band=None, count=3, period="live")
    assert StreetNeedChanged.model_validate(need).count == 3
    with pytest.raises(ValidationError, match="publish a count"):
        StreetNeedChanged.model_validate(_need(category="graffiti", sensitivity="place"))


def test_prompt_events_are_told_apart_by_event_type():
    retired = PromptRetired(prompt_id="u1:isolation", area_id="u1", category="isolation", retired_at=NOW)
    parsed = TypeAdapter(PromptEvent).validate_json(retired.model_dump_json())
    assert isinstance(parsed, PromptRetired)
    assert PROMPTS.json_schema()["discriminator"]["propertyName"] == "event_type"


def test_catalogue_has_both_privacy_classes_and_positive_lifetimes():
    classes = {c.sensitivity for c in CATALOGUE.values()}
    assert classes == {Sensitivity.PLACE, Sensitivity.PERSON}
    assert all(c.lifetime_days > 0 for c in CATALOGUE.values())


def test_topic_registry_is_consistent():
    names = [t.base_name for t in ALL_TOPICS]
    assert len(names) == len(set(names))
    assert all(t.name.endswith(".v1") for t in ALL_TOPICS)
    for topic in ALL_TOPICS:
        cfg = topic.config()
        assert cfg["cleanup.policy"] == ("compact" if topic.compacted else "delete")
        assert int(cfg["retention.ms"]) == topic.retention_ms


def test_committed_docs_match_the_code():
    """docs/ is generated (make docs): a contract change without regenerating fails here."""
    for path, doc in docs.documents().items():
        assert path.exists(), f"{path} missing: run make docs"
        assert json.loads(path.read_text()) == json.loads(docs.render(doc)), (
            f"{path.name} drifted from the code: run make docs"
        )


def test_readme_configuration_table_matches_the_settings():
    readme = docs.README.read_text()
    assert docs.readme_with_configuration(readme) == readme, "README configuration drifted: make docs"
    assert "`INGEST_PSEUDONYM_KEYS` | ingest | **required**" in readme


def test_asyncapi_carries_every_topic_with_its_configuration():
    spec = docs.asyncapi()
    assert spec["asyncapi"] == "3.0.0"
    for topic in ALL_TOPICS:
        binding = spec["channels"][topic.base_name]["bindings"]["kafka"]
        assert binding["partitions"] == topic.partitions
        assert binding["topicConfiguration"]["retention.ms"] == topic.retention_ms


def test_person_trend_without_band_only_for_a_ward_quarter():
    trend = _need(area_id="E05013652", area_kind="ward", band=None, trend="up", period="2026-Q3")
    assert StreetNeedChanged.model_validate(trend).band is None
    with pytest.raises(ValidationError, match="never a count"):
        StreetNeedChanged.model_validate({**trend, "area_kind": "unit"})
    with pytest.raises(ValidationError, match="never a count"):
        StreetNeedChanged.model_validate({**trend, "period": "2026-09"})
