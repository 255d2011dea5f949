"""Wiring of the partner service: broker, street-needs handler, delivery worker, HTTP routers."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from fastapi import FastAPI

from shared.kafka import make_broker
from shared.service import Runtime, create_service_app

from . import admin_api, needs_api, webhooks_api
from .context import PartnersContext
from .delivery import run_delivery_worker
from .geometry import AreaGeometry, load_gazetteer
from .handlers import register_handlers
from .settings import PartnersSettings

if TYPE_CHECKING:
    from shared.gazetteer.model import Gazetteer

__all__ = ["create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(
    settings: PartnersSettings, *, gazetteer: Gazetteer | None = None, freeze_heap: bool = False
) -> FastAPI:
    """The partner service. `gazetteer` overrides the one loaded from the database (tests);
    `freeze_heap`: see `shared.service.create_service_app`."""
    broker = make_broker(settings, client_id="partners")

    async def on_startup(runtime: Runtime[PartnersContext]) -> None:
        pool = runtime.require_pool()
        found = gazetteer
        if found is None and settings.load_gazetteer:
            async with pool.acquire() as conn:
                found = await load_gazetteer(conn)
        runtime.provide(PartnersContext.build(settings, pool, AreaGeometry(found)))
        runtime.spawn(run_delivery_worker(pool, settings), name="partners-webhook-delivery")

    app = create_service_app(
        name="partners",
        title="streetneeds partner API",
        description="Aggregated, disclosure-controlled street needs for voluntary and community "
        "sector partners: JSON, GeoJSON and CSV, history, and signed webhooks. See docs/partners.md.",
        settings=settings,
        broker=broker,
        schema="partners",
        migrations=MIGRATIONS,
        on_startup=on_startup,
        freeze_heap=freeze_heap,  # ~125k objects alive after start-up (the gazetteer, code)
    )
    register_handlers(broker, app.state.runtime, settings.group_id, rest_ms=settings.poll_rest_ms)
    app.include_router(needs_api.router)
    app.include_router(webhooks_api.router)
    app.include_router(admin_api.router)
    return app
