"""One way to run a service: FastAPI for HTTP, a faststream broker for Kafka, an asyncpg pool.

`create_service_app` wires what every service needs and nothing service-specific: JSON logs,
migrations for the service's own schema, the broker started after the database is ready (so no
message is handled before its effect can be stored), `/healthz`, `/readyz`, `/metrics`,
problem+json errors, and a shutdown that stops consuming first, then closes the pool.
"""

from __future__ import annotations

import asyncio
import ctypes
import gc
import logging
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine, Mapping
from contextlib import asynccontextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Generic, TypeVar

import asyncpg
from fastapi import FastAPI, Request
from fastapi.openapi.docs import get_swagger_ui_html
from fastapi.responses import HTMLResponse
from fastapi.staticfiles import StaticFiles
from faststream.kafka import KafkaBroker

from .db import apply_migrations, create_pool
from .http import EdgeMiddleware, add_operational_routes, document_problems, install_problem_handlers
from .kafka import ensure_topics
from .logs import configure_logging
from .ratelimit import TokenBucket
from .settings import CommonSettings
from .web import HeadAsGet

__all__ = ["Runtime", "create_service_app", "release_free_memory", "running_context"]

log = logging.getLogger(__name__)
C = TypeVar("C")
# Allocations between young collections in a service's own process (CPython's default: 700). Most
# objects of a request or a poll die by reference counting before a collection; a young collection
# walks those still alive, so fewer of them cost less in all (under 1,000 signals/s the collector was
# 5-9% of ingest's CPU and 1.5-4% of the feeds' at the default).
YOUNG_GC_THRESHOLD = 50_000
Hook = Callable[["Runtime[Any]"], Awaitable[None]]
# glibc's malloc_trim, or None under a C library without it (musl, macOS).
_MALLOC_TRIM = getattr(ctypes.CDLL(None), "malloc_trim", None)
# Swagger UI vendored from npm (swagger-ui-dist), so /docs works offline: see shared/web/static/vendor.
SWAGGER_UI = Path(__file__).parent / "web" / "static" / "vendor" / "swagger-ui-5.35.0"


def release_free_memory() -> None:
    """Give the C heap's free pages back to the system (glibc's `malloc_trim`), after a burst of work.

    Python returns little of a burst's memory by itself: freed blocks stay in the C heap for reuse,
    fragmented, so a process's RSS stays near its peak. Measured on the aggregator after 32k signals
    on 10k streets (`bench aggregator`'s memory row): 20-25 MB less RSS afterwards. A no-op where the
    C library has no such call."""
    if _MALLOC_TRIM is not None:
        _MALLOC_TRIM(0)


async def running_context(request: Request) -> Any:
    """FastAPI dependency: the running service's `Runtime.context` (each service's `Context` alias
    names its type). Async on purpose: FastAPI runs a plain `def` dependency in its thread pool, a
    thread hop per request for an attribute read (~5% of ingest's CPU per one-signal POST)."""
    return request.app.state.runtime.context


@dataclass
class Runtime(Generic[C]):
    """What a running service holds; routes reach it through `app.state.runtime`.

    What is the service's own (its producer, areas, hub, limiters…) is one typed object, `context`,
    given by its startup hook with `provide`; routes take it through the service's FastAPI dependency.
    """

    name: str
    settings: CommonSettings
    broker: KafkaBroker
    pool: asyncpg.Pool | None = None
    tasks: list[asyncio.Task[Any]] = field(default_factory=list)
    # Per-route token buckets of `shared.ratelimit.enforce_rate`, by name.
    limiters: dict[str, TokenBucket] = field(default_factory=dict)
    _context: C | None = None

    @property
    def context(self) -> C:
        """The service's own dependencies; set once at startup, before any message or request."""
        if self._context is None:
            raise RuntimeError(f"{self.name}: the service context is given at startup")
        return self._context

    def provide(self, context: C) -> C:
        self._context = context
        return context

    def require_pool(self) -> asyncpg.Pool:
        """The pool, for a startup hook building its context (the pool is open before hooks run)."""
        if self.pool is None:
            raise RuntimeError(f"{self.name}: the database pool is opened at startup")
        return self.pool

    def spawn(self, coro: Coroutine[Any, Any, Any], name: str) -> None:
        """Run a background loop for the service's lifetime; it is cancelled on shutdown."""
        task: asyncio.Task[Any] = asyncio.create_task(coro, name=name)
        task.add_done_callback(_report_ended)
        self.tasks.append(task)

    def loops_alive(self) -> bool:
        """Whether every background loop is still running: one that ended means work has stopped."""
        return not any(task.done() for task in self.tasks)


