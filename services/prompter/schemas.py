"""HTTP wire models of the opportunities and impact API (kept apart from the matching model)."""

from __future__ import annotations

import datetime as dt
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, HttpUrl, ValidationInfo, field_validator, model_validator

from shared.contracts import Category

__all__ = [
    "AreaIn",
    "ImpactOut",
    "OpportunityIn",
    "OpportunityList",
    "OpportunityOut",
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


class OpportunityIn(BaseModel):
    """A way for residents to help, registered by the council or a VCS partner.

    Everything here is published. `contact` is the ORGANISATION's public contact (a group inbox or
    phone line); no resident's personal data belongs in any field.
    """

    model_config = ConfigDict(extra="forbid")

    title: str = Field(..., min_length=1, max_length=120, examples=["Tuesday lunch club needs hosts"])
    organisation: str = Field(..., min_length=1, max_length=120, examples=["Kentish Town library"])
    description: str = Field("", max_length=2000)
    url: HttpUrl | None = Field(None, description="Where to find out more or sign up.")
    contact: str | None = Field(
        None,
        max_length=200,
        description="The organisation's public contact (email or phone of the group, not a person).",
    )
    categories: list[Category] = Field(..., min_length=1, description="Category codes it helps with.")
    area: AreaIn
    times: str | None = Field(None, max_length=100, description="Plain text, e.g. 'Tuesdays 12-2pm'.")
    starts_on: dt.date | None = None
    ends_on: dt.date | None = None

    @field_validator("title", "organisation", "description", "contact", "times")
    @classmethod
    def _trimmed(cls, value: str | None) -> str | None:
        return value.strip() if isinstance(value, str) else value

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

    def columns(self) -> dict[str, Any]:
        """Column values for the repository."""
        point = self.area.point
        return {
            "title": self.title,
            "organisation": self.organisation,
            "description": self.description,
            "url": str(self.url) if self.url else None,
            "contact": self.contact,
            "categories": [str(c) for c in self.categories],
            "ward_codes": self.area.ward_codes,
            "street_ids": self.area.street_ids,
            "lat": point.lat if point else None,
            "lon": point.lon if point else None,
            "radius_m": self.area.radius_m,
            "times": self.times,
            "starts_on": self.starts_on,
            "ends_on": self.ends_on,
        }


class OpportunityOut(OpportunityIn):
    model_config = ConfigDict(extra="forbid")

    id: str
    url: str | None = None  # type: ignore[assignment]  # as stored; validated on the way in
    updated_at: dt.datetime

    @classmethod
    def from_row(cls, row: Any) -> OpportunityOut:
        point = Point(lat=row["lat"], lon=row["lon"]) if row["lat"] is not None else None
        return cls.model_construct(
            id=str(row["id"]),
            title=row["title"],
            organisation=row["organisation"],
            description=row["description"],
            url=row["url"],
            contact=row["contact"],
            categories=[Category(c) for c in row["categories"]],
            area=AreaIn.model_construct(
                ward_codes=list(row["ward_codes"]),
                street_ids=list(row["street_ids"]),
                point=point,
                radius_m=row["radius_m"],
            ),
            times=row["times"],
            starts_on=row["starts_on"],
            ends_on=row["ends_on"],
            updated_at=row["updated_at"].replace(microsecond=0),
        )


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
