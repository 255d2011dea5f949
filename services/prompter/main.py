"""Wiring: settings, broker, handlers, routes, the gazetteer and the reconcile loop."""

from __future__ import annotations

import asyncio
import logging
from pathlib import Path

from fastapi import FastAPI

from shared.kafka import make_broker
from shared.service import Runtime, create_service_app

from .api import router
from .handlers import SERVICE, register_handlers
from .places import load_places
from .publisher import PromptPublisher
from .settings import PrompterSettings

__all__ = ["create_app"]

log = logging.getLogger(__name__)
MIGRATIONS = Path(__file__).parent / "migrations"


async def _reconcile_forever(publisher: PromptPublisher, interval_s: float) -> None:
    while True:
        delay = interval_s
        if not await publisher.broker.ping(timeout=2):
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


def create_app(settings: PrompterSettings) -> FastAPI:
    broker = make_broker(settings, client_id=SERVICE)

    async def on_startup(runtime: Runtime) -> None:
        async with runtime.pool.acquire() as conn:
            runtime.state["places"] = await load_places(conn)
        publisher = PromptPublisher(runtime.pool, broker, runtime.state["places"])
        runtime.state["publisher"] = publisher
        if settings.admin_token is None:
            log.warning("PROMPTER_ADMIN_TOKEN is not set: opportunity writes and impact answer 403")
        runtime.spawn(_reconcile_forever(publisher, settings.reconcile_interval_s), "prompter-reconcile")

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
    )
    register_handlers(broker, app.state.runtime, settings.group_id)
    app.include_router(router)
    return app
