"""HTTP wire models of the opportunities and impact API (kept apart from the matching model)."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    EmailStr,
    Field,
    HttpUrl,
    ValidationInfo,
    field_validator,
    model_validator,
)

from shared.contracts import Category
from shared.urls import UnsafeUrl, check_link_url

__all__ = [
    "CONSENT_TEXT",
    "AreaIn",
    "ChangeList",
    "ImpactOut",
    "OfferIn",
    "OfferList",
    "OfferOut",
    "OpportunityChange",
    "OpportunityIn",
    "OpportunityList",
    "OpportunityOut",
    "PlatformIn",
    "PlatformList",
    "PlatformOut",
    "PlatformSwitch",
    "Point",
    "PromptImpact",
    "WardImpact",
]


class Point(BaseModel):
    model_config = ConfigDict(extra="forbid")

    lat: float = Field(..., ge=-90, le=90, description="WGS84 latitude.")
    lon: float = Field(..., ge=-180, le=180, description="WGS84 longitude.")


class AreaIn(BaseModel):
    """Where the opportunity helps: any mix of wards, streets, and a point with a radius."""

    model_config = ConfigDict(extra="forbid")

    ward_codes: list[str] = Field([], max_length=50, description="ONS ward codes, e.g. E05013660.")
    street_ids: list[str] = Field([], max_length=500, description="Gazetteer street ids.")
    point: Point | None = Field(None, description="Centre of a circle; give radius_m with it.")
    radius_m: float | None = Field(
        None, gt=0, le=5000, validate_default=True, description="Radius around `point`, in metres."
    )

    @field_validator("ward_codes", "street_ids")
    @classmethod
    def _short_ids(cls, values: list[str]) -> list[str]:
        if any(not v or len(v) > 64 for v in values):
            raise ValueError("ids must be 1 to 64 characters")
        return sorted(set(values))

    @field_validator("radius_m")
    @classmethod
    def _radius_needs_point(cls, radius: float | None, info: ValidationInfo) -> float | None:
        if (radius is None) != (info.data.get("point") is None):
            raise ValueError("give point and radius_m together")
        return radius

    @model_validator(mode="after")
    def _somewhere(self) -> AreaIn:
        if not (self.ward_codes or self.street_ids or self.point):
            raise ValueError("give ward_codes, street_ids, or a point with radius_m")
        return self


_PHONE = r"^\+?[0-9][0-9 ()-]{5,30}$"


def _check_url(value: HttpUrl | None) -> HttpUrl | None:
    if value is not None:
        try:
            check_link_url(str(value))
        except UnsafeUrl as exc:
            raise ValueError(str(exc)) from None
    return value


class OpportunityIn(BaseModel):
    """A way for residents to help, registered by an organisation (the owner is the key's organisation).

    Everything here is published. The contact route is the ORGANISATION's (a group inbox, phone line
    or sign-up page); no resident's personal data belongs in any field.
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(..., min_length=1, max_length=120, examples=["Tuesday lunch club needs hosts"])
    what: str = Field(
        "", max_length=500, description="What a helper does.", examples=["Pour tea and chat with guests."]
    )
    organisation: str | None = Field(
        None,
        min_length=1,
        max_length=120,
        description="Name shown to residents; defaults to the organisation's name.",
        examples=["Kentish Town library"],
    )
    description: str = Field("", max_length=2000)
    url: HttpUrl | None = Field(None, description="Contact route: where to find out more or sign up.")
    contact_email: EmailStr | None = Field(None, description="Contact route: the group's public email.")
    contact_phone: str | None = Field(
        None, pattern=_PHONE, description="Contact route: the group's public phone number."
    )
    categories: list[Category] = Field(..., min_length=1, description="Category codes it helps with.")
    area: AreaIn
    times: str | None = Field(None, max_length=100, description="When, in plain text: 'Tuesdays 12-2pm'.")
    time_needed: str | None = Field(None, max_length=100, description="e.g. 'Two hours a week'.")
    # strict: true or false only, as the schema says (lax mode would take 0/1 and "yes").
    dbs_needed: bool = Field(False, strict=True, description="Whether helpers need a DBS check.")
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None

    @field_validator("title", "what", "organisation", "description", "contact_phone", "times", "time_needed")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return value.strip() if isinstance(value, str) else value

    @field_validator("url")
    @classmethod
    def _safe_url(cls, value: HttpUrl | None) -> HttpUrl | None:
        return _check_url(value)

    @field_validator("categories")
    @classmethod
    def _unique(cls, values: list[Category]) -> list[Category]:
        return sorted(set(values))

    @field_validator("ends_on")
    @classmethod
    def _after_start(cls, ends_on: dt.date | None, info: ValidationInfo) -> dt.date | None:
        starts_on = info.data.get("starts_on")
        if ends_on is not None and starts_on is not None and ends_on < starts_on:
            raise ValueError("ends_on is before starts_on")
        return ends_on

    @model_validator(mode="after")
    def _reachable(self) -> OpportunityIn:
        if not (self.url or self.contact_email or self.contact_phone):
            raise ValueError("give a contact route: url, contact_email or contact_phone")
        return self

    def columns(self, organisation_name: str) -> dict[str, Any]:
        """Column values for the repository."""
        point = self.area.point
        return {
            "title": self.title,
            "organisation": self.organisation or organisation_name,
            "description": self.description,
            "url": str(self.url) if self.url else None,
            "contact": None,
            "categories": [str(c) for c in self.categories],
            "ward_codes": self.area.ward_codes,
            "street_ids": self.area.street_ids,
            "lat": point.lat if point else None,
            "lon": point.lon if point else None,
            "radius_m": self.area.radius_m,
            "times": self.times,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
            "what": self.what,
            "time_needed": self.time_needed,
            "dbs_needed": self.dbs_needed,
            "contact_email": str(self.contact_email) if self.contact_email else None,
            "contact_phone": self.contact_phone,
        }


