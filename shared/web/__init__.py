"""What every service with pages for people shares: the base template, its stylesheet and static files.

Residents' pages (feeds), e-mail alert pages (notifier) and organisations' and impact pages
(prompter) look alike because they extend the same `base.html` and load the same `/static/` files.
Static files are vendored or built into the package, never fetched from a CDN at run time.
"""

from __future__ import annotations

import inspect
import json
from collections.abc import Awaitable, Callable, Mapping
from pathlib import Path
from typing import Any

from fastapi import FastAPI, Request, Response
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from jinja2 import ChoiceLoader, Environment, FileSystemLoader, select_autoescape
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.http import Problem
from shared.refusals import Refusal

__all__ = [
    "PRIVATE_PAGE_HEADERS",
    "STATIC_DIR",
    "TEMPLATES_DIR",
    "HeadAsGet",
    "install_error_pages",
    "kept_headers",
    "mount_static",
    "page_renderer",
    "problem_of",
    "problem_page",
]

TEMPLATES_DIR = Path(__file__).parent / "templates"
# A page about one person (their alerts, an operator's console): never cached, its address never sent on.
PRIVATE_PAGE_HEADERS = {"Cache-Control": "no-store", "Referrer-Policy": "no-referrer"}
STATIC_DIR = Path(__file__).parent / "static"


def page_renderer(templates: Path, **globals_: Any) -> Callable[..., bytes]:
    """A `render(template, **context) -> bytes` over the service's templates, then the shared ones."""
    env = Environment(
        loader=ChoiceLoader([FileSystemLoader(templates), FileSystemLoader(TEMPLATES_DIR)]),
        autoescape=select_autoescape(("html",)),
        trim_blocks=True,
        lstrip_blocks=True,
    )
    env.globals.update(globals_)

    def render(template: str, **context: Any) -> bytes:
        context.setdefault("alternates", [])
        context.setdefault("private", False)
        context.setdefault("counts", {})
        context.setdefault("map", None)
        context.setdefault("canonical", None)
        return env.get_template(template).render(**context).encode()

    return render


# An exception handler as FastAPI holds it (shared.http's are coroutines; a plain function would do too).
_Handler = Callable[[Request, Exception], Response | Awaitable[Response]]


def install_error_pages(app: FastAPI, page: Callable[[Request, Response], Response | None]) -> None:
    """Wrap the shared problem+json handlers (install those first): where `page` makes a page of the
    problem answer for this request, a person gets that page; API clients keep problem+json."""
    for exc_class in (Problem, Refusal, RequestValidationError, StarletteHTTPException):
        as_problem = app.exception_handlers[exc_class]

        async def handler(request: Request, exc: Exception, as_problem: _Handler = as_problem) -> Response:
            answer = as_problem(request, exc)
            response = await answer if inspect.isawaitable(answer) else answer
            return page(request, response) or response

        app.add_exception_handler(exc_class, handler)


def problem_of(response: Response) -> dict[str, Any]:
    """The problem+json document of a problem answer (title, status, detail, errors)."""
    problem: dict[str, Any] = json.loads(bytes(response.body))
    return problem


def kept_headers(response: Response) -> dict[str, str]:
    """What a page made of a problem answer keeps of its headers (Retry-After, WWW-Authenticate…):
    all but the body's type and length."""
    return {k: v for k, v in response.headers.items() if k.lower() not in ("content-type", "content-length")}


def problem_page(
    problem: Response,
    render: Callable[..., bytes],
    *,
    hints: Mapping[int, str],
    headers: Mapping[str, str],
    plain: Callable[[dict[str, Any]], dict[str, str]] | None = None,
    **context: Any,
) -> HTMLResponse:
    """A person's page (the service's `error.html`) of a problem answer: its title, detail and the
    fields' errors (through `plain`, where a service words them for people), the hint for its status.

    The answer's own headers are kept (Retry-After, WWW-Authenticate…), under the page's `headers`.
    """
    body = problem_of(problem)
    status = body["status"]
    errors = body.get("errors", [])
    html = render(
        "error.html",
        title=body["title"],
        detail=body.get("detail", ""),
        status=status,
        errors=[plain(e) for e in errors] if plain else errors,
        hint=hints.get(status, ""),
        private=True,
        **context,
    )
    return HTMLResponse(html, status_code=status, headers={**kept_headers(problem), **headers})


def mount_static(app: FastAPI) -> None:
    """Serve the shared static files at `/static/` (long-cached: file names carry versions)."""
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")


class HeadAsGet:
    """ASGI middleware: answer HEAD on every GET route with the GET's status and headers, no body.

    FastAPI routes declare GET only (so HEAD would be 405). Live streams (`/events`) never end, so
    they are left alone.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http" or scope["method"] != "HEAD" or scope["path"].endswith("/events"):
            await self.app(scope, receive, send)
            return

        async def send_no_body(message: Message) -> None:
            if message["type"] == "http.response.body":
                if message.get("more_body", False):
                    return
                message = {"type": "http.response.body", "body": b"", "more_body": False}
            await send(message)

        await self.app({**scope, "method": "GET"}, receive, send_no_body)
