"""Every service serves /docs from vendored Swagger UI files (no CDN) and answers HEAD like GET."""

from __future__ import annotations

import importlib

import httpx
import pytest
from fastapi import FastAPI

from services.docs import SERVICES, _settings_class
from shared.registry import by_name


def _app(service: str) -> FastAPI:
    """The service's app, built as `make docs` builds it (never started: no lifespan, no servers)."""
    main = importlib.import_module(f"{by_name(service).module}.main")
    settings = _settings_class(service).model_construct(
        database_url="postgresql://docs", kafka_bootstrap_servers="docs:9092"
    )
    return main.create_app(settings)


@pytest.mark.parametrize("service", SERVICES)
async def test_docs_are_served_offline_and_head_is_answered(service):
    transport = httpx.ASGITransport(app=_app(service))
    async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
        page = await client.get("/docs")
        assert page.status_code == 200
        assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn." not in page.text
        for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
            assert (await client.get(f"/docs/assets/{asset}")).status_code == 200
        head = await client.head("/docs")
        assert head.status_code == 200 and head.content == b""
        assert head.headers["content-type"] == page.headers["content-type"]
