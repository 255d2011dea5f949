"""Open311 GeoReport v2, the pure parts: form parsing (with FixMyStreet's quirks), views and rendering.

Dates are written as W3C date-times in UTC with a `Z` designator, as in the spec's examples.
Personal fields (`email`, `device_id`, FixMyStreet's `deviceid`, `account_id`, `first_name`,
`last_name`, `phone`) and `description`/`media_url` are accepted and dropped here: they never
reach the parsed form.
"""

from __future__ import annotations

import datetime as dt
import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from lxml import etree

from shared.contracts import CATALOGUE, CategoryInfo, Sensitivity

__all__ = [
    "MAX_DESCRIPTION",
    "MAX_RANGE",
    "NOT_PINPOINTED",
    "Open311Error",
    "Open311Form",
    "date_range",
    "errors_body",
    "parse_form",
    "place_services",
    "render",
    "service_definition",
    "service_view",
    "to_xml",
    "w3c",
    "xml_safe",
]

NOT_PINPOINTED = "#NOTPINPOINTED#"  # FixMyStreet's address_id when the reporter placed no pin
MAX_DESCRIPTION = 4000
MAX_RANGE = dt.timedelta(days=90)
_ATTRIBUTE = re.compile(r"^attribute\[([^\[\]]+)\](\[\])?$")
# XML element names for the items of list-valued fields.
_ITEM_TAG = {
    "attributes": "attribute",
    "values": "value",
    "errors": "error",
    "endpoints": "endpoint",
    "formats": "format",
}
SPECIFICATION = "http://wiki.open311.org/GeoReport_v2"
CHANGESET = "2026-11-25T00:00:00+00:00"  # when this endpoint's behaviour last changed


class Open311Error(Exception):
    """An error answered in the spec's format: `[{"code": N, "description": "..."}]`."""

    def __init__(self, status: int, description: str, headers: dict[str, str] | None = None) -> None:
        super().__init__(description)
        self.status, self.description, self.headers = status, description, headers or {}


@dataclass(frozen=True)
class Open311Form:
    """The fields of `POST requests` streetneeds uses; everything personal is already gone."""

    api_key: str | None
    service_code: str | None
    jurisdiction_id: str | None
    lat: float | None
    long: float | None
    address_string: str | None
    address_id: str | None  # None also when FixMyStreet said #NOTPINPOINTED#
    pinpointed: bool
    attributes: dict[str, str | list[str]] = field(default_factory=dict)


def _number(name: str, raw: str | None) -> float | None:
    if raw is None or not raw.strip():
        return None
    try:
        value = float(raw)
    except ValueError:
        raise Open311Error(400, f"{name} must be a number") from None
    if not math.isfinite(value):
        raise Open311Error(400, f"{name} must be a finite number")
    return value


def parse_form(pairs: Iterable[tuple[str, str]]) -> Open311Form:
    """Parse a form-encoded `POST requests` body given as (name, value) pairs (names may repeat)."""
    single: dict[str, str] = {}
    attributes: dict[str, str | list[str]] = {}
    for name, value in pairs:
        match = _ATTRIBUTE.match(name)
        if match:
            code, many = match.groups()
            if many:
                current = attributes.get(code)
                attributes[code] = [*(current if isinstance(current, list) else []), value]
            else:
                attributes[code] = value
        else:
            single.setdefault(name, value)
    description = single.get("description") or ""
    if len(description) > MAX_DESCRIPTION:
        raise Open311Error(400, f"description is longer than {MAX_DESCRIPTION} characters")
    lat, long = _number("lat", single.get("lat")), _number("long", single.get("long"))
    if (lat is None) != (long is None):
        raise Open311Error(400, "lat and long must be sent together")
    if lat is not None and long is not None and not (-90 <= lat <= 90 and -180 <= long <= 180):
        raise Open311Error(400, "lat/long are not WGS84 coordinates")
    address_id = (single.get("address_id") or "").strip() or None
    pinpointed = address_id != NOT_PINPOINTED
    return Open311Form(
        api_key=(single.get("api_key") or "").strip() or None,
        service_code=(single.get("service_code") or "").strip() or None,
        jurisdiction_id=(single.get("jurisdiction_id") or "").strip() or None,
        lat=lat,
        long=long,
        address_string=(single.get("address_string") or "").strip() or None,
        address_id=address_id if pinpointed else None,
        pinpointed=pinpointed,
        attributes=attributes,
    )


def w3c(at: dt.datetime) -> str:
    return at.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%SZ")


