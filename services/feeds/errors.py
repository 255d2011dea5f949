"""Errors as friendly HTML pages for browsers on residents' pages; problem+json for everything else.

The shared handlers still build every error (so the status, title, detail, field errors and headers
such as Retry-After are decided in one place); this only re-renders their problem+json as a page
when the request is for an HTML page and its Accept header prefers HTML.
"""

from __future__ import annotations

import inspect
import re
from typing import Any

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from shared.http import Problem
from shared.web import PRIVATE_PAGE_HEADERS, install_error_pages, problem_page

from .pages import render
from .refusals import GazetteerNotLoaded, SubscriptionEnded, TooManyResponses

__all__ = ["install_html_errors", "is_page", "prefers_html"]

# The JSON API, CAP alerts, feed documents, live streams and operational routes are for machines.
_MACHINE = re.compile(r"^/(v1|cap)/|\.(atom|rss|json|geojson|xml)$|/events$|^/(healthz|readyz|metrics)$")
_JSON = ("application/problem+json", "application/json")
_HINTS = {
    404: "The link may be mistyped, or the page may have been taken down.",
    410: "This link was ended on purpose and will not work again.",
    422: "Please go back, check what you entered, and try again.",
    429: "Please wait a little and try again.",
}


# What residents call the fields of the forms (pages never show a field's internal name).
_FIELD_LABELS = {
    "radius_m": "Distance",
    "lat": "Point on the map",
    "lon": "Point on the map",
    "street_id": "Street",
    "street_ids": "Streets",
    "ward_code": "Ward",
    "kind": "What to follow",
    "q": "Search",
}


def _plain(error: dict[str, Any]) -> dict[str, str]:
    field, message = error.get("field") or "", error.get("message", "")
    if not field:
        return {"message": message}
    label = _FIELD_LABELS.get(field.split(".")[0], "Your answer")
    return {"message": f"{label}: {message}"}


def is_page(path: str) -> bool:
    return not _MACHINE.search(path)


def _quality(accept: str, media_type: str) -> tuple[float, int]:
    """(q, rank) that `accept` gives `media_type` from its most specific matching range (RFC 9110
    §12.5.1); rank 2 names the type, 1 is `type/*`, 0 is `*/*`, -1 no match."""
    kind = media_type.split("/", 1)[0]
    best = (0.0, -1)
    for part in accept.lower().split(","):
        range_, *params = (p.strip() for p in part.split(";"))
        rank = 2 if range_ == media_type else 1 if range_ == f"{kind}/*" else 0 if range_ == "*/*" else -1
        if rank <= best[1]:
            continue
        q = next((p.partition("=")[2] for p in params if p.partition("=")[0].strip() == "q"), "1")
        try:
            best = (float(q), rank)
        except ValueError:
            best = (0.0, rank)
    return best


def prefers_html(accept: str) -> bool:
    """True when HTML is asked for by name (a bare `*/*` is not) and ranks at least as high as JSON."""
    html_q, html_rank = max(_quality(accept, t) for t in ("text/html", "application/xhtml+xml"))
    json_q = max(_quality(accept, t)[0] for t in _JSON)
    return html_rank >= 1 and html_q > 0 and html_q >= json_q


def _page(problem: Response, base_url: str) -> HTMLResponse:
    return problem_page(
        problem, render, hints=_HINTS, headers=PRIVATE_PAGE_HEADERS, plain=_plain, base_url=base_url
    )


def _problem(exc: Exception) -> Problem:
    """The HTTP answer to one of the feeds' own refusals (`shared.refusals` are answered by the shared
    handlers)."""
    if isinstance(exc, SubscriptionEnded):
        return Problem(410, exc.title, exc.detail, errors=exc.errors)
    if isinstance(exc, TooManyResponses):
        return Problem(
            429,
            "Too many responses",
            "Thank you! Please try again a little later.",
            headers={"Retry-After": str(exc.retry_after)},
        )
    return Problem(503, "The street gazetteer is not loaded yet", headers={"Retry-After": "30"})


async def _answer(request: Request, exc: Exception) -> Response:
    # Answered as the app answers a Problem, looked up now: problem+json, or the page for a person.
    answer = request.app.exception_handlers[Problem](request, _problem(exc))
    response: Response = await answer if inspect.isawaitable(answer) else answer
    return response


def install_html_errors(app: FastAPI, base_url: str) -> None:
    """Map the feeds' own refusals, then wrap the shared problem+json handlers (install them first) with
    HTML negotiation."""
    for exc_class in (SubscriptionEnded, TooManyResponses, GazetteerNotLoaded):
        app.add_exception_handler(exc_class, _answer)

    def error_page(request: Request, problem: Response) -> Response | None:
        if is_page(request.url.path) and prefers_html(request.headers.get("accept", "")):
            return _page(problem, base_url)
        return None

    install_error_pages(app, error_page)
