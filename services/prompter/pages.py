"""HTML for people: the prompter's templates over the shared base page, and errors as plain pages."""

from __future__ import annotations

import re
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from shared.contracts import CATALOGUE
from shared.web import install_error_pages, page_renderer, problem_page

__all__ = ["NO_STORE", "install_html_errors", "is_page", "page", "render"]

render = page_renderer(
    Path(__file__).parent / "templates",
    category_names={str(c): i.name for c, i in CATALOGUE.items()},
)
NO_STORE = {
    "Cache-Control": "no-store",
    "Referrer-Policy": "same-origin",
    # Organisations' forms must not be framed by another site (clickjacking).
    "X-Frame-Options": "DENY",
    "Content-Security-Policy": "frame-ancestors 'none'",
}
# Organisations' pages, the residents' offer form and the impact pages are for people.
_PAGES = re.compile(r"^/(organisations|offers|impact)(/|$)")
_HINTS = {
    401: "Please sign in again with your organisation's API key.",
    403: "Nothing was changed.",
    404: "The link may be mistyped, or the page may have been taken down.",
    409: "Nothing was changed.",
    422: "Please go back, check what you entered, and try again.",
    429: "Please wait a little and try again.",
}


def is_page(path: str) -> bool:
    return bool(_PAGES.match(path))


def page(body: bytes, status: int = 200, headers: dict[str, str] | None = None) -> HTMLResponse:
    return HTMLResponse(body, status_code=status, headers={**NO_STORE, **(headers or {})})


def _error_page(problem: Response, base_url: str, organisations: bool) -> HTMLResponse:
    return problem_page(
        problem, render, hints=_HINTS, headers=NO_STORE, base_url=base_url, organisations=organisations
    )


def install_html_errors(app: FastAPI, base_url: str) -> None:
    """On people's pages every error is a plain page naming the field; the JSON API keeps problem+json."""

    def error_page(request: Request, problem: Response) -> Response | None:
        if not is_page(request.url.path):
            return None
        return _error_page(problem, base_url, request.url.path.startswith("/organisations"))

    install_error_pages(app, error_page)