def _parse_date(name: str, raw: str) -> dt.datetime:
    try:
        value = dt.datetime.fromisoformat(raw.strip())
    except ValueError:
        raise Open311Error(400, f"{name} is not a W3C date-time, e.g. 2010-01-01T00:00:00Z") from None
    if value.tzinfo is None:
        raise Open311Error(400, f"{name} must include a timezone, e.g. 2010-01-01T00:00:00Z")
    return value


def date_range(start: str | None, end: str | None, now: dt.datetime) -> tuple[dt.datetime, dt.datetime]:
    """The `GET requests` window: defaults to the 90 days before `end`/`now`; never more than 90 days."""
    lo = _parse_date("start_date", start) if start else None
    hi = _parse_date("end_date", end) if end else None
    if lo is None and hi is None:
        hi = now
    try:
        if lo is None:
            assert hi is not None  # both missing was handled above
            lo = hi - MAX_RANGE
        elif hi is None:
            hi = lo + MAX_RANGE
        lo, hi = lo.astimezone(dt.UTC), hi.astimezone(dt.UTC)  # as PostgreSQL will compare them
    except OverflowError:  # e.g. end_date=0001-01-01T00:00:00Z: no window fits before it
        raise Open311Error(400, "start_date/end_date are outside the supported range") from None
    if hi < lo:
        raise Open311Error(400, "end_date is before start_date")
    if hi - lo > MAX_RANGE:
        raise Open311Error(400, "start_date to end_date may not span more than 90 days")
    return lo, hi


def place_services() -> list[CategoryInfo]:
    """Open311 services: the place categories only (person categories never come in by Open311)."""
    return [c for c in CATALOGUE.values() if c.sensitivity is Sensitivity.PLACE]


def service_view(c: CategoryInfo) -> dict[str, Any]:
    return {
        "service_code": c.code.value,
        "service_name": c.name,
        "description": c.description,
        "metadata": True,
        "type": "realtime",
        "keywords": ", ".join(c.keywords),
        "group": c.group,
    }


def service_definition(c: CategoryInfo) -> dict[str, Any]:
    return {
        "service_code": c.code.value,
        "attributes": [
            {
                "variable": True,
                "code": "uprn",
                "datatype": "string",
                "required": False,
                "datatype_description": "The Unique Property Reference Number, if known.",
                "order": 1,
                "description": "Property reference (UPRN). Accepted, not stored: "
                "streetneeds keeps only the street.",
                "values": [],
            }
        ],
    }


def discovery(endpoint_url: str, contact: str) -> dict[str, Any]:
    """The GeoReport v2 discovery document: where the endpoint is and what it speaks."""
    return {
        "changeset": CHANGESET,
        "contact": contact,
        "key_service": "API keys are issued by the council's streetneeds operators.",
        "endpoints": [
            {
                "specification": SPECIFICATION,
                "url": endpoint_url,
                "changeset": CHANGESET,
                "type": "production",
                "formats": ["text/xml", "application/json"],
            }
        ],
    }


def errors_body(status: int, description: str) -> list[dict[str, Any]]:
    return [{"code": status, "description": description}]


# Characters XML 1.0 cannot carry (C0 controls other than tab/newline/return, surrogates, U+FFFE/F).
_NOT_XML = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\ud800-\udfff\ufffe\uffff]")


def xml_safe(text: str) -> str:
    """`text` without the characters XML cannot carry (each becomes U+FFFD), so rendering never fails."""
    return _NOT_XML.sub("\ufffd", text)


def _xml_value(parent: etree._Element, tag: str, value: Any) -> None:
    element = etree.SubElement(parent, tag)
    if isinstance(value, Mapping):
        for k, v in value.items():
            _xml_value(element, k, v)
    elif isinstance(value, list | tuple):
        for item in value:
            _xml_value(element, _ITEM_TAG.get(tag, "item"), item)
    elif isinstance(value, bool):
        element.text = "true" if value else "false"
    elif value is not None:
        element.text = xml_safe(str(value))


def to_xml(root: str, item: str, rows: Sequence[Mapping[str, Any]] | Mapping[str, Any]) -> bytes:
    """`<root><item>...</item>...</root>`, or `<root>fields</root>` for a single mapping."""
    top = etree.Element(root)
    if isinstance(rows, Mapping):
        for k, v in rows.items():
            _xml_value(top, k, v)
    else:
        for row in rows:
            _xml_value(top, item, row)
    xml: bytes = etree.tostring(top, xml_declaration=True, encoding="utf-8")
    return xml


def render(fmt: str, root: str, item: str, body: Any) -> tuple[bytes, str]:
    """(content, media type) in the requested format; XML is the spec's required one."""
    if fmt == "json":
        return json.dumps(body).encode(), "application/json"
    return to_xml(root, item, body), "application/xml; charset=utf-8"
