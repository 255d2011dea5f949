"""Wiring of the console: its own schema, calls to the other services, HTML pages and their errors."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import RedirectResponse, Response
from starlette.exceptions import HTTPException as StarletteHTTPException

from shared.kafka import make_broker
from shared.service import Runtime, create_service_app
from shared.web import PRIVATE_PAGE_HEADERS, mount_static

from . import moderation, web
from .auth import Refused, SignInRequired, current
from .context import ConsoleContext
from .settings import ConsoleSettings
from .targets import Targets

__all__ = ["MIGRATIONS", "NAME", "create_app"]

NAME = "console"
MIGRATIONS = Path(__file__).parent / "migrations"
# Pages of operators: never cached, never framed, no third-party anything.
SECURITY_HEADERS = {
    **PRIVATE_PAGE_HEADERS,
    "X-Frame-Options": "DENY",
    "X-Content-Type-Options": "nosniff",
    "Content-Security-Policy": "default-src 'self'; style-src 'self' 'unsafe-inline'; img-src 'self' data:; "
    "form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
}


def create_app(settings: ConsoleSettings, *, targets: Targets | None = None) -> FastAPI:
    broker = make_broker(settings, client_id=NAME)

    async def on_startup(runtime: Runtime[ConsoleContext]) -> None:
        runtime.provide(ConsoleContext(settings, runtime.require_pool(), targets or Targets(settings)))

    async def on_shutdown(runtime: Runtime[ConsoleContext]) -> None:
        await runtime.context.targets.close()

    app = create_service_app(
        name=NAME,
        title="streetneeds console",
        description="The council operators' console: council systems and partner keys, privacy "
        "operations, dead letters, volumes, consumer lag and health, in a browser.",
        settings=settings,
        broker=broker,
        schema=NAME,
        migrations=MIGRATIONS,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
    )

    @app.middleware("http")
    async def _headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
        response = await call_next(request)
        if not request.url.path.startswith(("/static/", "/metrics", "/healthz", "/readyz")):
            for name, value in SECURITY_HEADERS.items():
                response.headers.setdefault(name, value)
        return response

    @app.exception_handler(SignInRequired)
    async def _sign_in(request: Request, _: SignInRequired) -> Response:
        return RedirectResponse("/sign-in", status_code=303)

    @app.exception_handler(Refused)
    async def _refused(request: Request, exc: Refused) -> Response:
        return web.problem_page(request, await current(request), exc.status, exc.title, exc.message)

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> Response:
        if exc.status_code == 404:
            return web.problem_page(
                request, None, 404, "Page not found", "There is no such page in the console."
            )
        if exc.status_code == 405:
            return web.problem_page(request, None, 405, "Not allowed", "That page cannot be used that way.")
        return web.problem_page(request, None, exc.status_code, "Something went wrong", str(exc.detail))

    @app.exception_handler(RequestValidationError)
    async def _invalid(request: Request, _: RequestValidationError) -> Response:
        return web.problem_page(
            request, await current(request), 422, "Check the address", "Part of that address is not valid."
        )

    app.include_router(web.router)
    app.include_router(moderation.router)
    mount_static(app)
    return app
