"""Anonymisation at the door: nothing personal survives, pseudonyms are stable and keyed, time is coarse."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pydantic import SecretStr, ValidationError

from services.ingest.anonymise import Pseudonymiser, Rejected, anonymise, coarsen, event_uuid, locate
from services.ingest.settings import IngestSettings
from shared.contracts import CouncilSignal, Location, Sensitivity

SECRET = "k" * 40
SYSTEM = uuid.UUID("00000000-0000-4000-8000-000000000001")
PERSONAL = {
    "name": "Edith Quigglesworth",
    "email": "edith.q@example.org",
    "phone": "+44 20 7946 0991",
    "notes": "Lives alone since husband died; daughter visits rarely",
    "subject_ref": "ASC-PERSON-771203",
}


def _signal(**overrides) -> CouncilSignal:
    raw = {
        "event_id": "asc-evt-1",
        "category": "isolation",
        "action": "raised",
        "subject_ref": PERSONAL["subject_ref"],
        "occurred_at": "2026-03-14T21:47:13+01:00",
        "location": {"lat": 51.543917, "lon": -0.129843, "address": "14 Agar Grove, London NW1 9SL"},
        "name": PERSONAL["name"],
        "email": PERSONAL["email"],
        "phone": PERSONAL["phone"],
        "notes": PERSONAL["notes"],
        "date_of_birth": "1931-02-03",
        "nhs_number": "943 476 5919",
    }
    raw.update(overrides)
    return CouncilSignal.model_validate(raw)


NOW = dt.datetime(2026, 3, 20, tzinfo=dt.UTC)  # a few days after the signals above


def _anon(gazetteer, signal, council="camden", secrets=None, version=1, now=NOW):
    return anonymise(
        signal,
        system_id=SYSTEM,
        council_id=council,
        gazetteer=gazetteer,
        pseudonymiser=Pseudonymiser(secrets or {1: SECRET}, version),
        source="http",
        max_distance_m=150,
        now=now,
    )


def test_no_personal_field_survives(gazetteer):
    out = _anon(gazetteer, _signal()).model_dump_json()
    for value in [
        *PERSONAL.values(),
        "14 Agar Grove",
        "NW1 9SL",
        "51.543917",
        "-0.129843",
        "51.54",
        "1931-02-03",
        "943 476 5919",
        "asc-evt-1",
        "21:47",
        "20:47",
    ]:
        assert value not in out, value
    assert '"street_id":"way/1001"' in out


def test_pseudonym_is_stable_keyed_and_council_scoped(gazetteer):
    isolation = _anon(gazetteer, _signal())
    overcrowding = _anon(gazetteer, _signal(category="overcrowding", event_id="housing-9"))
    assert isolation.subject_key == overcrowding.subject_key  # one person, one pseudonym per council
    assert _anon(gazetteer, _signal()).subject_key == isolation.subject_key
    assert _anon(gazetteer, _signal(), council="islington").subject_key != isolation.subject_key
    other_secret = _anon(gazetteer, _signal(), secrets={1: "z" * 40}).subject_key
    assert other_secret != isolation.subject_key
    rotated = _anon(gazetteer, _signal(), secrets={1: SECRET, 2: "r" * 40}, version=2)
    assert rotated.key_version == 2 and rotated.subject_key != isolation.subject_key
    assert _anon(gazetteer, _signal(subject_ref="ASC-PERSON-1")).subject_key != isolation.subject_key


def test_event_id_is_deterministic_per_system():
    assert event_uuid(SYSTEM, "e1") == event_uuid(SYSTEM, "e1")
    assert event_uuid(SYSTEM, "e1") != event_uuid(SYSTEM, "e2")
    assert event_uuid(SYSTEM, "e1") != event_uuid(uuid.uuid4(), "e1")


def test_time_is_coarsened_by_sensitivity(gazetteer):
    at = dt.datetime(2026, 3, 14, 0, 47, 13, tzinfo=dt.timezone(dt.timedelta(hours=2)))
    assert coarsen(at, Sensitivity.PERSON) == dt.datetime(2026, 3, 13, tzinfo=dt.UTC)
    assert coarsen(at, Sensitivity.PLACE) == dt.datetime(2026, 3, 13, 22, tzinfo=dt.UTC)
    assert _anon(gazetteer, _signal()).occurred_at == dt.datetime(2026, 3, 14, tzinfo=dt.UTC)
    place = _anon(gazetteer, _signal(category="graffiti"))
    assert place.occurred_at == dt.datetime(2026, 3, 14, 20, tzinfo=dt.UTC)
    assert place.sensitivity is Sensitivity.PLACE


def test_location_resolution(gazetteer):
    assert locate(gazetteer, Location(street_id="way/1003"), 150) == "way/1003"
    assert locate(gazetteer, Location(address="Flat 2, 101 camden rd, London NW1"), 150) == "way/1002"
    # The longest known name wins: "Agar Grove" is not mistaken for "Grove Terrace".
    assert locate(gazetteer, Location(address="3 Agar Grove"), 150) == "way/1001"
    with pytest.raises(Rejected, match=r"location: too far from any street \(7\d\d m\)") as far:
        locate(gazetteer, Location(lat=51.553, lon=-0.118), 150)
    assert far.value.reason == "too_far_from_street"
    with pytest.raises(Rejected, match="outside the area"):
        locate(gazetteer, Location(lat=51.5, lon=-0.2), 150)
    with pytest.raises(Rejected, match=r"location\.street_id: unknown"):
        locate(gazetteer, Location(street_id="way/999"), 150)
    with pytest.raises(Rejected, match=r"location\.address"):
        locate(gazetteer, Location(address="1 Nowhere Lane"), 150)


def _settings(**env):
    base = {"database_url": "postgresql://x/y", "kafka_bootstrap_servers": "k:1"}
    return IngestSettings(**{**base, **env})


def test_settings_fail_fast_on_missing_or_short_secrets(monkeypatch):
    monkeypatch.delenv("INGEST_PSEUDONYM_KEYS", raising=False)
    monkeypatch.delenv("INGEST_PSEUDONYM_KEY_VERSION", raising=False)
    with pytest.raises(ValidationError, match="pseudonym_keys"):
        _settings(_env_file=None, pseudonym_key_version=1)
    with pytest.raises(ValidationError, match="shorter than 32"):
        _settings(_env_file=None, pseudonym_keys="1:short", pseudonym_key_version=1)
    with pytest.raises(ValidationError, match="not among"):
        _settings(_env_file=None, pseudonym_keys=f"1:{SECRET}", pseudonym_key_version=2)
    ok = _settings(_env_file=None, pseudonym_keys=f"1:{SECRET}, 2:{'q' * 32}", pseudonym_key_version=2)
    assert set(ok.pseudonym_keys_by_version) == {1, 2}
    assert isinstance(ok.pseudonym_keys, SecretStr) and SECRET not in repr(ok)


def test_rotation_carries_the_older_pseudonyms_so_one_person_stays_one_subject(gazetteer):
    v1 = _anon(gazetteer, _signal())
    assert v1.previous_keys == ()
    rotated = _anon(gazetteer, _signal(), secrets={1: SECRET, 2: "r" * 40, 3: "t" * 40}, version=2)
    assert rotated.key_version == 2 and rotated.subject_key != v1.subject_key
    assert rotated.previous_keys == (v1.subject_key,)  # the newer, not yet used version 3 is not sent
    third = _anon(gazetteer, _signal(), secrets={1: SECRET, 2: "r" * 40, 3: "t" * 40}, version=3)
    assert third.previous_keys == (v1.subject_key, rotated.subject_key)


@pytest.mark.parametrize(
    ("at", "category", "reason"),
    [
        (NOW + dt.timedelta(minutes=11), "isolation", "future_dated"),
        (NOW + dt.timedelta(days=400), "graffiti", "future_dated"),
        (NOW - dt.timedelta(days=180 + 63), "isolation", "too_old"),
        (NOW - dt.timedelta(days=7 + 63), "litter", "too_old"),
    ],
)
def test_signals_that_could_never_count_are_rejected_with_a_reason(gazetteer, at, category, reason):
    with pytest.raises(Rejected) as caught:
        _anon(gazetteer, _signal(occurred_at=at.isoformat(), category=category))
    assert caught.value.reason == reason and caught.value.field == "occurred_at"


@pytest.mark.parametrize(
    ("at", "category"),
    [
        (NOW + dt.timedelta(minutes=9), "isolation"),  # clock skew
        (NOW - dt.timedelta(days=180 + 61), "isolation"),  # may still count in an unreleased month
        (NOW - dt.timedelta(days=7 + 61), "litter"),  # still in the place trend's windows
    ],
)
def test_signals_within_the_tolerance_are_accepted(gazetteer, at, category):
    assert _anon(gazetteer, _signal(occurred_at=at.isoformat(), category=category)).category == category
