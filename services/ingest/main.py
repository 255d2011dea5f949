"""Wiring: the ingest app (JSON API, Open311, Kafka subscriber) on the shared service runtime."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from pydantic.json_schema import models_json_schema

from shared.gazetteer.model import Gazetteer
from shared.kafka import make_broker, partitioned_by, start_producer
from shared.service import Runtime, create_service_app

from . import admin_api, api, handlers, open311_api
from .anonymise import Pseudonymiser
from .auth import RateLimiter
from .context import IngestContext
from .known_systems import KnownSystems
from .pipeline import Pipeline
from .quiet import QuietErrors
from .settings import IngestSettings

__all__ = ["MIGRATIONS", "create_app"]

MIGRATIONS = Path(__file__).parent / "migrations"


async def _load_gazetteer(runtime: Runtime[IngestContext]) -> Gazetteer:
    from shared.gazetteer.repository import load

    async with runtime.require_pool().acquire() as conn:
        return await load(conn)


def create_app(
    settings: IngestSettings, *, gazetteer: Gazetteer | None = None, freeze_heap: bool = False
) -> FastAPI:
    """The ingest service. `gazetteer` is loaded from the database at start unless given (tests);
    `freeze_heap`: see `shared.service.create_service_app`."""
    broker = make_broker(settings, client_id="ingest")

    async def on_startup(runtime: Runtime[IngestContext]) -> None:
        gaz = gazetteer if gazetteer is not None else await _load_gazetteer(runtime)
        if not gaz.streets:  # every signal would be rejected: refuse to start instead
            raise RuntimeError("the gazetteer is empty: run `streetneeds gazetteer import` (make setup)")
        secrets = {v: s.get_secret_value() for v, s in settings.pseudonym_keys_by_version.items()}
        pool = runtime.require_pool()
        pseudonymiser = Pseudonymiser(secrets, settings.pseudonym_key_version)
        # Signals are keyed by street and partitioned by place unit: an area's signals share a partition.
        producer = await start_producer(settings, "ingest", partitioner=partitioned_by(gaz.partition_key))
        pipeline = Pipeline(pool, producer, gaz, pseudonymiser, settings.max_distance_m)
        systems = KnownSystems(pool)
        runtime.provide(IngestContext(settings, pool, gaz, RateLimiter(), pipeline, systems))
        runtime.spawn(systems.listen_forever(), "council-systems-listener")

    async def on_shutdown(runtime: Runtime[IngestContext]) -> None:
        await runtime.context.pipeline.producer.stop()

    app = create_service_app(
        name="ingest",
        title="streetneeds ingest",
        description="Council systems send signals here (JSON API, Open311 GeoReport v2, or Kafka). "
        "Each is anonymised at the door: only a street, a category, a keyed pseudonym and a coarse "
        "time travel on.",
        settings=settings,
        broker=broker,
        schema="ingest",
        migrations=MIGRATIONS,
        on_startup=on_startup,
        on_shutdown=on_shutdown,
        freeze_heap=freeze_heap,
    )
    handlers.register(broker, app.state.runtime, settings.consumer_group)
    app.include_router(api.router)
    app.include_router(open311_api.router)
    app.include_router(admin_api.router)
    app.add_middleware(QuietErrors)  # docs/privacy.md rule 1: no input in any log line
    _document_request_models(app)
    return app


def _document_request_models(app: FastAPI) -> None:
    """Add the hand-parsed request bodies' models to the OpenAPI components."""

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            _, defs = models_json_schema(
                [(m, "validation") for m in api.openapi_models()], ref_template="#/components/schemas/{model}"
            )
            schema.setdefault("components", {}).setdefault("schemas", {}).update(defs.get("$defs", {}))
            app.openapi_schema = schema
        return app.openapi_schema

    # FastAPI's documented way to extend the schema is to replace the method; mypy forbids assigning one.
    app.openapi = openapi  # type: ignore[method-assign]
