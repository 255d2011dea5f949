"""Prompter HTTP API on a fresh database with the Camden gazetteer: auth, validation, matching, impact."""

from __future__ import annotations

import asyncio
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import shapely
from aiokafka import AIOKafkaProducer

from services.prompter.main import create_app
from services.prompter.settings import PrompterSettings
from shared.contracts import RESIDENT_RESPONSES, STREET_NEEDS

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = "integration-test-token-abcdefghij"


@pytest.fixture
async def api(fresh_database_url: str, kafka_bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = PrompterSettings(
        database_url=fresh_database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        group_id=f"prompter-test-{uuid.uuid4().hex}",
        admin_token=TOKEN,
    )
    app = create_app(settings)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_database_url)
    yield conn
    await conn.close()


AUTH = {"Authorization": f"Bearer {TOKEN}"}


def _opportunity(**area) -> dict:
    return {
        "title": "Lunch club hosts",
        "organisation": "Kentish Town library",
        "contact": "01234 567890",
        "categories": ["isolation"],
        "area": area,
        "times": "Tuesdays 12-2pm",
    }


async def _eventually(query: str, *args, conn: asyncpg.Connection, want) -> None:
    """Poll the database until `query` returns `want` (the test timeout bounds the wait)."""
    # Polling is the point: the effect lands from another process's transaction, with no event to await.
    while await conn.fetchval(query, *args) != want:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def test_writes_need_a_token_and_errors_name_fields(api, db):
    street = await db.fetchval("SELECT id FROM gazetteer.streets ORDER BY id LIMIT 1")
    body = _opportunity(street_ids=[street])
    missing = await api.post("/v1/opportunities", json=body)
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await api.post("/v1/opportunities", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 403
    assert (await api.get("/v1/impact")).status_code == 401

    bad = await api.post(
        "/v1/opportunities",
        headers=AUTH,
        json={
            **_opportunity(street_ids=[street, "way/not-a-street"], point={"lat": 51.55, "lon": -0.14}),
            "categories": ["nonsense"],
            "starts_on": "2026-12-01",
            "ends_on": "2026-11-01",
        },
    )
    assert bad.status_code == 422
    fields = {e["field"] for e in bad.json()["errors"]}
    assert {"categories.0", "area.radius_m", "ends_on"} <= fields, bad.json()
    unknown = await api.post(
        "/v1/opportunities", headers=AUTH, json=_opportunity(street_ids=[street, "way/not-a-street"])
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "area.street_ids.1"
    extra = await api.post(
        "/v1/opportunities",
        headers=AUTH,
        json={**_opportunity(street_ids=[street]), "resident_name": "Alice"},
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "resident_name"

    gone = f"/v1/opportunities/{uuid.uuid4()}"
    assert (await api.put(gone, headers=AUTH, json=body)).status_code == 404
    assert (await api.delete(gone, headers=AUTH)).status_code == 404
    assert (await api.get(gone)).json()["status"] == 404


async def test_register_update_list_retire(api, db):
    street = await db.fetchrow(
        "SELECT id, ward_code FROM gazetteer.streets WHERE ward_code IS NOT NULL ORDER BY id LIMIT 1"
    )
    other_ward = await db.fetchval(
        "SELECT ward_code FROM gazetteer.streets WHERE ward_code <> $1 LIMIT 1", street["ward_code"]
    )
    created = await api.post("/v1/opportunities", headers=AUTH, json=_opportunity(street_ids=[street["id"]]))
    assert created.status_code == 201, created.text
    opp = created.json()
    assert created.headers["location"] == f"/v1/opportunities/{opp['id']}"

    async def listed(**params) -> list[str]:
        response = await api.get("/v1/opportunities", params=params)
        assert response.status_code == 200
        return [o["id"] for o in response.json()["opportunities"]]

    assert opp["id"] in await listed(ward=street["ward_code"], category="isolation")
    assert opp["id"] not in await listed(ward=other_ward)
    assert opp["id"] not in await listed(category="graffiti")

    updated = await api.put(
        f"/v1/opportunities/{opp['id']}",
        headers=AUTH,
        json={**_opportunity(ward_codes=[other_ward]), "title": "Lunch club drivers"},
    )
    assert updated.status_code == 200 and updated.json()["title"] == "Lunch club drivers"
    assert opp["id"] in await listed(ward=other_ward)
    assert opp["id"] not in await listed(ward=street["ward_code"])

    assert (await api.delete(f"/v1/opportunities/{opp['id']}", headers=AUTH)).status_code == 204
    assert (await api.delete(f"/v1/opportunities/{opp['id']}", headers=AUTH)).status_code == 204
    assert opp["id"] not in await listed()
    assert (await api.get(f"/v1/opportunities/{opp['id']}")).status_code == 404


async def test_radius_links_and_responses_count_once(api, db, kafka_bootstrap, random_id):
    row = await db.fetchrow(
        "SELECT id, ward_code, geometry FROM gazetteer.streets"
        " WHERE ward_code IS NOT NULL ORDER BY id LIMIT 1"
    )
    point = shapely.from_wkb(row["geometry"]).interpolate(0.5, normalized=True)  # on the street
    street = {"id": row["id"], "ward_code": row["ward_code"], "lat": point.y, "lon": point.x}
    prompt_id = f"it-{random_id}:isolation"
    need = {
        "schema_version": 1,
        "area_id": f"it-{random_id}",
        "area_kind": "unit",
        "area_name": "Test Street and 2 nearby streets",
        "ward_code": street["ward_code"],
        "street_ids": [street["id"]],
        "category": "isolation",
        "sensitivity": "person",
        "band": "several",
        "since": "2026-10-01",
        "period": "2026-10",
        "published_at": "2026-11-01T09:00:00+00:00",
        "version": 1,
    }
    near = await api.post(
        "/v1/opportunities",
        headers=AUTH,
        json=_opportunity(point={"lat": street["lat"], "lon": street["lon"]}, radius_m=50),
    )
    assert near.status_code == 201
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(STREET_NEEDS.name, json.dumps(need).encode(), key=prompt_id.encode())
        await _eventually(
            "SELECT prompt->'opportunities'->0->>'opportunity_id' FROM prompter.prompts WHERE prompt_id = $1",
            prompt_id,
            conn=db,
            want=near.json()["id"],
        )
        title = await db.fetchval(
            "SELECT prompt->>'title' FROM prompter.prompts WHERE prompt_id = $1", prompt_id
        )
        assert title == "Several older neighbours near Test Street may be lonely"

        first, second = str(uuid.uuid4()), str(uuid.uuid4())
        for response_id in (first, first, second):  # a redelivered response counts once
            await producer.send_and_wait(
                RESIDENT_RESPONSES.name,
                json.dumps(
                    {
                        "schema_version": 1,
                        "response_id": response_id,
                        "prompt_id": prompt_id,
                        "area_id": need["area_id"],
                        "category": "isolation",
                        "kind": "can_help",
                        "responded_on": "2026-11-20",
                    }
                ).encode(),
                key=prompt_id.encode(),
            )
        await _eventually(
            "SELECT count(*) FROM prompter.responses_seen WHERE prompt_id = $1", prompt_id, conn=db, want=2
        )
    finally:
        await producer.stop()

    impact = await api.get("/v1/impact", headers=AUTH, params={"ward": street["ward_code"]})
    assert impact.status_code == 200
    (mine,) = [p for p in impact.json()["prompts"] if p["prompt_id"] == prompt_id]
    assert (mine["responses"], mine["since"], mine["ward_code"]) == (2, "2026-11-20", street["ward_code"])
    assert impact.json()["wards"] == [
        {"ward_code": street["ward_code"], "prompts": 1, "responses": 2, "since": "2026-11-20"}
    ]
