"""Wiring of the notifier: broker, prompts consumer, sender and digest loops, gazetteer, pages."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from pathlib import Path

from fastapi import FastAPI

from shared.gazetteer import repository as gazetteer_repository
from shared.gazetteer.model import Gazetteer
from shared.gazetteer.serving import load_areas
from shared.kafka import make_broker
from shared.ratelimit import TokenBucket
from shared.service import Runtime, create_service_app
from shared.web import mount_static

from . import web, webhooks
from .context import NotifierContext
from .digests import digest_loop
from .handlers import register_handlers
from .sender import Sender
from .settings import NotifierSettings

__all__ = ["MIGRATIONS", "NAME", "create_app"]

NAME = "notifier"
MIGRATIONS = Path(__file__).parent / "migrations"


def _utcnow() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def create_app(
    settings: NotifierSettings,
    *,
    gazetteer: Gazetteer | None = None,
    clock: Callable[[], dt.datetime] = _utcnow,
    run_digests: bool = True,
    freeze_heap: bool = False,
) -> FastAPI:
    """`gazetteer` overrides the one in the database and `clock` the wall clock (tests);
    `freeze_heap`: see `shared.service.create_service_app`."""
    broker = make_broker(settings, client_id=NAME)

    async def on_startup(runtime: Runtime[NotifierContext]) -> None:
        pool = runtime.require_pool()
        areas = await load_areas(pool, gazetteer, empty="sign-ups")
        limiter = TokenBucket(settings.signup_rate_per_minute, settings.signup_burst)
        runtime.provide(NotifierContext(settings, pool, clock, limiter, areas))
        sender = Sender(pool, settings, clock)
        for worker in range(settings.sender_workers):
            runtime.spawn(sender.run(worker), f"notifier-sender-{worker}")
        if run_digests:
            runtime.spawn(digest_loop(pool, settings, clock), "notifier-digests")

    app = create_service_app(
        name=NAME,
        title="streetneeds notifier",
        description="E-mail alerts for residents: double opt-in, instant or daily/weekly digests by "
        "category, one-click unsubscribe (RFC 8058), bounce and complaint suppression.",
        settings=settings,
        broker=broker,
        schema=NAME,
        migrations=MIGRATIONS,
        extra_migrations=((gazetteer_repository.SCHEMA, gazetteer_repository.MIGRATIONS),),
        on_startup=on_startup,
        freeze_heap=freeze_heap,  # ~115k objects alive after start-up (the gazetteer, code)
    )
    register_handlers(
        broker, app.state.runtime, settings.group_id, settings.kafka_batch_max_records, settings.poll_rest_ms
    )
    web.install_alert_errors(app, settings)
    app.include_router(web.router)
    app.include_router(webhooks.router)
    mount_static(app)
    return app
