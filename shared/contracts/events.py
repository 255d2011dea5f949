"""Wire models for every Kafka topic: versioned, past-tense events, documented field by field.

These are contracts, not internal models: services convert to and from their own types. Each event
carries `schema_version`; a breaking change means a new model and a new topic version (`*.v2`).
Privacy class of each model is stated in its docstring; the rules are in the README's privacy section.
"""

from __future__ import annotations

import datetime as dt
from typing import Annotated, Literal
from uuid import UUID

from pydantic import AwareDatetime, BaseModel, ConfigDict, Field, model_validator

from .categories import Category, Sensitivity, info

__all__ = [
    "AreaKind",
    "Band",
    "CouncilSignal",
    "DeadLettered",
    "Location",
    "OpportunityLink",
    "PromptPublished",
    "PromptRetired",
    "ResidentResponded",
    "SignalAction",
    "SignalAnonymised",
    "StreetNeedChanged",
    "Trend",
]

SignalAction = Literal["raised", "withdrawn"]
AreaKind = Literal["street", "unit", "ward"]
Band = Literal["some", "several", "many"]
Trend = Literal["up", "down", "steady"]
# Consumers store counters in PostgreSQL `integer` columns: a larger value would fail every retry and
# hold its partition, so the contract refuses it and the record is dead-lettered instead.
INT4_MAX = 2**31 - 1


class _Contract(BaseModel):
    model_config = ConfigDict(frozen=True, extra="forbid")


