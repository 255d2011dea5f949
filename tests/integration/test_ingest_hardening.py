"""Ingest's review and fuzzing findings on the real stack: clean answers, places, times, logs, keys."""

from __future__ import annotations

import dataclasses
import datetime as dt
import logging

import asyncpg
import httpx
import pytest
from lxml import etree

from services.ingest import repository
from services.ingest.anonymise import coarsen
from services.ingest.auth import generate_key, hash_key
from services.ingest.main import create_app
from services.ingest.open311_api import MAX_FORM_BYTES
from services.ingest.schemas import EVERYWHERE_EVENT_ID_MAX
from shared.contracts import SIGNALS_ANONYMISED
from shared.gazetteer.model import Gazetteer, Unit
from shared.privacy import MIN_STREET_ADDRESSES
from tests.integration.test_ingest_flow import (
    NEAR_AGAR_GROVE,
    _anonymised_of,
    _end_offsets,
    _gazetteer,
    _read,
    _signal,
    ingest_settings,
)

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
GROVE_TERRACE = "way/1004"  # made a small street below, inside a place unit with Agar Grove
NOW = dt.datetime.now(dt.UTC)
ADDRESS = "22 Quigglesworth Mews, Camden, London NW1 0ZZ " * 12  # > 500 characters, personal


def _small_street_gazetteer() -> Gazetteer:
    base = _gazetteer()
    streets = dict(base.streets)
    streets[GROVE_TERRACE] = dataclasses.replace(
        streets[GROVE_TERRACE], address_count=MIN_STREET_ADDRESSES - 3
    )
    unit = Unit(
        id="pu-agar",
        min_addresses=MIN_STREET_ADDRESSES,
        street_ids=("way/1001", GROVE_TERRACE),
        ward_code=None,
        is_ward=False,
        publishable=True,
        address_count=streets["way/1001"].address_count + streets[GROVE_TERRACE].address_count,
        name="Agar Grove and Grove Terrace",
    )
    return Gazetteer(streets=streets, units=[unit], boundary=base.boundary)


@pytest.fixture
async def ingest(fresh_database_url, kafka_bootstrap, random_id):
    settings = await ingest_settings(
        fresh_database_url,
        kafka_bootstrap,
        random_id,
        pseudonym_keys="1:" + "s" * 40 + ",2:" + "t" * 40,
        pseudonym_key_version=2,
    )
    app = create_app(settings, gazetteer=_small_street_gazetteer())
    council = f"t{random_id}"
    async with app.router.lifespan_context(app):
        key = generate_key()
        async with app.state.runtime.pool.acquire() as conn:
            await repository.create_system(
                conn,
                name="all",
                council_id=council,
                key_hash=hash_key(key),
                categories=["isolation", "overcrowding", "graffiti", "fly_tipping"],
                rate_per_minute=None,
            )
        transport = httpx.ASGITransport(app=app, raise_app_exceptions=False)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield {"client": client, "key": key, "council": council, "db": fresh_database_url}


@pytest.mark.parametrize(
    "path",
    [
        "/open311/v2/services.x%16",
        "/open311/v2/services.json%00",
        "/open311/v2/requests.%16",
        "/open311/v2/discovery.%0C",
        "/open311/v2/services/fly_tipping.%01",
        "/open311/v2/requests/abc%00.xml",
        "/open311/v2/tokens/%16.json",
        "/open311/v2/requests.json?service_request_id=a%00b",
        "/open311/v2/requests.json?service_code=graffiti%16",
        "/open311/v2/requests.xml?end_date=0001-01-01T00:00:00Z",
        "/open311/v2/requests.xml?start_date=0001-01-01T00:00:00%2B14:00",
    ],
)
async def test_control_characters_in_open311_urls_get_a_clean_answer(ingest, path):
    response = await ingest["client"].get(path)
    assert response.status_code in (400, 404), response.text
    if response.headers["content-type"].startswith("application/xml"):
        etree.fromstring(response.content)  # well-formed
        assert b"\x16" not in response.content and b"\x00" not in response.content


