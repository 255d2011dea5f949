"""Wiring: settings, broker, handlers, routes, the gazetteer and the reconcile loop."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from pathlib import Path

import asyncpg
from fastapi import FastAPI
from faststream.kafka import KafkaBroker

from shared.kafka import make_broker, start_producer
from shared.service import Runtime, create_service_app
from shared.web import mount_static

from . import admin_api, impact_pages, org_pages
from . import org_repository as org_repo
from .api import router
from .context import PrompterContext
from .handlers import SERVICE, register_handlers
from .pages import install_html_errors
from .places import load_places
from .platforms import check_every_category, load_directory
from .publisher import PromptPublisher
from .settings import PrompterSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


async def _reconcile_forever(publisher: PromptPublisher, broker: KafkaBroker, interval_s: float) -> None:
    while True:
        delay = interval_s
        if not await broker.ping(timeout=2):
            # Spawned before the broker starts (create_service_app starts it after on_startup),
            # or the broker is away: try again soon rather than in an interval.
            delay = 1.0
        else:
            try:
                changed = await publisher.reconcile()
                if changed:
                    log.info("reconcile republished prompts", extra={"changed": changed})
            except Exception:  # a failed pass (database or broker away) must not end the loop
                log.exception("reconcile failed; retrying next interval")
        await asyncio.sleep(delay)


async def purge_offers(pool: asyncpg.Pool, retention_days: int, now: dt.datetime) -> int:
    """Delete residents' contact details left unhanded for `retention_days` (the clock is a parameter)."""
    async with pool.acquire() as conn, conn.transaction():
        return await org_repo.purge_offers(conn, now - dt.timedelta(days=retention_days))


async def _purge_forever(pool: asyncpg.Pool, settings: PrompterSettings) -> None:
    while True:
        try:
            gone = await purge_offers(pool, settings.offer_retention_days, dt.datetime.now(dt.UTC))
            if gone:
                log.info("unhanded offers of help deleted", extra={"deleted": gone})
        except Exception:  # the database away must not end the loop
            log.exception("purging offers failed; retrying next interval")
        await asyncio.sleep(settings.purge_interval_s)


def create_app(settings: PrompterSettings, *, freeze_heap: bool = False) -> FastAPI:
    """The prompter; `freeze_heap`: see `shared.service.create_service_app`."""
    broker = make_broker(settings, client_id=SERVICE)

    async def on_startup(runtime: Runtime[PrompterContext]) -> None:
        directory = load_directory()
        check_every_category(directory)
        pool = runtime.require_pool()
        async with pool.acquire() as conn:
            places = await load_places(conn)
            await org_repo.load_directory(conn, directory)
        publisher = PromptPublisher(pool, await start_producer(settings, SERVICE), places)
        runtime.provide(PrompterContext(settings, pool, places, publisher))
        runtime.spawn(_purge_forever(pool, settings), "prompter-purge-offers")
        runtime.spawn(
            _reconcile_forever(publisher, broker, settings.reconcile_interval_s), "prompter-reconcile"
        )

    async def on_shutdown(runtime: Runtime[PrompterContext]) -> None:
        await runtime.context.publisher.producer.stop()

    app = create_service_app(
        name=SERVICE,
        title="streetneeds prompter",
        description="Turns publishable street needs into plain-language prompts for action, linked to "
        "nearby opportunities registered by the council and VCS partners.",
        settings=settings,
        broker=broker,
        schema="prompter",
        migrations=MIGRATIONS,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        freeze_heap=freeze_heap,
    )
    register_handlers(broker, app.state.runtime, settings.group_id, settings.kafka_batch_max_records)
    app.include_router(router)
    app.include_router(org_pages.router)
    app.include_router(impact_pages.router)
    app.include_router(admin_api.router)
    install_html_errors(app, settings.feeds_url)
    mount_static(app)
    return app
