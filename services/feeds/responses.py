"""OpenAPI of the feeds' routes: the media types each really sends, and its statuses beyond the common ones.

`shared.http.complete_openapi` documents 400, 404, 422, 503 (and 401/403/409/413/415 where they
apply) for every route, in problem+json and, on pages, HTML; the dicts here add what only these
routes answer. A route's `response_class` names its 200's media type (FastAPI would otherwise document
JSON), `responses` any other type it sends and every further status.
"""

from __future__ import annotations

from typing import Any

from fastapi.responses import Response

__all__ = [
    "CAP_INDEX",
    "CAP_MESSAGE",
    "ENDED",
    "EVENTS",
    "FEED",
    "GEOJSON_MAP",
    "NOT_MODIFIED",
    "PAGE",
    "SEE_OTHER",
    "SHORT_LINK",
    "UNDOTTED",
    "AtomResponse",
    "CapResponse",
    "GeoJSONResponse",
]

Responses = dict[int | str, dict[str, Any]]
# A page's street id, ward code or token holds no dot (`/streets/x.atom` is street x's Atom feed): the
# schema of its path parameter says so, so that no client (or fuzzer) takes `/streets/a.b` for a page.
UNDOTTED: dict[str, Any] = {"pattern": r"^[^.\x00-\x1f\x7f]*$"}
# No schema for XML or event streams (a string either way); JSON kinds are objects.
_OBJECT = {"schema": {"type": "object"}}


class AtomResponse(Response):
    media_type = "application/atom+xml"


class CapResponse(Response):
    media_type = "application/cap+xml"


class GeoJSONResponse(Response):
    media_type = "application/geo+json"


NOT_MODIFIED: Responses = {
    304: {
        "description": "Not modified: the client's copy (If-None-Match or If-Modified-Since) is current.",
        "headers": {"ETag": {"schema": {"type": "string"}}},
    }
}
# A private feed's token names a subscription that was ended (a 404 is one that never existed).
ENDED: Responses = {410: {"description": "The subscription was ended: subscribe again."}}
SEE_OTHER: Responses = {
    303: {
        "description": "A postcode on one street: that street's page.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}
FEED: Responses = {
    200: {
        "description": "The feed in the format its suffix names: `atom`, `rss` or `json` (JSON Feed 1.1).",
        "content": {"application/atom+xml": {}, "application/rss+xml": {}, "application/feed+json": _OBJECT},
    },
    **NOT_MODIFIED,
}
EVENTS: Responses = {
    200: {
        "description": "Server-Sent Events: `prompt`, `retired` and `refresh` events with ids; heartbeats.",
        "content": {"text/event-stream": {}},
    },
    429: {
        "description": "Too many live connections from this client.",
        "headers": {"Retry-After": {"schema": {"type": "string"}}},
    },
    503: {"description": "Too many live connections, or the street gazetteer is not loaded yet."},
}
GEOJSON_MAP: Responses = {
    200: {
        "description": "A GeoJSON FeatureCollection (RFC 7946).",
        "content": {"application/geo+json": _OBJECT},
    },
    **NOT_MODIFIED,
}
CAP_INDEX: Responses = {
    200: {"description": "An Atom feed of the current alerts.", "content": {"application/atom+xml": {}}},
    **NOT_MODIFIED,
}
CAP_MESSAGE: Responses = {
    200: {"description": "The alert as OASIS CAP 1.2.", "content": {"application/cap+xml": {}}},
    **NOT_MODIFIED,
}
# HTML pages rendered with validators (conditional GET) answer 304 too.
PAGE: Responses = NOT_MODIFIED
SHORT_LINK: Responses = {
    301: {
        "description": "The street's or ward's page.",
        "headers": {"Location": {"schema": {"type": "string"}}},
    }
}
