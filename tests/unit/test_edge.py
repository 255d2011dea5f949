"""The HTTP edge every service shares (issue 11): control characters, body limits, documented problems,
405 Allow headers, metrics access and settings that refuse placeholder secrets."""

from __future__ import annotations

import json
from typing import Annotated

import httpx
import pytest
from fastapi import Body, FastAPI, Form, Query
from pydantic import BaseModel, SecretStr, ValidationError

from services.docs import SERVICES, openapi
from shared.http import (
    PROBLEM_JSON,
    EdgeMiddleware,
    add_operational_routes,
    body_limit,
    complete_openapi,
    document_problems,
    install_problem_handlers,
)
from shared.settings import CommonSettings


class Note(BaseModel):
    text: str


def _app(max_body_bytes: int = 1024) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(EdgeMiddleware, max_body_bytes=max_body_bytes)
    document_problems(app)

    @app.get("/v1/areas/{area_id}")
    async def area(area_id: str, ward: Annotated[str | None, Query()] = None) -> dict:
        return {"area_id": area_id, "ward": ward}

    @app.post("/v1/areas/{area_id}")
    async def update(area_id: str, note: Note) -> dict:
        return {"text": note.text}

    @app.post("/v1/big", openapi_extra=body_limit(4096))
    async def big(note: Note) -> dict:
        return {"size": len(note.text)}

    @app.post("/form")
    async def form(name: Annotated[str, Form()]) -> dict:
        return {"name": name}

    @app.post("/raw")
    async def raw(payload: Annotated[dict, Body()]) -> dict:
        return {"keys": len(payload)}

    add_operational_routes(app, {}, metrics_token=SecretStr("m" * 32))
    return app


def _client(app: FastAPI, client: tuple[str, int] = ("127.0.0.1", 50000)) -> httpx.AsyncClient:
    transport = httpx.ASGITransport(app=app, client=client)
    return httpx.AsyncClient(transport=transport, base_url="http://edge")


@pytest.mark.parametrize(
    ("url", "field"),
    [
        ("/v1/areas/a%00b", "area_id"),
        ("/v1/areas/x?ward=a%00b", "ward"),
        ("/v1/areas/x?ward=a%1Fb", "ward"),
        ("/v1/areas/x?ward=a%7Fb", "ward"),
        ("/v1/areas/a%0Ab", "area_id"),
    ],
)
async def test_control_characters_in_path_and_query_answer_400_naming_the_parameter(
    url: str, field: str
) -> None:
    async with _client(_app()) as client:
        response = await client.get(url)
    assert response.status_code == 400
    assert response.headers["content-type"] == PROBLEM_JSON
    assert response.json()["errors"][0]["field"] == field


async def test_ordinary_text_passes_the_edge() -> None:
    async with _client(_app()) as client:
        response = await client.get("/v1/areas/E05013668?ward=" + "W" * 300)
        posted = await client.post("/v1/areas/x", json={"text": "two\nlines\tand a tab"})
        form = await client.post("/form", data={"name": "Flat 2\r\nKentish Town"})
    assert response.status_code == 200 and response.json()["ward"] == "W" * 300
    assert posted.status_code == 200
    assert form.status_code == 200


async def test_nul_in_json_text_or_keys_answers_400_naming_the_field() -> None:
    async with _client(_app()) as client:
        value = await client.post("/v1/areas/x", json={"text": "a\x00b"})
        nested = await client.post("/raw", json={"a": [{"b": "x\x00"}]})
        key = await client.post("/raw", json={"k\x00": 1})
        escaped = await client.post(
            "/v1/areas/x", content=b'{"text": "a\\\\u0000b"}', headers={"content-type": "application/json"}
        )
    assert value.status_code == 400 and value.json()["errors"][0]["field"] == "text"
    assert nested.status_code == 400 and nested.json()["errors"][0]["field"] == "a[0].b"
    assert key.status_code == 400
    assert escaped.status_code == 200  # a backslash followed by "u0000" is ordinary text


async def test_control_characters_in_form_fields_answer_400() -> None:
    async with _client(_app()) as client:
        response = await client.post("/form", data={"name": "a\x01b"})
    assert response.status_code == 400 and response.json()["errors"][0]["field"] == "name"


async def test_bodies_over_the_limit_answer_413_declared_or_streamed() -> None:
    async def chunks():
        for _ in range(4):
            yield b"x" * 400

    async with _client(_app(max_body_bytes=1024)) as client:
        declared = await client.post("/v1/areas/x", json={"text": "x" * 2000})
        streamed = await client.post("/v1/areas/x", content=chunks(), headers={"content-type": "text/plain"})
        override = await client.post("/v1/big", json={"text": "x" * 2000})
        over_override = await client.post("/v1/big", json={"text": "x" * 5000})
    assert declared.status_code == 413 and declared.headers["content-type"] == PROBLEM_JSON
    assert streamed.status_code == 413
    assert override.status_code == 200
    assert over_override.status_code == 413


async def test_405_allows_every_method_of_the_path() -> None:
    async with _client(_app()) as client:
        response = await client.request("OPTIONS", "/v1/areas/x")
    assert response.status_code == 405
    assert {m.strip() for m in response.headers["allow"].split(",")} >= {"GET", "POST"}


