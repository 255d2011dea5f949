"""Wiring: the aggregator's consumer, outbox relay, refresh and release loops, and HTTP routes."""

from __future__ import annotations

from pathlib import Path

from fastapi import FastAPI

from shared.contracts import STREET_NEEDS
from shared.kafka import make_broker
from shared.service import Runtime, create_service_app

from . import repository as repo
from .api import router
from .areas import load_areas
from .consumer import SignalConsumer
from .context import AggregatorContext
from .outbox import Wakeup, relay_forever, start_producer
from .processing import refresh_forever
from .purge import purge_forever
from .releases import release_forever
from .settings import AggregatorSettings

__all__ = ["create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


def create_app(settings: AggregatorSettings | None = None, *, freeze_heap: bool = False) -> FastAPI:
    """The aggregator; `freeze_heap`: see `shared.service.create_service_app` (the gazetteer's areas
    live as long as the process)."""
    settings = settings or AggregatorSettings()
    broker = make_broker(settings, client_id="aggregator")
    # Declared for the AsyncAPI document; the outbox relay does the publishing (it needs tombstones).
    broker.publisher(
        STREET_NEEDS.name,
        title=STREET_NEEDS.name,
        description=STREET_NEEDS.description,
        schema=STREET_NEEDS.model,
    )

    async def on_startup(runtime: Runtime[AggregatorContext]) -> None:
        pool = runtime.require_pool()
        async with pool.acquire() as conn:
            areas = await load_areas(conn, settings.policy())
        producer = await start_producer(settings)
        wakeup = Wakeup()
        consumer = SignalConsumer(pool, settings, areas, wakeup=wakeup)
        await consumer.start()
        runtime.provide(AggregatorContext(pool, areas, producer, consumer))
        runtime.spawn(consumer.run(), "aggregator-consumer")
        runtime.spawn(
            relay_forever(
                pool,
                producer,
                limit=settings.outbox_batch,
                interval=settings.outbox_interval_seconds,
                wakeup=wakeup,
            ),
            "aggregator-outbox",
        )
        runtime.spawn(
            refresh_forever(
                pool,
                areas,
                interval=settings.refresh_interval_seconds,
                trend_days=settings.trend_days,
            ),
            "aggregator-refresh",
        )
        runtime.spawn(release_forever(pool, areas, settings), "aggregator-releases")
        runtime.spawn(purge_forever(pool, settings), "aggregator-purge")

    async def on_shutdown(runtime: Runtime[AggregatorContext]) -> None:
        await runtime.context.consumer.stop()
        await runtime.context.producer.stop()

    app = create_service_app(
        name="aggregator",
        title="streetneeds aggregator",
        description="Street-level needs that passed disclosure control: place needs in near real time, "
        "person needs as monthly bands. Operators also see what was held back and why.",
        settings=settings,
        broker=broker,
        schema="aggregator",
        migrations=MIGRATIONS,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        freeze_heap=freeze_heap,
        server_settings=repo.SESSION_SETTINGS,
    )
    app.include_router(router)
    return app