class Location(BaseModel):
    """Where a signal is. One of: a WGS84 point, a street id from the gazetteer, or an address."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float | None = Field(None, ge=-90, le=90, description="WGS84 latitude.")
    lon: float | None = Field(None, ge=-180, le=180, description="WGS84 longitude.")
    street_id: str | None = Field(None, max_length=64, description="Gazetteer street id.")
    address: str | None = Field(
        None, max_length=500, description="Postal address; used only to find the street, then dropped."
    )

    @model_validator(mode="after")
    def _one_way_to_locate(self) -> Location:
        if (self.lat is None) != (self.lon is None):
            raise ValueError("lat and lon must be given together")
        if self.lat is None and self.street_id is None and not self.address:
            raise ValueError("give lat and lon, street_id, or address")
        return self


class CouncilSignal(BaseModel):
    """RAW, RESTRICTED. What a council system sends (HTTP body item or `council-signals.v1` value).

    Contains personal data. Only ingest reads it; the raw topic has short retention. Fields the
    contract does not name are dropped on arrival (data minimisation), not rejected, because council
    systems commonly send whole records.
    """

    model_config = ConfigDict(frozen=True, extra="ignore")

    schema_version: Literal[1] = 1
    event_id: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="The council system's own id for this event: the idempotency key. "
        "Sending the same event_id again has no second effect.",
    )
    category: Category = Field(..., description="Category code from the catalogue.")
    action: SignalAction = Field(
        ...,
        description="`raised` flags a need (report opened); `withdrawn` ends it "
        "(flag withdrawn, consent withdrawn, moved away, report closed).",
    )
    subject_ref: str = Field(
        ...,
        min_length=1,
        max_length=200,
        description="The council's reference for the person, household or report. "
        "Replaced at the door by a keyed pseudonym.",
    )
    occurred_at: AwareDatetime = Field(..., description="When it happened, with a timezone.")
    location: Location
    # Personal fields a council record may carry: accepted so that whole records can be sent,
    # never stored or forwarded.
    name: str | None = Field(None, max_length=500, description="Dropped at the door.")
    email: str | None = Field(None, max_length=500, description="Dropped at the door.")
    phone: str | None = Field(None, max_length=100, description="Dropped at the door.")
    notes: str | None = Field(None, max_length=4000, description="Free text. Dropped at the door.")

    @property
    def sensitivity(self) -> Sensitivity:
        return info(self.category).sensitivity


class SignalAnonymised(_Contract):
    """RESTRICTED (aggregator only). A signal after anonymisation at the door.

    No name, contact, coordinate, address or free text. The subject is an HMAC-SHA-256 pseudonym
    (`subject_key`) under a secret only ingest holds, used only to count distinct subjects and to
    de-duplicate. Time is coarsened: a day for person categories, an hour for place categories.
    """

    schema_version: Literal[1] = 1
    event_id: UUID = Field(
        ...,
        description="Deterministic (UUIDv5 of council system and its event_id): a retried "
        "signal has the same id everywhere.",
    )
    category: Category
    sensitivity: Sensitivity
    action: SignalAction
    street_id: str = Field(..., max_length=64, description="Gazetteer street id (the Kafka key).")
    subject_key: str = Field(..., pattern=r"^[0-9a-f]{64}$", description="HMAC-SHA-256 pseudonym, hex.")
    key_version: int = Field(..., ge=1, le=INT4_MAX, description="Which pseudonymisation secret was used.")
    previous_keys: tuple[Annotated[str, Field(pattern=r"^[0-9a-f]{64}$")], ...] = Field(
        (),
        max_length=16,
        description="The same subject's pseudonyms under every older listed secret version (key "
        "rotation): the aggregator treats them as one subject with `subject_key`.",
    )
    occurred_at: AwareDatetime = Field(
        ..., description="Coarsened: midnight UTC (person) or the hour (place)."
    )
    council_id: str = Field(..., max_length=64, description="The council (jurisdiction) it came from.")
    source: Literal["http", "open311", "kafka"]


class StreetNeedChanged(_Contract):
    """PUBLIC. The publishable state of one area and category (`street-needs.v1`, compacted).

    Key: `{area_id}:{category}`. A tombstone (null value) means it is no longer publishable.
    Person categories carry only a `band` and are released monthly for a calendar month
    (`period`); place categories carry an exact `count` and change in near real time.
    """

    schema_version: Literal[1] = 1
    area_id: str = Field(..., max_length=64, description="Street id, publication unit id or ward code.")
    area_kind: AreaKind
    area_name: str = Field(..., max_length=300)
    ward_code: str | None = Field(None, max_length=16)
    street_ids: tuple[str, ...] = Field(..., description="Gazetteer streets the area covers.")
    category: Category
    sensitivity: Sensitivity
    band: Band | None = Field(
        None, description="Person categories: some (8-14), several (15-29), many (30+)."
    )
    count: int | None = Field(None, ge=0, le=INT4_MAX, description="Place categories only: open reports.")
    trend: Trend | None = Field(None, description="This period against the previous one.")
    since: dt.date = Field(..., description="First day of the period this state has held since.")
    period: str = Field(
        ...,
        pattern=r"^(\d{4}-(0[1-9]|1[0-2])|\d{4}-Q[1-4]|live)$",
        description="`YYYY-MM` (person, monthly release), `YYYY-Qn` (person, ward trend, quarterly) "
        "or `live` (place).",
    )
    published_at: AwareDatetime = Field(..., description="Coarsened to the minute.")
    version: int = Field(..., ge=1, le=INT4_MAX, description="Increases with each change of this key.")

    @model_validator(mode="after")
    def _privacy_shape(self) -> StreetNeedChanged:
        if self.sensitivity is Sensitivity.PERSON:
            if self.count is not None:
                raise ValueError("person categories publish a band, never a count")
            # The one person-category output without a band: a ward's quarterly trend.
            ward_trend = self.area_kind == "ward" and self.trend is not None and "-Q" in self.period
            if self.band is None and not ward_trend:
                raise ValueError("person categories publish a band, never a count")
        if self.sensitivity is Sensitivity.PLACE and self.count is None:
            raise ValueError("place categories publish a count")
        return self

    @property
    def key(self) -> str:
        return f"{self.area_id}:{self.category}"


class OpportunityLink(_Contract):
    """A way to help, as linked from a prompt: a local opportunity or a platform from the directory.

    Everything here is the organisation's public information; no resident's data.
    """

    opportunity_id: str = Field(..., description="Opportunity uuid, or `platform:{id}` for a platform.")
    title: str
    organisation: str
    url: str | None = None
    when: str | None = Field(None, description="Plain-language times, e.g. 'Tuesdays 12-2pm'.")
    kind: Literal["local", "platform"] = Field(
        "local", description="`local`: registered by a group for this area; `platform`: from the directory."
    )
    description: str | None = Field(None, max_length=300, description="One plain sentence about it.")
    what: str | None = Field(None, max_length=500, description="What a helper does.")
    time_needed: str | None = Field(None, max_length=100, description="e.g. 'An hour a week'.")
    dbs_needed: bool | None = Field(None, description="Whether a DBS check is needed (local only).")
    contact_email: str | None = Field(None, max_length=200, description="The organisation's public email.")
    contact_phone: str | None = Field(None, max_length=40, description="The organisation's public phone.")
    organisation_id: str | None = Field(
        None, description="The organisation that registered it (local), for offers of contact."
    )


class PromptPublished(_Contract):
    """PUBLIC. A plain-language prompt for action on one area and category (`prompts.v1`).

    Key: `prompt_id` (= `{area_id}:{category}`). Republishing the same need with the same wording
    keeps the same `revision`, so consumers need not repeat it.
    """

    event_type: Literal["prompt_published"] = "prompt_published"
    schema_version: Literal[1] = 1
    prompt_id: str
    revision: int = Field(..., ge=1, le=INT4_MAX)
    area_id: str
    area_kind: AreaKind
    area_name: str
    ward_code: str | None = None
    street_ids: tuple[str, ...]
    category: Category
    sensitivity: Sensitivity
    title: str = Field(..., max_length=200)
    body: str = Field(..., max_length=2000)
    opportunities: tuple[OpportunityLink, ...] = ()
    published_at: AwareDatetime

    @property
    def key(self) -> str:
        return self.prompt_id


class PromptRetired(_Contract):
    """PUBLIC. The need behind a prompt is no longer publishable: readers should drop it."""

    event_type: Literal["prompt_retired"] = "prompt_retired"
    schema_version: Literal[1] = 1
    prompt_id: str
    area_id: str
    category: Category
    retired_at: AwareDatetime

    @property
    def key(self) -> str:
        return self.prompt_id


PromptEvent = Annotated[PromptPublished | PromptRetired, Field(discriminator="event_type")]


class ResidentResponded(_Contract):
    """PUBLIC-SAFE. A resident said "I can help" to a prompt. No personal data at all."""

    schema_version: Literal[1] = 1
    response_id: UUID
    prompt_id: str
    area_id: str
    category: Category
    kind: Literal["can_help"] = "can_help"
    responded_on: dt.date = Field(..., description="Day only.")

    @property
    def key(self) -> str:
        return self.prompt_id


class DeadLettered(_Contract):
    """OPERATORS ONLY. Input a service could not accept, with the reason and the original bytes.

    The original may hold personal data (it is raw council input), so this topic has the same short
    retention as the raw topic and only operators read it.
    """

    schema_version: Literal[1] = 1
    service: str
    source_topic: str
    partition: int | None = None
    offset: int | None = None
    key_b64: str | None = Field(None, description="Original key, base64.")
    original_b64: str = Field(..., description="Original value bytes, base64.")
    reason: str
    errors: tuple[str, ...] = Field((), description="One line per bad field: `path: message`.")
    dead_lettered_at: AwareDatetime
