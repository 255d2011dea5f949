"""Conditional GET (RFC 9110): strong ETags, Last-Modified, 304, Cache-Control."""

from __future__ import annotations

import datetime as dt
import hashlib
from email.utils import format_datetime, parsedate_to_datetime

from fastapi import Request
from fastapi.responses import Response
from starlette.requests import HTTPConnection

__all__ = ["cacheable", "headers_for", "is_fresh", "not_modified"]


def _etag_matches(header: str, etag: str) -> bool:
    if header.strip() == "*":
        return True
    # If-None-Match uses the weak comparison: W/"x" matches "x".
    tags = [t.strip().removeprefix("W/") for t in header.split(",")]
    return etag in tags


def _not_modified_since(header: str, last_modified: dt.datetime) -> bool:
    try:
        since = parsedate_to_datetime(header)
    except (TypeError, ValueError):
        return False
    if since.tzinfo is None:
        return False
    return last_modified.replace(microsecond=0) <= since


def headers_for(
    etag: str, *, last_modified: dt.datetime | None, max_age: int, private: bool = False
) -> dict[str, str]:
    """The validators and caching headers of a representation (sent with a 200 and a 304 alike)."""
    headers = {
        "ETag": etag,
        "Cache-Control": f"{'private' if private else 'public'}, max-age={max_age}",
        "Vary": "Accept-Encoding",
    }
    if last_modified is not None:
        headers["Last-Modified"] = format_datetime(last_modified.astimezone(dt.UTC), usegmt=True)
    if private:
        # Capability URLs must not leak through the Referer of links followed from the page.
        headers["Referrer-Policy"] = "no-referrer"
    return headers


def is_fresh(request: HTTPConnection, etag: str, last_modified: dt.datetime | None) -> bool:
    """Whether the client's copy is current: If-None-Match wins over If-Modified-Since when both are
    sent (RFC 9110 §13.2.2)."""
    inm = request.headers.get("if-none-match")
    if inm is not None:
        return _etag_matches(inm, etag)
    ims = request.headers.get("if-modified-since")
    return ims is not None and last_modified is not None and _not_modified_since(ims, last_modified)


def not_modified(headers: dict[str, str]) -> Response:
    return Response(status_code=304, headers=headers)


def cacheable(
    request: Request,
    body: bytes,
    media_type: str,
    *,
    last_modified: dt.datetime | None,
    max_age: int,
    private: bool = False,
) -> Response:
    """A 200 with validators (the ETag a hash of the exact bytes), or a 304 when the client's copy is
    current. For pages cheap enough to render on every request; feeds validate before rendering."""
    etag = f'"{hashlib.sha256(body).hexdigest()[:32]}"'
    headers = headers_for(etag, last_modified=last_modified, max_age=max_age, private=private)
    if is_fresh(request, etag, last_modified):
        return not_modified(headers)
    return Response(body, media_type=media_type, headers=headers)