async def test_metrics_need_the_token() -> None:
    async with _client(_app(), client=("203.0.113.9", 1)) as client:
        anonymous = await client.get("/metrics")
        wrong = await client.get("/metrics", headers={"authorization": "Bearer nope"})
        right = await client.get("/metrics", headers={"authorization": "Bearer " + "m" * 32})
    assert anonymous.status_code == 401 and wrong.status_code == 401
    assert right.status_code == 200


async def test_metrics_without_a_token_answer_only_loopback() -> None:
    app = FastAPI()
    install_problem_handlers(app)
    add_operational_routes(app, {})
    async with _client(app, client=("203.0.113.9", 1)) as remote, _client(app) as local:
        assert (await remote.get("/metrics")).status_code == 401
        assert (await local.get("/metrics")).status_code == 200


def test_openapi_documents_the_problems_of_every_operation() -> None:
    doc = _app().openapi()
    op = doc["paths"]["/v1/areas/{area_id}"]["post"]
    for status in ("400", "404", "409", "413", "415", "422", "503"):
        assert PROBLEM_JSON in op["responses"][status]["content"], status
    assert "application/json" not in op["responses"]["422"]["content"]
    ward = next(p for p in doc["paths"]["/v1/areas/{area_id}"]["get"]["parameters"] if p["name"] == "ward")
    assert any("pattern" in s for s in ward["schema"].get("anyOf", [ward["schema"]]))
    assert doc["paths"]["/v1/big"]["post"]["x-max-body-bytes"] == 4096
    assert complete_openapi(doc) is doc  # idempotent


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_documents_problem_responses(service: str) -> None:
    try:
        doc = openapi(service)
    except (ModuleNotFoundError, ValidationError):
        pytest.skip(f"{service} cannot be built here")
    assert doc.get("x-problems-documented"), "create_service_app must call document_problems"
    for item in doc.get("paths", {}).values():
        for method, op in item.items():
            if method in ("get", "post", "put", "patch", "delete"):
                assert "400" in op["responses"] and "503" in op["responses"], json.dumps(op)[:200]


BASE = {"database_url": "postgresql://x/y", "kafka_bootstrap_servers": "k:1"}


class TokenSettings(CommonSettings):
    operator_token: SecretStr | None = None
    link_secret: SecretStr | None = None


@pytest.mark.parametrize(
    "values",
    [
        {"operator_token": "change-me-operator-token"},
        {"operator_token": "short-token"},
        {"link_secret": "changeme"},
        {"link_secret": "secret"},
        {"link_secret": "an-example-secret-value-of-length"},
        {"database_url": "postgresql://svc:change-me@db/x"},
        {"metrics_token": "CHANGE-ME"},
    ],
)
def test_placeholder_secrets_and_short_tokens_refuse_to_start(values: dict) -> None:
    with pytest.raises(ValidationError):
        TokenSettings(_env_file=None, **{**BASE, **values})


def test_real_secrets_start_and_the_database_url_is_secret(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = TokenSettings(
        _env_file=None, **{**BASE, "database_url": "postgresql://u:pw-4b1f9@db/x"}, operator_token="t" * 32
    )
    assert "pw-4b1f9" not in repr(settings)
    assert settings.database_dsn() == "postgresql://u:pw-4b1f9@db/x"


def test_a_service_connects_with_its_own_database_url(monkeypatch: pytest.MonkeyPatch) -> None:
    from services.partners.settings import PartnersSettings

    monkeypatch.setenv("PARTNERS_DATABASE_URL", "postgresql://streetneeds_partners:pw@db/x")
    settings = PartnersSettings(_env_file=None, **BASE)
    assert settings.database_dsn() == "postgresql://streetneeds_partners:pw@db/x"
    assert settings.database_url.get_secret_value() == "postgresql://x/y"  # still the administrator's


async def test_operator_token_is_a_documented_security_scheme() -> None:
    from types import SimpleNamespace

    from fastapi import Depends

    from shared.http import operator_token

    app = _app()
    app.state.runtime = SimpleNamespace(settings=SimpleNamespace(operator_token=SecretStr("o" * 32)))

    @app.get("/v1/audit", dependencies=[Depends(operator_token("operator_token", realm="ops"))])
    async def audit() -> dict:
        return {}

    async with _client(app) as client:
        missing = await client.get("/v1/audit")
        wrong = await client.get("/v1/audit", headers={"authorization": "Bearer " + "x" * 32})
        right = await client.get("/v1/audit", headers={"authorization": "Bearer " + "o" * 32})
    assert missing.status_code == 401 and 'realm="ops"' in missing.headers["www-authenticate"]
    assert wrong.status_code == 401 and right.status_code == 200
    doc = app.openapi()
    assert doc["components"]["securitySchemes"]["operatorToken"]["scheme"] == "bearer"
    assert {"401", "403"} <= set(doc["paths"]["/v1/audit"]["get"]["responses"])


@pytest.mark.parametrize("service", ["aggregator", "ingest"])
def test_operator_routes_declare_their_security_scheme(service: str) -> None:
    doc = openapi(service)
    assert "operatorToken" in doc["components"]["securitySchemes"]
