"""Prompter HTTP API on a fresh database with the Camden gazetteer: organisations' keys and ownership,
the change audit, validation, matching, platforms, offers of contact and their deletion, impact."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest
import shapely
from aiokafka import AIOKafkaProducer

from services.prompter.main import create_app, purge_offers
from services.prompter.settings import PrompterSettings
from shared.contracts import RESIDENT_RESPONSES, STREET_NEEDS
from shared.keys import hash_key, new_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = "integration-test-token-abcdefghij"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


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
        client.app = app  # type: ignore[attr-defined]
        yield client


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_database_url)
    yield conn
    await conn.close()


async def _organisation(db, name: str, kind: str = "vcs", council_admin: bool = False) -> dict:
    key = new_key("sno_")
    org_id = await db.fetchval(
        "INSERT INTO prompter.organisations (id, name, kind, council_admin, key_hash)"
        " VALUES ($1, $2, $3, $4, $5) RETURNING id",
        uuid.uuid4(),
        name,
        kind,
        council_admin,
        hash_key(key),
    )
    return {"id": str(org_id), "name": name, "headers": {"Authorization": f"Bearer {key}"}, "key": key}


@pytest.fixture
async def orgs(api, db) -> dict[str, dict]:
    """Two voluntary groups and the council's admin team (the app has migrated the schema)."""
    return {
        "a": await _organisation(db, "Kentish Town Friends"),
        "b": await _organisation(db, "Gospel Oak Helpers"),
        "council": await _organisation(db, "Camden Council community team", "council", True),
    }


def _opportunity(**area) -> dict:
    return {
        "title": "Lunch club hosts",
        "what": "Pour tea and chat with guests.",
        "organisation": "Kentish Town library",
        "contact_phone": "020 7974 4444",
        "categories": ["isolation"],
        "area": area,
        "times": "Tuesdays 12-2pm",
        "time_needed": "Two hours a week",
        "dbs_needed": True,
    }


async def _eventually(query: str, *args, conn: asyncpg.Connection, want) -> None:
    """Poll the database until `query` returns `want` (the test timeout bounds the wait)."""
    # Polling is the point: the effect lands from another process's transaction, with no event to await.
    while await conn.fetchval(query, *args) != want:  # noqa: ASYNC110
        await asyncio.sleep(0.2)


