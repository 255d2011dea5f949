"""The operators' council-systems API: register, re-scope, rotate and revoke, each one unit of work."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.ingest.main import create_app
from tests.integration.test_ingest_flow import _gazetteer, _signal, ingest_settings

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = "integration-operator-token-abcdefghij"
OPERATOR = {"Authorization": f"Bearer {TOKEN}"}


@pytest.fixture
async def api(fresh_database_url, kafka_bootstrap, random_id) -> AsyncIterator[httpx.AsyncClient]:
    settings = await ingest_settings(fresh_database_url, kafka_bootstrap, random_id, operator_token=TOKEN)
    app = create_app(settings, gazetteer=_gazetteer())
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test") as client,
    ):
        yield client


async def test_systems_are_registered_rescoped_rotated_and_revoked(api, random_id):
    body = {
        "name": "Adult social care",
        "council_id": f"t{random_id}",
        "categories": ["graffiti", "isolation"],
    }
    created = await api.post("/v1/admin/systems", json=body, headers=OPERATOR)
    assert created.status_code == 201, created.text
    system, key = created.json()["system"], created.json()["key"]
    assert system["categories"] == ["graffiti", "isolation"] and system["revoked_at"] is None
    assert "key_hash" not in system and key not in (await api.get("/v1/admin/systems", headers=OPERATOR)).text
    listed = (await api.get("/v1/admin/systems", headers=OPERATOR)).json()
    assert [s["id"] for s in listed] == [system["id"]]

    path = f"/v1/admin/systems/{system['id']}"
    scoped = await api.put(path, json={"categories": ["graffiti"], "rate_per_minute": 60}, headers=OPERATOR)
    assert scoped.status_code == 200 and scoped.json()["categories"] == ["graffiti"]
    assert scoped.json()["rate_per_minute"] == 60
    # The new scope applies to the next batch: isolation is now out of scope for this system.
    refused = await api.post("/v1/signals", json=[_signal("e1", "S-1")], headers={"X-API-Key": key})
    assert refused.status_code == 403, refused.text

    rotated = await api.post(f"{path}/rotate", headers=OPERATOR)
    assert rotated.status_code == 200
    new_key = rotated.json()["key"]
    assert new_key != key
    graffiti = [_signal("e2", "S-2", category="graffiti")]
    assert (await api.post("/v1/signals", json=graffiti, headers={"X-API-Key": key})).status_code == 401
    accepted = await api.post("/v1/signals", json=graffiti, headers={"X-API-Key": new_key})
    assert accepted.status_code == 202, accepted.text

    revoked = await api.post(f"{path}/revoke", headers=OPERATOR)
    assert revoked.status_code == 200 and revoked.json()["revoked_at"] is not None
    assert (await api.post("/v1/signals", json=graffiti, headers={"X-API-Key": new_key})).status_code == 401
    # A revoked system can no longer be changed; an unknown one is 404; both as problem+json.
    for method, url, kwargs in (
        ("POST", f"{path}/rotate", {}),
        ("POST", f"{path}/revoke", {}),
        ("PUT", path, {"json": {"categories": ["graffiti"]}}),
    ):
        again = await api.request(method, url, headers=OPERATOR, **kwargs)
        assert again.status_code == 409 and again.headers["content-type"] == "application/problem+json"
    unknown = await api.post(f"/v1/admin/systems/{uuid.uuid4()}/rotate", headers=OPERATOR)
    assert unknown.status_code == 404 and unknown.json()["title"] == "No such council system"
    # Without the operator's token nothing is answered.
    assert (await api.get("/v1/admin/systems", headers={"X-API-Key": new_key})).status_code == 401
