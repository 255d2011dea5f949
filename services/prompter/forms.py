"""The organisations' HTML forms: form fields to API models, and pydantic errors to named fields."""

from __future__ import annotations

from typing import Any

from pydantic import ValidationError

from shared.contracts import Category

from .schemas import OpportunityIn

__all__ = ["FormInvalid", "field_errors", "opportunity_from_form", "opportunity_to_form"]


class FormInvalid(Exception):
    def __init__(self, errors: list[dict[str, str]], values: dict[str, Any]) -> None:
        super().__init__("form invalid")
        self.errors, self.values = errors, values


def field_errors(exc: ValidationError) -> list[dict[str, str]]:
    out = []
    for e in exc.errors():
        field = ".".join(str(x) for x in e["loc"]) or "form"
        out.append({"field": field, "message": e["msg"].removeprefix("Value error, ")})
    return out


def _ids(text: str) -> list[str]:
    return [p.strip() for p in text.replace("\n", ",").split(",") if p.strip()]


def _blank(value: Any) -> Any:
    return None if value in ("", None) else value


def opportunity_from_form(form: Any) -> OpportunityIn:
    """Build the same model the JSON API takes; raises FormInvalid naming every bad field."""
    values = {k: form.get(k, "") for k in _FIELDS}
    values["categories"] = form.getlist("categories")
    # Wards come as ticked boxes (one value each) or, without a gazetteer, as typed codes.
    values["ward_codes"] = ", ".join(form.getlist("ward_codes"))
    values["dbs_needed"] = form.get("dbs_needed") == "yes"
    point = None
    if _blank(values["lat"]) is not None or _blank(values["lon"]) is not None:
        point = {"lat": _blank(values["lat"]), "lon": _blank(values["lon"])}
    data = {
        "title": values["title"],
        "what": values["what"],
        "organisation": _blank(values["organisation"].strip()),
        "description": values["description"],
        "url": _blank(values["url"].strip()),
        "contact_email": _blank(values["contact_email"].strip()),
        "contact_phone": _blank(values["contact_phone"].strip()),
        "categories": values["categories"],
        "area": {
            "ward_codes": _ids(values["ward_codes"]),
            "street_ids": _ids(values["street_ids"]),
            "point": point,
            "radius_m": _blank(values["radius_m"]),
        },
        "times": _blank(values["times"].strip()),
        "time_needed": _blank(values["time_needed"].strip()),
        "dbs_needed": values["dbs_needed"],
        "starts_on": _blank(values["starts_on"]),
        "ends_on": _blank(values["ends_on"]),
    }
    try:
        return OpportunityIn.model_validate(data)
    except ValidationError as exc:
        raise FormInvalid(field_errors(exc), values) from None


def opportunity_to_form(row: Any) -> dict[str, Any]:
    """A stored opportunity as the form's field values (for editing)."""
    return {
        "title": row["title"],
        "what": row["what"],
        "organisation": row["organisation"],
        "description": row["description"],
        "url": row["url"] or "",
        "contact_email": row["contact_email"] or "",
        "contact_phone": row["contact_phone"] or "",
        "categories": list(row["categories"]),
        "ward_codes": ", ".join(row["ward_codes"]),
        "street_ids": ", ".join(row["street_ids"]),
        "lat": "" if row["lat"] is None else row["lat"],
        "lon": "" if row["lon"] is None else row["lon"],
        "radius_m": "" if row["radius_m"] is None else row["radius_m"],
        "times": row["times"] or "",
        "time_needed": row["time_needed"] or "",
        "dbs_needed": row["dbs_needed"],
        "starts_on": row["starts_on"] or "",
        "ends_on": row["ends_on"] or "",
    }


_FIELDS = (
    "title",
    "what",
    "organisation",
    "description",
    "url",
    "contact_email",
    "contact_phone",
    "ward_codes",
    "street_ids",
    "lat",
    "lon",
    "radius_m",
    "times",
    "time_needed",
    "starts_on",
    "ends_on",
)
CATEGORY_CHOICES = [(str(c), c) for c in Category]