def _report_ended(task: asyncio.Task[Any]) -> None:
    # A loop that ends by itself (not by shutdown) is a fault: say so at once, and readiness fails.
    if not task.cancelled():
        log.error("background loop %s ended", task.get_name(), exc_info=task.exception())


def create_service_app(
    *,
    name: str,
    title: str,
    description: str,
    settings: CommonSettings,
    broker: KafkaBroker,
    schema: str | None,
    migrations: Path | None,
    version: str = "1.0.0",
    on_startup: Hook | None = None,
    on_shutdown: Hook | None = None,
    extra_migrations: tuple[tuple[str, Path], ...] = (),
    freeze_heap: bool = False,
    server_settings: Mapping[str, str] | None = None,
) -> FastAPI:
    """`freeze_heap` (a service's own process, not tests, which build many apps in one process): after
    start-up, move every object alive then (gazetteer, indexes, code) out of the collector's reach. A
    full collection walked them all again (50-95 ms measured in ingest and the prompter under load,
    every ~15 s, stalling everything in flight). Young collections then come every
    YOUNG_GC_THRESHOLD allocations. `server_settings`: PostgreSQL settings of every connection of
    the service's pool (`shared.db.create_pool`)."""
    runtime: Runtime[Any] = Runtime(name=name, settings=settings, broker=broker)

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(name, settings.log_level)
        runtime.pool = await create_pool(settings.database_dsn(), server_settings=server_settings)
        async with runtime.pool.acquire() as conn:
            for other_schema, folder in extra_migrations:
                await apply_migrations(conn, other_schema, folder)
            if schema and migrations:
                await apply_migrations(conn, schema, migrations)
        await ensure_topics(settings)
        if on_startup:
            await on_startup(runtime)
        if freeze_heap:
            gc.collect()
            gc.freeze()
            gc.set_threshold(YOUNG_GC_THRESHOLD, 20, 100)
        await broker.start()
        log.info("service started", extra={"service": name})
        try:
            yield
        finally:
            # Stop consuming first: in-flight handlers finish and commit, the rest is redelivered.
            await broker.stop()
            for task in runtime.tasks:
                task.cancel()
            await asyncio.gather(*runtime.tasks, return_exceptions=True)
            if on_shutdown:
                await on_shutdown(runtime)
            await runtime.pool.close()
            log.info("service stopped", extra={"service": name})

    app = FastAPI(
        title=title,
        description=description,
        version=version,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
    )
    app.state.runtime = runtime
    add_offline_docs(app)
    app.add_middleware(HeadAsGet)  # HEAD answered wherever GET is (FastAPI routes declare GET only)
    install_problem_handlers(app)
    # Control characters and oversized bodies are refused once, here, for every route of every service.
    app.add_middleware(EdgeMiddleware, max_body_bytes=settings.max_body_bytes)
    document_problems(app)

    async def db_ready() -> bool:
        if runtime.pool is None:
            return False
        async with runtime.pool.acquire(timeout=2) as conn:
            return bool(await conn.fetchval("SELECT 1") == 1)

    async def kafka_ready() -> bool:
        return await broker.ping(timeout=2)

    async def background_ready() -> bool:
        return runtime.loops_alive()

    add_operational_routes(
        app,
        {"database": db_ready, "kafka": kafka_ready, "background": background_ready},
        metrics_token=settings.metrics_token,
    )
    return app


def add_offline_docs(app: FastAPI) -> None:
    """`/docs`: Swagger UI from the vendored files at `/docs/assets/` (FastAPI's default uses a CDN)."""
    app.mount("/docs/assets", StaticFiles(directory=SWAGGER_UI), name="docs-assets")

    @app.get("/docs", include_in_schema=False)
    async def docs() -> HTMLResponse:
        return get_swagger_ui_html(
            openapi_url=app.openapi_url or "/openapi.json",
            title=f"{app.title} – API",
            swagger_js_url="/docs/assets/swagger-ui-bundle.js",
            swagger_css_url="/docs/assets/swagger-ui.css",
            swagger_favicon_url="/docs/assets/favicon-32x32.png",
        )
