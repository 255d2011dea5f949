"""Wiring of the feeds service: broker, prompts consumer, live-updates listener, gazetteer, routers."""

from __future__ import annotations

import logging
from pathlib import Path

from fastapi import FastAPI
from starlette.middleware.gzip import GZipMiddleware

from shared.gazetteer import repository as gazetteer_repository
from shared.gazetteer.model import Gazetteer
from shared.gazetteer.serving import load_areas
from shared.kafka import make_broker
from shared.ratelimit import TokenBucket
from shared.service import Runtime, create_service_app
from shared.web import mount_static

from . import api, cap_routes, help, maps, web
from . import repository as repo
from .context import FeedsContext
from .errors import install_html_errors
from .fastpath import FromMemory
from .feedcache import BodyCache
from .handlers import register_handlers
from .listener import Listener
from .live import Hub
from .purge import purge_forever
from .settings import FeedsSettings

__all__ = ["MIGRATIONS", "NAME", "create_app"]

log = logging.getLogger(__name__)
NAME = "feeds"
MIGRATIONS = Path(__file__).parent / "migrations"
GZIP_MINIMUM_SIZE, GZIP_LEVEL = 1024, 6  # GZipMiddleware's, which FromMemory's answers reproduce


def create_app(
    settings: FeedsSettings, *, gazetteer: Gazetteer | None = None, freeze_heap: bool = False
) -> FastAPI:
    """`gazetteer` overrides the one loaded from the database (tests). `freeze_heap` (the service's own
    process, not a test's) moves what start-up built out of the garbage collector's sight."""
    broker = make_broker(settings, client_id=NAME)

    async def on_startup(runtime: Runtime[FeedsContext]) -> None:
        pool = runtime.require_pool()
        areas = await load_areas(pool, gazetteer, empty="pages")
        if areas is not None:
            areas.finder.warm()  # the search index, before the first resident asks
        hub = Hub(
            settings.sse_queue_size,
            max_clients=settings.sse_max_clients,
            max_per_client=settings.sse_max_per_client,
        )
        bodies = BodyCache(int(settings.feed_cache_mb * 1_000_000))
        help_limiter = TokenBucket(settings.help_rate_per_minute, settings.help_burst)
        async with pool.acquire() as conn:
            last = await repo.current_seq(conn)
        listener = Listener(settings.database_dsn(), hub, last)
        runtime.provide(FeedsContext(settings, pool, broker, hub, bodies, help_limiter, areas, listener))
        runtime.spawn(listener.run(), "feeds-listener")
        runtime.spawn(purge_forever(pool, settings), "feeds-purge-subscriptions")

    app = create_service_app(
        name=NAME,
        title="streetneeds feeds",
        description="Residents' street feeds (HTML, Atom, RSS, JSON Feed, Server-Sent Events), "
        "subscriptions without an account, anonymous 'I can help', printable street notices and "
        "public alerts in OASIS CAP 1.2.",
        settings=settings,
        broker=broker,
        schema=NAME,
        migrations=MIGRATIONS,
        extra_migrations=((gazetteer_repository.SCHEMA, gazetteer_repository.MIGRATIONS),),
        on_startup=on_startup,
        freeze_heap=freeze_heap,  # the gazetteer and its search index: ~125k long-lived objects
    )
    register_handlers(broker, app.state.runtime, settings.group_id, settings.kafka_batch_max_records)
    install_html_errors(app, settings.base_url)
    app.include_router(api.router)
    app.include_router(cap_routes.router)
    app.include_router(maps.router)
    app.include_router(help.router)
    app.include_router(web.router)
    mount_static(app)
    # Large feeds, the CAP index and the map's GeoJSON compress ~5x; small answers are not worth it.
    app.add_middleware(GZipMiddleware, minimum_size=GZIP_MINIMUM_SIZE, compresslevel=GZIP_LEVEL)
    # Outermost: remembered street and ward feeds skip routing and the layers above (same answers).
    app.add_middleware(
        FromMemory, runtime=app.state.runtime, gzip_minimum_size=GZIP_MINIMUM_SIZE, gzip_level=GZIP_LEVEL
    )
    return app