@pytest.mark.parametrize("category", [{}, ["fly_tipping"], 7, None])
async def test_an_odd_category_is_a_per_item_rejection_never_a_500(ingest, category):
    client, key = ingest["client"], ingest["key"]
    odd = _signal("odd", "REF-1", category="graffiti") | {"category": category}
    good = _signal(f"good-{category!r}", "REF-2", category="graffiti", occurred_at=NOW.isoformat())
    response = await client.post("/v1/signals", json=[odd, good], headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    items = response.json()["items"]
    assert items[0]["outcome"] == "rejected" and items[0]["errors"][0].startswith("items[0].category")
    alone = await client.post("/v1/signals", json=odd, headers={"X-API-Key": key})
    assert alone.status_code == 422 and alone.json()["errors"][0]["field"] == "items[0].category"


async def test_times_that_could_never_count_are_rejected_and_the_answer_names_the_street(ingest):
    client, key = ingest["client"], ingest["key"]
    batch = [
        _signal("future", "R-1", occurred_at=(NOW + dt.timedelta(hours=2)).isoformat()),
        _signal("ancient", "R-2", occurred_at=(NOW - dt.timedelta(days=180 + 63)).isoformat()),
        _signal("fine", "R-3", category="graffiti", occurred_at=NOW.isoformat()),
        _signal("small", "R-4", category="graffiti", occurred_at=NOW.isoformat())
        | {"location": {"street_id": GROVE_TERRACE}},
    ]
    response = await client.post("/v1/signals", json=batch, headers={"X-API-Key": key})
    assert response.status_code == 202, response.text
    future, ancient, fine, small = response.json()["items"]
    assert future["outcome"] == ancient["outcome"] == "rejected"
    assert "future" in future["errors"][0] and future["errors"][0].startswith("items[0].occurred_at")
    assert "never count" in ancient["errors"][0]
    assert fine["placed_on"] == {
        "street_id": "way/1001",
        "street_name": "Agar Grove",
        "shown_as": "Agar Grove and Grove Terrace",
    }
    assert small["placed_on"]["street_name"] == "Grove Terrace"
    assert small["placed_on"]["shown_as"] == "Agar Grove and Grove Terrace"
    assert str(NEAR_AGAR_GROVE[0]) not in response.text  # the point itself is never echoed


async def test_open311_lists_a_small_street_under_its_place_unit(ingest):
    client, key = ingest["client"], ingest["key"]
    form = {"api_key": key, "service_code": "fly_tipping", "address_string": "3 Grove Terrace, London"}
    created = await client.post("/open311/v2/requests.json", data=form)
    assert created.status_code == 200, created.text
    request_id = created.json()[0]["service_request_id"]
    (view,) = (
        await client.get("/open311/v2/requests.json", params={"service_request_id": request_id})
    ).json()
    assert view["address"] == "Agar Grove and Grove Terrace"
    assert "Grove Terrace" != view["address"]
    (listed,) = [
        r
        for r in (await client.get("/open311/v2/requests.json")).json()
        if r["service_request_id"] == request_id
    ]
    assert listed["address"] == view["address"]


async def test_open311_refuses_big_forms_and_checks_a_header_key_before_the_body(ingest):
    client, key = ingest["client"], ingest["key"]
    big = {"api_key": key, "service_code": "fly_tipping", "description": "x" * (MAX_FORM_BYTES + 10)}
    refused = await client.post("/open311/v2/requests.json", data=big)
    assert refused.status_code == 413  # Open311's error list, or the shared edge's problem+json
    small = {"api_key": key, "service_code": "fly_tipping", "address_string": "Agar Grove"}
    wrong = await client.post("/open311/v2/requests.json", data=small, headers={"X-API-Key": "sn_wrong"})
    assert wrong.status_code == 403  # a header key is checked first, before the body's
    mixed = await client.post("/open311/v2/requests.json", data=small, headers={"X-API-Key": key + "x"})
    assert mixed.status_code == 403
    header_only = {k: v for k, v in small.items() if k != "api_key"}
    ok = await client.post("/open311/v2/requests.json", data=header_only, headers={"X-API-Key": key})
    assert ok.status_code == 200, ok.text

    async def endless():
        yield b"api_key=" + key.encode() + b"&service_code=fly_tipping&description="
        for _ in range(100):
            yield b"y" * 4096

    streamed = await client.post(
        "/open311/v2/requests.json",
        content=endless(),
        headers={"content-type": "application/x-www-form-urlencoded"},
    )
    assert streamed.status_code == 413


async def test_a_long_address_is_refused_by_name_and_never_logged(ingest, caplog):
    client, key = ingest["client"], ingest["key"]
    with caplog.at_level(logging.DEBUG):
        form = {"api_key": key, "service_code": "graffiti", "address_string": ADDRESS}
        response = await client.post("/open311/v2/requests.xml", data=form)
        signal = _signal("long", "R-9", category="graffiti", occurred_at=NOW.isoformat())
        signal["location"] = {"address": ADDRESS}
        batch = await client.post("/v1/signals", json=[signal], headers={"X-API-Key": key})
    assert response.status_code == 400
    assert b"address_string is longer than 500" in response.content
    assert batch.status_code == 422 and "Quigglesworth" not in batch.text
    logged = "\n".join(f"{r.getMessage()} {r.__dict__}" for r in caplog.records)
    assert "Quigglesworth" not in logged and "NW1 0ZZ" not in logged


async def test_acceptance_time_and_record_timestamps_are_coarse(ingest, kafka_bootstrap):
    client, key, council = ingest["client"], ingest["key"], ingest["council"]
    start = await _end_offsets(kafka_bootstrap, SIGNALS_ANONYMISED)
    # The clock is read here, not at import: a suite that crosses midnight must not see two days.
    before = dt.datetime.now(dt.UTC)
    batch = [
        _signal("p1", "R-11", occurred_at=before.isoformat()),
        _signal("g1", "R-12", category="graffiti", occurred_at=before.isoformat()),
    ]
    response = await client.post("/v1/signals", json=batch, headers={"X-API-Key": key})
    after = dt.datetime.now(dt.UTC)
    assert [i["outcome"] for i in response.json()["items"]] == ["accepted", "accepted"]
    end = await _end_offsets(kafka_bootstrap, SIGNALS_ANONYMISED)
    keep = _anonymised_of(council)
    records = await _read(
        kafka_bootstrap, start, end, lambda r: (r.timestamp, keep(r)[1]) if keep(r) else None
    )
    stamps = {e.sensitivity.value: dt.datetime.fromtimestamp(ts / 1000, dt.UTC) for ts, e in records}
    assert set(stamps) == {"person", "place"}
    # The event's time is coarsened: a whole day for person categories, a whole hour for place ones.
    assert all(e.occurred_at == coarsen(before, e.sensitivity) for _, e in records)
    # The record's timestamp is the moment it was produced, coarsened the same way: never finer.
    for ts, e in records:
        stamp = dt.datetime.fromtimestamp(ts / 1000, dt.UTC)
        assert stamp in {coarsen(before, e.sensitivity), coarsen(after, e.sensitivity)}
    assert stamps["person"].time() == dt.time(0)
    assert stamps["place"].minute == stamps["place"].second == stamps["place"].microsecond == 0
    # Rotation: the subject travels under the current key and every older one still listed.
    assert all(len(e.previous_keys) == 1 and e.key_version == 2 for _, e in records)
    conn = await asyncpg.connect(ingest["db"])
    try:
        accepted = await conn.fetch("SELECT accepted_at FROM ingest.accepted_signals")
    finally:
        await conn.close()
    # The day it was accepted (the test may cross midnight: today's or the start's, never finer).
    days = {d.replace(hour=0, minute=0, second=0, microsecond=0) for d in (before, dt.datetime.now(dt.UTC))}
    assert accepted and all(r["accepted_at"] in days for r in accepted)


async def test_a_subject_is_withdrawn_from_everything_once(ingest, kafka_bootstrap):
    client, key, council = ingest["client"], ingest["key"], ingest["council"]
    start = await _end_offsets(kafka_bootstrap, SIGNALS_ANONYMISED)
    body = {"event_id": "moved-away-1", "subject_ref": "ASC-PERSON-771203", "name": "Edith Quigglesworth"}
    first = await client.post("/v1/withdrawals", json=body, headers={"X-API-Key": key})
    again = await client.post("/v1/withdrawals", json=body, headers={"X-API-Key": key})
    assert first.status_code == again.status_code == 202, first.text
    every = ["fly_tipping", "graffiti", "isolation", "overcrowding"]
    assert first.json() == {"categories": every, "accepted": 4}
    assert again.json() == {"categories": every, "accepted": 0}  # a retry has no second effect
    end = await _end_offsets(kafka_bootstrap, SIGNALS_ANONYMISED)
    events = [e for _, e in await _read(kafka_bootstrap, start, end, _anonymised_of(council))]
    assert sorted(e.category.value for e in events) == every
    assert {e.action for e in events} == {"withdrawn"} and len({e.subject_key for e in events}) == 1
    assert "Quigglesworth" not in first.text and "771203" not in first.text
    assert (await client.post("/v1/withdrawals", json=body)).status_code == 401
    longest = {"event_id": "x" * EVERYWHERE_EVENT_ID_MAX, "subject_ref": "ASC-2"}  # valid: always accepted
    assert (await client.post("/v1/withdrawals", json=longest, headers={"X-API-Key": key})).status_code == 202