async def test_writes_need_an_organisation_key_and_errors_name_fields(api, db, orgs):
    street = await db.fetchval("SELECT id FROM gazetteer.streets ORDER BY id LIMIT 1")
    body = _opportunity(street_ids=[street])
    missing = await api.post("/v1/opportunities", json=body)
    assert missing.status_code == 401 and missing.headers["content-type"] == "application/problem+json"
    assert missing.headers["www-authenticate"].startswith("Bearer")
    wrong = await api.post("/v1/opportunities", json=body, headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    # The operator token reads the council's overview but writes no opportunity (organisations do).
    assert (await api.post("/v1/opportunities", json=body, headers=OPERATOR)).status_code == 401
    assert (await api.get("/v1/impact")).status_code == 401
    assert (await api.get("/v1/impact", headers=orgs["a"]["headers"])).status_code == 403
    await db.execute(
        "UPDATE prompter.organisations SET revoked_at = now() WHERE id = $1", uuid.UUID(orgs["b"]["id"])
    )
    assert (await api.post("/v1/opportunities", json=body, headers=orgs["b"]["headers"])).status_code == 403

    auth = orgs["a"]["headers"]
    bad = await api.post(
        "/v1/opportunities",
        headers=auth,
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
        "/v1/opportunities", headers=auth, json=_opportunity(street_ids=[street, "way/not-a-street"])
    )
    assert unknown.status_code == 422 and unknown.json()["errors"][0]["field"] == "area.street_ids.1"
    no_ward = await api.post("/v1/opportunities", headers=auth, json=_opportunity(ward_codes=["E99999999"]))
    assert no_ward.status_code == 422 and no_ward.json()["errors"][0]["field"] == "area.ward_codes.0"
    extra = await api.post(
        "/v1/opportunities",
        headers=auth,
        json={**_opportunity(street_ids=[street]), "resident_name": "Alice"},
    )
    assert extra.status_code == 422 and extra.json()["errors"][0]["field"] == "resident_name"
    for url in (
        "http://192.168.1.10/join",
        "https://user:pw@example.org/",
        "http://localhost/x",
        "ftp://a.org",
    ):
        unsafe = await api.post(
            "/v1/opportunities", headers=auth, json={**_opportunity(street_ids=[street]), "url": url}
        )
        assert unsafe.status_code == 422 and unsafe.json()["errors"][0]["field"] == "url", url
    no_route = {**_opportunity(street_ids=[street]), "contact_phone": None}
    unreachable = await api.post("/v1/opportunities", headers=auth, json=no_route)
    assert unreachable.status_code == 422 and "contact route" in unreachable.text
    assert await db.fetchval("SELECT count(*) FROM prompter.opportunities") == 0  # nothing half-written

    gone = f"/v1/opportunities/{uuid.uuid4()}"
    assert (await api.put(gone, headers=auth, json=body)).status_code == 404
    assert (await api.delete(gone, headers=auth)).status_code == 404
    assert (await api.get(gone)).json()["status"] == 404


async def test_each_organisation_owns_its_opportunities_and_every_change_is_audited(api, db, orgs):
    street = await db.fetchrow(
        "SELECT id, ward_code FROM gazetteer.streets WHERE ward_code IS NOT NULL ORDER BY id LIMIT 1"
    )
    other_ward = await db.fetchval(
        "SELECT ward_code FROM gazetteer.streets WHERE ward_code <> $1 LIMIT 1", street["ward_code"]
    )
    a, b = orgs["a"]["headers"], orgs["b"]["headers"]
    created = await api.post("/v1/opportunities", headers=a, json=_opportunity(street_ids=[street["id"]]))
    assert created.status_code == 201, created.text
    opp = created.json()
    assert created.headers["location"] == f"/v1/opportunities/{opp['id']}"
    assert (opp["organisation_id"], opp["status"], opp["dbs_needed"]) == (orgs["a"]["id"], "active", True)

    async def listed(**params) -> list[str]:
        response = await api.get("/v1/opportunities", params=params)
        assert response.status_code == 200
        return [o["id"] for o in response.json()["opportunities"]]

    assert opp["id"] in await listed(ward=street["ward_code"], category="isolation")
    assert opp["id"] not in await listed(ward=other_ward)
    assert opp["id"] not in await listed(category="graffiti")

    path = f"/v1/opportunities/{opp['id']}"
    change = {**_opportunity(ward_codes=[other_ward]), "title": "Lunch club drivers"}
    # Another organisation cannot see, change, pause, retire or read the history of it: 404, as if absent.
    assert (await api.put(path, headers=b, json=change)).status_code == 404
    assert (await api.post(f"{path}/pause", headers=b)).status_code == 404
    assert (await api.delete(path, headers=b)).status_code == 404
    assert (await api.get(f"{path}/changes", headers=b)).status_code == 404
    assert opp["id"] not in [
        o["id"] for o in (await api.get("/v1/organisation/opportunities", headers=b)).json()["opportunities"]
    ]
    assert await db.fetchval("SELECT title FROM prompter.opportunities") == "Lunch club hosts"

    updated = await api.put(path, headers=a, json=change)
    assert updated.status_code == 200 and updated.json()["title"] == "Lunch club drivers"
    assert opp["id"] in await listed(ward=other_ward)
    assert opp["id"] not in await listed(ward=street["ward_code"])

    paused = await api.post(f"{path}/pause", headers=a)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    assert opp["id"] not in await listed()
    assert (await api.get(path)).status_code == 404
    assert (await api.post(f"{path}/resume", headers=a)).json()["status"] == "active"
    assert opp["id"] in await listed()

    assert (await api.delete(path, headers=a)).status_code == 204
    assert (await api.delete(path, headers=a)).status_code == 204
    assert opp["id"] not in await listed()
    assert (await api.put(path, headers=a, json=change)).status_code == 409

    history = (await api.get(f"{path}/changes", headers=a)).json()["changes"]
    assert [c["action"] for c in history] == ["retired", "resumed", "paused", "updated", "created"]
    assert {c["actor"] for c in history} == {"Kentish Town Friends"}
    assert history[3]["diff"]["title"] == {"from": "Lunch club hosts", "to": "Lunch club drivers"}
    assert history[3]["diff"]["ward_codes"] == {"from": [], "to": [other_ward]}
    # The council sees every organisation's changes; a voluntary group may not.
    assert (await api.get("/v1/changes", headers=a)).status_code == 403
    for reader in (orgs["council"]["headers"], OPERATOR):
        everything = await api.get("/v1/changes", headers=reader)
        assert everything.status_code == 200 and len(everything.json()["changes"]) == 5


async def test_the_operator_switches_any_opportunity_and_rotates_or_revokes_organisations(api, db, orgs):
    street = await db.fetchval("SELECT id FROM gazetteer.streets WHERE ward_code IS NOT NULL LIMIT 1")
    a = orgs["a"]["headers"]
    opp = (await api.post("/v1/opportunities", headers=a, json=_opportunity(street_ids=[street]))).json()
    admin = "/v1/admin"
    paused = await api.post(f"{admin}/opportunities/{opp['id']}/pause", headers=OPERATOR)
    assert paused.status_code == 200 and paused.json()["status"] == "paused"
    # Repeating a switch changes nothing and records nothing.
    assert (await api.post(f"{admin}/opportunities/{opp['id']}/pause", headers=OPERATOR)).status_code == 200
    assert (await api.post(f"{admin}/opportunities/{opp['id']}/resume", headers=OPERATOR)).json()[
        "status"
    ] == "active"
    history = (await api.get(f"/v1/opportunities/{opp['id']}/changes", headers=a)).json()["changes"]
    assert [c["action"] for c in history] == ["resumed", "paused", "created"]
    assert history[0]["actor"] != "Kentish Town Friends"  # the operator, not the organisation
    missing = await api.post(f"{admin}/opportunities/{uuid.uuid4()}/pause", headers=OPERATOR)
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"
    assert (await api.delete(f"/v1/opportunities/{opp['id']}", headers=a)).status_code == 204
    assert (await api.post(f"{admin}/opportunities/{opp['id']}/resume", headers=OPERATOR)).status_code == 409
    # A voluntary group's key is not an operator's.
    assert (await api.post(f"{admin}/opportunities/{opp['id']}/pause", headers=a)).status_code in (401, 403)

    org = f"{admin}/organisations/{orgs['a']['id']}"
    rotated = await api.post(f"{org}/rotate", headers=OPERATOR)
    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert new_key != orgs["a"]["key"] and "key_hash" not in rotated.json()["organisation"]
    mine = "/v1/organisation/opportunities"
    assert (await api.get(mine, headers=a)).status_code == 401  # the old key ends with the rotation
    assert (await api.get(mine, headers={"Authorization": f"Bearer {new_key}"})).status_code == 200
    revoked = await api.post(f"{org}/revoke", headers=OPERATOR)
    assert revoked.status_code == 200 and revoked.json()["id"] == orgs["a"]["id"]
    # A revoked key is known but refused.
    assert (await api.get(mine, headers={"Authorization": f"Bearer {new_key}"})).status_code == 403
    assert (await api.post(f"{org}/rotate", headers=OPERATOR)).status_code == 409
    assert (await api.post(f"{org}/revoke", headers=OPERATOR)).status_code == 409
    unknown = await api.post(f"{admin}/organisations/{uuid.uuid4()}/rotate", headers=OPERATOR)
    assert unknown.status_code == 404


def _need(random_id: str, street: dict, category: str = "isolation") -> dict:
    person = category in ("isolation", "overcrowding")
    return {
        "schema_version": 1,
        "area_id": f"it-{random_id}",
        "area_kind": "unit" if person else "street",
        "area_name": "Test Street and 2 nearby streets" if person else "Test Street",
        "ward_code": street["ward_code"],
        "street_ids": [street["id"]],
        "category": category,
        "sensitivity": "person" if person else "place",
        **({"band": "several", "period": "2026-10"} if person else {"count": 3, "period": "live"}),
        "since": "2026-10-01",
        "published_at": "2026-11-01T09:00:00+00:00",
        "version": 1,
    }


async def test_local_first_then_platforms_responses_count_once_offers_and_their_deletion(
    api, db, orgs, kafka_bootstrap, random_id
):
    row = await db.fetchrow(
        "SELECT id, ward_code, geometry FROM gazetteer.streets"
        " WHERE ward_code IS NOT NULL ORDER BY id LIMIT 1"
    )
    point = shapely.from_wkb(row["geometry"]).interpolate(0.5, normalized=True)  # on the street
    street = {"id": row["id"], "ward_code": row["ward_code"], "lat": point.y, "lon": point.x}
    need = _need(random_id, street)
    prompt_id = f"{need['area_id']}:isolation"
    near = await api.post(
        "/v1/opportunities",
        headers=orgs["a"]["headers"],
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
        prompt = json.loads(
            await db.fetchval("SELECT prompt FROM prompter.prompts WHERE prompt_id = $1", prompt_id)
        )
        assert prompt["title"] == "Several older neighbours near Test Street may be lonely"
        kinds = [o["kind"] for o in prompt["opportunities"]]
        assert kinds[0] == "local" and "platform" in kinds[1:] and kinds == sorted(kinds)  # local first
        local = prompt["opportunities"][0]
        assert (local["contact_phone"], local["organisation_id"], local["dbs_needed"]) == (
            "020 7974 4444",
            orgs["a"]["id"],
            True,
        )

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

    impact = await api.get("/v1/impact", headers=OPERATOR, params={"ward": street["ward_code"]})
    assert impact.status_code == 200
    (mine,) = [p for p in impact.json()["prompts"] if p["prompt_id"] == prompt_id]
    assert (mine["responses"], mine["since"], mine["ward_code"]) == (2, "2026-11-20", street["ward_code"])

    # A resident leaves a first name and email for the one organisation the prompt links.
    offer = {
        "prompt_id": prompt_id,
        "organisation_id": orgs["a"]["id"],
        "first_name": " Sam ",
        "email": "sam@example.org",
        "consent": "yes",
    }
    assert (await api.post("/v1/offers", json={**offer, "consent": "no"})).json()["errors"][0][
        "field"
    ] == "consent"
    not_linked = await api.post("/v1/offers", json={**offer, "organisation_id": orgs["b"]["id"]})
    assert not_linked.status_code == 422 and not_linked.json()["errors"][0]["field"] == "organisation_id"
    assert (await api.post("/v1/offers", json={**offer, "prompt_id": "nope:isolation"})).status_code == 404
    assert (await api.post("/v1/offers", json=offer)).status_code == 201
    assert await db.fetchval("SELECT count(*) FROM prompter.help_offers") == 1

    theirs = (await api.get("/v1/organisation/offers", headers=orgs["a"]["headers"])).json()
    assert [(o["first_name"], o["email"]) for o in theirs["offers"]] == [("Sam", "sam@example.org")]
    assert "Kentish Town library" in theirs["offers"][0]["consent_text"]
    # Responses on every prompt linking A's opportunity: this one's two, and any from older test runs'
    # needs on the same street (the topic is shared and read from the start).
    assert theirs["received"] == 1 and theirs["responses"] >= 2
    others = (await api.get("/v1/organisation/offers", headers=orgs["b"]["headers"])).json()
    assert others["offers"] == [] and others["received"] == 0
    offer_id = theirs["offers"][0]["id"]
    handed = f"/v1/organisation/offers/{offer_id}/handed-over"
    assert (await api.post(handed, headers=orgs["b"]["headers"])).status_code == 404
    assert (await api.post(handed, headers=orgs["a"]["headers"])).status_code == 204
    assert await db.fetchval("SELECT count(*) FROM prompter.help_offers") == 0  # deleted, not flagged
    assert (await api.post(handed, headers=orgs["a"]["headers"])).status_code == 404

    # Not handed over: deleted after 30 days by the purge (its clock is a parameter).
    assert (await api.post("/v1/offers", json=offer)).status_code == 201
    pool = api.app.state.runtime.pool  # type: ignore[attr-defined]
    now = dt.datetime.now(dt.UTC)
    assert await purge_offers(pool, 30, now + dt.timedelta(days=29)) == 0
    assert await purge_offers(pool, 30, now + dt.timedelta(days=30, minutes=1)) == 1
    assert await db.fetchval("SELECT count(*) FROM prompter.help_offers") == 0
    totals = (await api.get("/v1/organisation/offers", headers=orgs["a"]["headers"])).json()
    assert (totals["received"], totals["handed_over"], totals["expired"]) == (2, 1, 1)

    # Offers are rate limited per client (5 at once by default; four were spent above).
    answers = [(await api.post("/v1/offers", json=offer)).status_code for _ in range(3)]
    assert answers[0] == 201 and 429 in answers


async def test_platforms_every_category_switch_and_add(api, db, orgs):
    listed = (await api.get("/v1/platforms")).json()["platforms"]
    assert len(listed) >= 14 and all(p["enabled"] and p["source"] == "directory" for p in listed)
    council = orgs["council"]["headers"]
    assert (
        await api.put("/v1/platforms/goodgym", json={"enabled": False}, headers=orgs["a"]["headers"])
    ).status_code == 403
    off = await api.put("/v1/platforms/goodgym", json={"enabled": False}, headers=council)
    assert off.status_code == 200 and off.json()["enabled"] is False
    # abandoned vehicles have one platform only: it cannot be switched off.
    only = [
        p["id"]
        for p in listed
        if p["categories"] == ["abandoned_vehicle"] or "abandoned_vehicle" in p["categories"]
    ]
    assert only == ["fixmystreet"]
    last = await api.put("/v1/platforms/fixmystreet", json={"enabled": False}, headers=council)
    assert last.status_code == 409 and "abandoned_vehicle" in last.text
    assert await db.fetchval("SELECT enabled FROM prompter.platforms WHERE id = 'fixmystreet'") is True
    assert (await api.put("/v1/platforms/nope", json={"enabled": True}, headers=council)).status_code == 404
    own = {
        "id": "camden-car-watch",
        "name": "Camden car watch",
        "description": "Neighbours note how long a car has been left.",
        "url": "https://www.camden.gov.uk/parking",
        "categories": ["abandoned_vehicle", "pavement_defect"],
    }
    added = await api.post("/v1/platforms", json=own, headers=council)
    assert added.status_code == 201 and added.json()["source"] == "council"
    assert (await api.post("/v1/platforms", json=own, headers=council)).status_code == 409
    assert (
        await api.put("/v1/platforms/fixmystreet", json={"enabled": False}, headers=OPERATOR)
    ).status_code == 200