class OpportunityOut(OpportunityIn):
    model_config = ConfigDict(extra="forbid")

    id: str
    url: str | None = None  # type: ignore[assignment]  # as stored; validated on the way in
    contact_email: str | None = None
    organisation: str
    organisation_id: str | None = Field(None, description="The owner (null: registered by the operator).")
    status: Literal["active", "paused", "retired"]
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> OpportunityOut:
        point = Point(lat=row["lat"], lon=row["lon"]) if row["lat"] is not None else None
        return cls.model_construct(
            id=str(row["id"]),
            title=row["title"],
            what=row["what"],
            organisation=row["organisation"],
            organisation_id=str(row["organisation_id"]) if row["organisation_id"] else None,
            description=row["description"],
            url=row["url"],
            contact_email=row["contact_email"],
            contact_phone=row["contact_phone"],
            categories=[Category(c) for c in row["categories"]],
            area=AreaIn.model_construct(
                ward_codes=list(row["ward_codes"]),
                street_ids=list(row["street_ids"]),
                point=point,
                radius_m=row["radius_m"],
            ),
            times=row["times"],
            time_needed=row["time_needed"],
            dbs_needed=row["dbs_needed"],
            starts_on=row["starts_on"],
            ends_on=row["ends_on"],
            status=row["status"],
            updated_at=row["updated_at"].replace(microsecond=0),
        )


class OpportunityChange(BaseModel):
    id: int
    opportunity_id: str
    organisation_id: str | None
    actor: str = Field(..., description="The organisation's name, or `operator`.")
    action: Literal["created", "updated", "paused", "resumed", "retired"]
    diff: dict[str, Any] = Field(..., description='`{"field": {"from": old, "to": new}}`.')
    at: dt.datetime


class ChangeList(BaseModel):
    changes: list[OpportunityChange]


class PlatformIn(BaseModel):
    """A council's own platform for the directory (shown after local opportunities)."""

    model_config = ConfigDict(extra="forbid")

    id: str = Field(..., pattern=r"^[a-z0-9][a-z0-9-]{1,40}$", description="A short slug.")
    name: str = Field(..., min_length=1, max_length=120)
    description: str = Field(..., min_length=1, max_length=300, description="One plain sentence.")
    url: HttpUrl
    categories: list[Category] = Field(..., min_length=1)
    coverage: Literal["national", "london", "borough"] = "borough"

    @field_validator("url")
    @classmethod
    def _safe_url(cls, value: HttpUrl | None) -> HttpUrl | None:
        return _check_url(value)


class PlatformOut(BaseModel):
    id: str
    name: str
    description: str
    url: str
    categories: list[Category]
    coverage: str
    source: Literal["directory", "council"]
    enabled: bool


class PlatformList(BaseModel):
    platforms: list[PlatformOut]


class PlatformSwitch(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # strict: true or false only, as the schema says (lax mode would take 0/1 and "yes").
    enabled: bool = Field(..., strict=True)


CONSENT_TEXT = (
    "I agree that streetneeds may give my first name and email address to {organisation} so that "
    "they can contact me about helping. They are deleted once handed over, or after 30 days."
)


class OfferIn(BaseModel):
    """A resident's optional contact details for ONE organisation (form fields from the feeds page)."""

    model_config = ConfigDict(extra="forbid")

    prompt_id: str = Field(..., min_length=3, max_length=200)
    organisation_id: uuid.UUID | None = Field(
        None, description="The chosen organisation (or give opportunity_id)."
    )
    opportunity_id: uuid.UUID | None = Field(
        None, description="The chosen opportunity; its organisation gets it."
    )
    first_name: str = Field(..., min_length=1, max_length=60)
    email: EmailStr
    consent: Literal["yes"] = Field(..., description="The resident ticked the consent box.")

    @field_validator("first_name")
    @classmethod
    def _trim(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("give your first name")
        return value

    @model_validator(mode="after")
    def _chosen(self) -> OfferIn:
        if self.organisation_id is None and self.opportunity_id is None:
            raise ValueError("choose a group: give opportunity_id or organisation_id")
        return self


class OfferOut(BaseModel):
    id: str
    prompt_id: str
    opportunity_id: str | None
    first_name: str
    email: str
    consent_text: str
    created_at: dt.datetime


class OfferList(BaseModel):
    offers: list[OfferOut]
    received: int = Field(..., description="Offers with contact details received (all time).")
    handed_over: int
    expired: int = Field(..., description="Deleted unseen after 30 days.")
    responses: int = Field(..., description="Anonymous 'I can help' on prompts that link your opportunities.")


class OpportunityList(BaseModel):
    opportunities: list[OpportunityOut]


class PromptImpact(BaseModel):
    prompt_id: str
    area_id: str
    category: Category
    ward_code: str | None
    title: str | None = Field(None, description="The prompt's latest title.")
    status: str | None = Field(None, description="`published` or `retired`.")
    responses: int
    since: dt.date = Field(..., description="Day of the first response.")
    last_response_on: dt.date


class WardImpact(BaseModel):
    ward_code: str | None
    prompts: int = Field(..., description="Prompts with at least one response.")
    responses: int
    since: dt.date


class ImpactOut(BaseModel):
    prompts: list[PromptImpact]
    wards: list[WardImpact]
