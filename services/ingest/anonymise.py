"""Anonymisation at the door (docs/privacy.md rule 1): a CouncilSignal in, a SignalAnonymised out, no more.

Pure functions, no I/O. What survives: the category and action, a street id, a keyed pseudonym of
the subject, a coarsened time, the council id and a deterministic event id. Everything else the
council sent (name, email, phone, notes, address, coordinates, its own references, unnamed fields) is
dropped here: `CouncilSignal` already ignores unnamed fields, and `SignalAnonymised` is built from
the derived values only, never by copying the input.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import uuid
from collections.abc import Mapping
from typing import Literal

from shared.contracts import CouncilSignal, Location, Sensitivity, SignalAnonymised, info
from shared.gazetteer.model import Gazetteer
from shared.gazetteer.snapping import TooFarFromStreet

__all__ = [
    "EVENT_NAMESPACE",
    "FUTURE_TOLERANCE",
    "PAST_MARGIN",
    "Pseudonymiser",
    "Rejected",
    "anonymise",
    "check_time",
    "coarsen",
    "event_uuid",
    "locate",
]

Source = Literal["http", "open311", "kafka"]

FUTURE_TOLERANCE = dt.timedelta(minutes=10)  # clock skew between a council system and us
PAST_MARGIN = dt.timedelta(days=62)  # two months: an unreleased previous month, two 30-day trend windows

# Fixed forever: changing it would give every retried signal a new id and break de-duplication.
EVENT_NAMESPACE = uuid.UUID("5b0e3c1e-4d55-5e2b-9a53-7c7d0e1a6f10")


class Rejected(ValueError):
    """A signal that cannot be accepted; `field` is relative to the signal (e.g. `location`)."""

    def __init__(self, field: str, message: str, reason: str) -> None:
        super().__init__(f"{field}: {message}")
        self.field, self.message, self.reason = field, message, reason


class Pseudonymiser:
    """Keyed pseudonyms: HMAC-SHA-256(secret[version], f"{council_id}:{subject_ref}"), hex.

    The message holds the council and the council's subject reference, and nothing else:
    - no category, so the same person flagged for isolation and for overcrowding by the same
      council has one pseudonym (the aggregator's per-person privacy ledger needs that);
    - the council id, so the same reference used by two councils never collides. Council ids are
      slugs without ':' (enforced by the CLI), so the separator is unambiguous;
    - no system id, because one council's systems (social care, housing) share its references.
    Without the secret, which only ingest holds, a pseudonym cannot be recomputed from a guess.
    Rotation: add a new version to INGEST_PSEUDONYM_KEYS and switch INGEST_PSEUDONYM_KEY_VERSION;
    events carry `key_version` and, in `previous_keys`, the pseudonyms under the older versions still
    listed, so that the aggregator keeps one subject across the rotation.
    """

    def __init__(self, secrets: Mapping[int, str | bytes], version: int) -> None:
        if version not in secrets:
            raise ValueError(f"no pseudonymisation secret for version {version}")
        self.version = version
        keys = {v: k.encode() if isinstance(k, str) else k for v, k in secrets.items()}
        self._key = keys[version]
        # Older versions still listed: events carry the subject under them too, so that the
        # aggregator links the generations (docs/privacy.md, key rotation).
        self._older = [keys[v] for v in sorted(keys) if v < version]

    def subject_key(self, council_id: str, subject_ref: str) -> str:
        return self._hmac(self._key, council_id, subject_ref)

    def previous_keys(self, council_id: str, subject_ref: str) -> tuple[str, ...]:
        """The subject's pseudonyms under every older listed version, oldest first."""
        return tuple(self._hmac(k, council_id, subject_ref) for k in self._older)

    @staticmethod
    def _hmac(key: bytes, council_id: str, subject_ref: str) -> str:
        return hmac.new(key, f"{council_id}:{subject_ref}".encode(), hashlib.sha256).hexdigest()


def event_uuid(system_id: uuid.UUID | str, council_event_id: str) -> uuid.UUID:
    """Deterministic id: a retried signal from the same system gets the same id everywhere."""
    return uuid.uuid5(EVENT_NAMESPACE, f"{system_id}:{council_event_id}")


def coarsen(at: dt.datetime, sensitivity: Sensitivity) -> dt.datetime:
    """Person categories: midnight UTC of the day; place categories: the start of the hour (UTC)."""
    utc = at.astimezone(dt.UTC)
    if sensitivity is Sensitivity.PERSON:
        return utc.replace(hour=0, minute=0, second=0, microsecond=0)
    return utc.replace(minute=0, second=0, microsecond=0)


def locate(gazetteer: Gazetteer, location: Location, max_distance_m: float) -> str:
    """The gazetteer street id of a location, or Rejected with the reason.

    Order of preference: a given `street_id` (must exist in the gazetteer); otherwise the point,
    which must lie inside the gazetteer's boundary and within `max_distance_m` of a street;
    otherwise the address, matched by `Gazetteer.match_address`: the longest known street name
    found as whole words in the address string (abbreviations such as "Rd"/"Road" are equal),
    accepted only when exactly one street has that name — an ambiguous name is rejected rather
    than guessed.
    """
    if location.street_id is not None:
        if location.street_id not in gazetteer.streets:
            raise Rejected("location.street_id", "unknown street id", "unknown_street")
        return location.street_id
    if location.lat is not None and location.lon is not None:
        if not gazetteer.contains(location.lon, location.lat):
            raise Rejected("location", "outside the area this service covers", "outside_area")
        try:
            street_id, _ = gazetteer.snapper.snap_one(location.lon, location.lat, max_distance_m)
        except TooFarFromStreet as exc:
            raise Rejected(
                "location", f"too far from any street ({exc.distance_m:.0f} m)", "too_far_from_street"
            ) from None
        return street_id
    street = gazetteer.match_address(location.address or "")
    if street is None:
        raise Rejected(
            "location.address", "no single known street name found in the address", "unknown_address"
        )
    return street.id


def check_time(at: dt.datetime, lifetime_days: int, now: dt.datetime) -> None:
    """Rejected unless `at` is one a signal could count from (docs/privacy.md, time tolerance).

    Future: more than FUTURE_TOLERANCE ahead (clock skew allowed). Past: older than the category's
    lifetime plus PAST_MARGIN — such a signal has expired before any month still to be released
    (the previous month may still be unreleased) and before the place trend's two windows.
    """
    if at > now + FUTURE_TOLERANCE:
        raise Rejected(
            "occurred_at",
            f"more than {FUTURE_TOLERANCE.seconds // 60} minutes in the future",
            "future_dated",
        )
    oldest = dt.timedelta(days=lifetime_days) + PAST_MARGIN
    if at < now - oldest:
        raise Rejected(
            "occurred_at",
            f"older than {oldest.days} days (the category's lifetime and {PAST_MARGIN.days} days): "
            "it could never count",
            "too_old",
        )


def anonymise(
    signal: CouncilSignal,
    *,
    system_id: uuid.UUID,
    council_id: str,
    gazetteer: Gazetteer,
    pseudonymiser: Pseudonymiser,
    source: Source,
    max_distance_m: float,
    now: dt.datetime | None = None,
) -> SignalAnonymised:
    """The only form of a signal that leaves ingest. Rejected when its time could never count."""
    category = info(signal.category)
    sensitivity = category.sensitivity
    check_time(signal.occurred_at, category.lifetime_days, now or dt.datetime.now(dt.UTC))
    return SignalAnonymised(
        event_id=event_uuid(system_id, signal.event_id),
        category=signal.category,
        sensitivity=sensitivity,
        action=signal.action,
        street_id=locate(gazetteer, signal.location, max_distance_m),
        subject_key=pseudonymiser.subject_key(council_id, signal.subject_ref),
        key_version=pseudonymiser.version,
        previous_keys=pseudonymiser.previous_keys(council_id, signal.subject_ref),
        occurred_at=coarsen(signal.occurred_at, sensitivity),
        council_id=council_id,
        source=source,
    )
