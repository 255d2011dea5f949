"""Ingest on the real stack: exactly-once in effect, Kafka input with dead letters, Open311, privacy scan."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import re
import uuid
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from lxml import etree
from shapely.geometry import shape

from services.ingest import repository
from services.ingest.auth import generate_key, hash_key
from services.ingest.main import create_app
from services.ingest.settings import IngestSettings
from shared.contracts import (
    COUNCIL_SIGNALS,
    DEAD_LETTERS,
    SIGNALS_ANONYMISED,
    DeadLettered,
    SignalAnonymised,
    Topic,
)
from shared.gazetteer.model import Gazetteer, Street
from shared.gazetteer.names import name_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

DATA = Path(__file__).resolve().parents[1] / "data/ingest/gazetteer.geojson"
# Recent enough to count (signals that could never count are refused), with minutes and seconds.
SENT_AT = (dt.datetime.now(dt.UTC) - dt.timedelta(days=2)).replace(
    hour=10, minute=47, second=13, microsecond=0
)
NEAR_AGAR_GROVE = (51.543917, -0.129843)  # ~10 m from Agar Grove in the test gazetteer
FAR_FROM_STREETS = (51.553, -0.118)  # inside the boundary, ~785 m from any street
OUTSIDE = (51.5, -0.2)
PERSONAL = {
    "name": "Edith Quigglesworth",
    "email": "edith.q@example.org",
    "phone": "+44 20 7946 0991",
    "notes": "Lives alone since her husband died",
    "address": "14 Agar Grove, London NW1 9SL",
    "lat": "51.543917",
    "lon": "-0.129843",
}


def _gazetteer() -> Gazetteer:
    features = json.loads(DATA.read_text())["features"]
    streets = {
        p["id"]: Street(
            id=p["id"],
            name=p["name"],
            norm_name=name_key(p["name"]),
            geometry=shape(f["geometry"]),
            segment_ids=(p["id"],),
            address_count=p["addresses"],
        )
        for f in features
        if (p := f["properties"])["kind"] == "street"
    }
    boundary = next(shape(f["geometry"]) for f in features if f["properties"]["kind"] == "boundary")
    return Gazetteer(streets=streets, boundary=boundary)


async def _end_offsets(bootstrap: str, topic: Topic) -> dict[TopicPartition, int]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    try:
        parts = [TopicPartition(topic.name, p) for p in range(topic.partitions)]
        consumer.assign(parts)  # stopping a consumer that never had partitions fails in aiokafka 0.14
        return await consumer.end_offsets(parts)
    finally:
        await consumer.stop()


async def _read(
    bootstrap: str,
    start: dict[TopicPartition, int],
    until: dict[TopicPartition, int] | None,
    keep,
    enough=lambda found: False,
    wait_s: float = 60,
) -> list:
    """Records from `start` up to `until` offsets (or until `enough(found)`), decoded by `keep`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: list = []
    try:
        consumer.assign(list(start))
        for tp, offset in start.items():
            consumer.seek(tp, offset)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + wait_s
        while loop.time() < deadline:
            batches = await consumer.getmany(timeout_ms=500)
            for records in batches.values():
                found.extend(x for r in records if (x := keep(r)) is not None)
            if until is not None and all([await consumer.position(tp) >= end for tp, end in until.items()]):
                break
            if until is None and enough(found):
                break
        return found
    finally:
        await consumer.stop()


async def _park_group_at_end(bootstrap: str, group: str) -> None:
    """A new consumer group starts where the topic ends now, not at years of other tests' input."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=group, enable_auto_commit=False)
    await consumer.start()
    try:
        ends = await _end_offsets(bootstrap, COUNCIL_SIGNALS)
        consumer.assign(list(ends))
        await consumer.commit(dict(ends))
    finally:
        await consumer.stop()


async def ingest_settings(database_url: str, kafka_bootstrap: str, random_id: str, **extra) -> IngestSettings:
    """Settings for an ingest under test: its own consumer group (parked at the topic's end, so it
    reads only what the test sends), one pseudonym key unless `extra` says otherwise."""
    group = f"ingest-test-{random_id}"
    await _park_group_at_end(kafka_bootstrap, group)
    values = {"pseudonym_keys": "1:" + "s" * 40, "pseudonym_key_version": 1, "max_batch": 1000} | extra
    return IngestSettings(
        _env_file=None,
        database_url=database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        consumer_group=group,
        **values,
    )


@pytest.fixture
async def ingest(fresh_database_url, kafka_bootstrap, random_id):
    settings = await ingest_settings(fresh_database_url, kafka_bootstrap, random_id)
    app = create_app(settings, gazetteer=_gazetteer())
    council = f"t{random_id}"
    async with app.router.lifespan_context(app):
        runtime = app.state.runtime
        keys = {}
        async with runtime.pool.acquire() as conn:
            for name, categories in (("all", None), ("graffiti-only", ["graffiti"])):
                keys[name] = generate_key()
                await repository.create_system(
                    conn,
                    name=name,
                    council_id=council,
                    key_hash=hash_key(keys[name]),
                    categories=categories or ["isolation", "overcrowding", "graffiti", "fly_tipping"],
                    rate_per_minute=None,
                )
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield {
                "client": client,
                "keys": keys,
                "council": council,
                "db": fresh_database_url,
                "bootstrap": kafka_bootstrap,
            }


def _signal(event_id: str, subject: str, category: str = "isolation", at=NEAR_AGAR_GROVE, **extra):
    return {
        "event_id": event_id,
        "category": category,
        "action": "raised",
        "subject_ref": subject,
        "occurred_at": SENT_AT.isoformat(),
        "location": {"lat": at[0], "lon": at[1], "address": PERSONAL["address"]},
        "name": PERSONAL["name"],
        "email": PERSONAL["email"],
        "phone": PERSONAL["phone"],
        "notes": PERSONAL["notes"],
        **extra,
    }


def _anonymised_of(council: str):
    def keep(record):
        event = SignalAnonymised.model_validate_json(record.value)
        return (record.value, event) if event.council_id == council else None

    return keep


async def _db_dump(url: str) -> str:
    conn = await asyncpg.connect(url)
    try:
        tables = [
            r["table_name"]
            for r in await conn.fetch(
                "SELECT table_name FROM information_schema.tables WHERE table_schema = 'ingest'"
            )
        ]
        rows = []
        for table in tables:
            rows += [r[0] for r in await conn.fetch(f"SELECT row_to_json(x)::text FROM ingest.{table} x")]
        assert rows, "the ingest schema should hold something to scan"
        return "\n".join(rows)
    finally:
        await conn.close()


async def test_http_batch_twice_has_one_effect_and_nothing_personal_leaves(ingest):
    client, key, council = ingest["client"], ingest["keys"]["all"], ingest["council"]
    start = await _end_offsets(ingest["bootstrap"], SIGNALS_ANONYMISED)
    batch = {
        "items": [
            _signal("e1", "ASC-PERSON-771203"),
            _signal("e2", "ASC-PERSON-771203", category="overcrowding"),
            _signal("e3", "ASC-PERSON-000042", at=FAR_FROM_STREETS),
            {"event_id": "e4", "category": "isolation"},
            _signal("e1", "ASC-PERSON-771203"),
        ]
    }
    responses = []
    first = await client.post("/v1/signals", json=batch, headers={"Authorization": f"Bearer {key}"})
    second = await client.post("/v1/signals", json=batch, headers={"X-API-Key": key})
    responses += [first, second]
    assert first.status_code == second.status_code == 202, first.text
    assert [i["outcome"] for i in first.json()["items"]] == [
        "accepted",
        "accepted",
        "rejected",
        "rejected",
        "duplicate",
    ]
    assert [i["outcome"] for i in second.json()["items"]] == [
        "duplicate",
        "duplicate",
        "rejected",
        "rejected",
        "duplicate",
    ]
    (far,) = first.json()["items"][2]["errors"]
    assert re.fullmatch(r"items\[2\]\.location: too far from any street \(7\d\d m\)", far)
    assert any(e.startswith("items[3].subject_ref") for e in first.json()["items"][3]["errors"])

    end = await _end_offsets(ingest["bootstrap"], SIGNALS_ANONYMISED)
    produced = await _read(ingest["bootstrap"], start, end, _anonymised_of(council))
    events = [e for _, e in produced]
    assert sorted(str(e.event_id) for e in events) == sorted(
        str(i["id"]) for i in first.json()["items"][:2]
    )  # exactly one event per accepted signal
    assert {e.street_id for e in events} == {"way/1001"}
    assert events[0].subject_key == events[1].subject_key  # one person, one pseudonym

    # Errors answer in problem+json.
    responses.append(none := await client.post("/v1/signals", json=batch))
    assert none.status_code == 401 and none.headers["www-authenticate"].startswith("Bearer")
    assert none.headers["content-type"] == "application/problem+json"
    responses.append(
        scope := await client.post(
            "/v1/signals", json=[_signal("s1", "X-1")], headers={"X-API-Key": ingest["keys"]["graffiti-only"]}
        )
    )
    assert scope.status_code == 403 and scope.json()["errors"][0]["field"] == "items[0].category"
    responses.append(bad := await client.post("/v1/signals", content=b"{nope", headers={"X-API-Key": key}))
    assert bad.status_code == 422 and bad.json()["errors"]
    responses.append(
        invalid := await client.post(
            "/v1/signals", json=[_signal("z", "Z", at=FAR_FROM_STREETS)], headers={"X-API-Key": key}
        )
    )
    assert invalid.status_code == 422
    assert invalid.json()["errors"][0]["field"] == "items[0].location"
    responses.append(big := await client.post("/v1/signals", json=[{}] * 1001, headers={"X-API-Key": key}))
    assert big.status_code == 413
    responses.append(await client.get("/v1/categories"))

    scanned = b"\n".join(r.content for r in responses) + b"\n".join(v for v, _ in produced)
    scanned += (await _db_dump(ingest["db"])).encode()
    for value in [*PERSONAL.values(), "ASC-PERSON-771203", "ASC-PERSON-000042", "NW1 9SL"]:
        assert value.encode() not in scanned, value


async def test_kafka_input_dead_letters_bad_records_and_carries_on(ingest):
    bootstrap, council, key = ingest["bootstrap"], ingest["council"], ingest["keys"]["all"]
    anon_start = await _end_offsets(bootstrap, SIGNALS_ANONYMISED)
    dead_start = await _end_offsets(bootstrap, DEAD_LETTERS)
    marker = uuid.uuid4().hex
    malformed = f'{{"event_id": "{marker}", "category": '.encode()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap)
    await producer.start()
    try:
        await producer.send_and_wait(
            COUNCIL_SIGNALS.name, malformed, key=b"k1", headers=[("x-api-key", key.encode())]
        )
        await producer.send_and_wait(
            COUNCIL_SIGNALS.name, json.dumps(_signal(f"{marker}-nokey", "S-9")).encode(), key=b"k2"
        )
        await producer.send_and_wait(
            COUNCIL_SIGNALS.name,
            json.dumps(_signal(f"{marker}-ok", "S-10")).encode(),
            key=b"k3",
            headers=[("x-api-key", key.encode())],
        )
    finally:
        await producer.stop()

    produced = await _read(bootstrap, anon_start, None, _anonymised_of(council), enough=bool)
    assert len(produced) == 1 and produced[0][1].source == "kafka"

    def mine(record):
        dead = DeadLettered.model_validate_json(record.value)
        return dead if marker.encode() in base64.b64decode(dead.original_b64) else None

    dead = await _read(bootstrap, dead_start, None, mine, enough=lambda found: len(found) >= 2)
    by_reason = {d.reason: d for d in dead}
    assert base64.b64decode(by_reason["invalid JSON"].original_b64) == malformed
    assert by_reason["invalid JSON"].source_topic == COUNCIL_SIGNALS.name and by_reason["invalid JSON"].errors
    assert any("x-api-key" in reason for reason in by_reason)


async def test_open311_client_flow(ingest):
    client, key, council = ingest["client"], ingest["keys"]["all"], ingest["council"]
    responses = []
    for fmt in ("json", "xml"):
        responses.append(r := await client.get(f"/open311/v2/services.{fmt}"))
        assert r.status_code == 200
    services = responses[0].json()
    assert {"fly_tipping", "graffiti"} <= {s["service_code"] for s in services}
    assert "isolation" not in {s["service_code"] for s in services}
    xml = etree.fromstring(responses[1].content)
    assert xml.tag == "services" and len(xml.findall("service")) == len(services)
    responses.append(found := await client.get("/open311/v2/discovery.xml"))
    endpoint = etree.fromstring(found.content).find("endpoints/endpoint")
    assert endpoint.find("specification").text == "http://wiki.open311.org/GeoReport_v2"
    assert endpoint.find("url").text.endswith("/open311/v2")
    assert [f.text for f in endpoint.findall("formats/format")] == ["text/xml", "application/json"]
    responses.append(definition := await client.get("/open311/v2/services/fly_tipping.xml"))
    assert etree.fromstring(definition.content).find("attributes/attribute/code").text == "uprn"

    personal = {
        "email": "reporter@example.org",
        "deviceid": "FMS-DEVICE-8841",
        "first_name": "Wilhelmina",
        "last_name": "Trout",
        "phone": "07700900123",
        "account_id": "acct-5531",
        "description": "Sofa and mattress dumped by the bins at number 14",
        "media_url": "https://photos.example.org/abc123.jpg",
        "attribute[uprn]": "5023741",
        "address_string": PERSONAL["address"],
    }
    form = {
        "api_key": key,
        "service_code": "fly_tipping",
        "jurisdiction_id": council,
        "lat": PERSONAL["lat"],
        "long": PERSONAL["lon"],
        "address_id": "#NOTPINPOINTED#",
        "attribute[kinds][]": ["sofa", "mattress"],
        **personal,
    }
    responses.append(created := await client.post("/open311/v2/requests.json", data=form))
    assert created.status_code == 200, created.text
    (receipt,) = created.json()
    request_id = receipt["service_request_id"]
    assert receipt["account_id"] is None and receipt["service_notice"]

    responses.append(
        created_xml := await client.post("/open311/v2/requests.xml", data={**form, "lat": "", "long": ""})
    )  # no pin: located by address_string
    assert etree.fromstring(created_xml.content).find("request/service_request_id").text

    # Errors in the spec's format.
    responses.append(
        bad_code := await client.post("/open311/v2/requests.json", data={**form, "service_code": "isolation"})
    )
    assert bad_code.status_code == 404
    assert bad_code.json() == [{"code": 404, "description": "service_code isolation was not found"}]
    responses.append(
        outside := await client.post(
            "/open311/v2/requests.xml", data={**form, "lat": str(OUTSIDE[0]), "long": str(OUTSIDE[1])}
        )
    )
    assert outside.status_code == 400
    error = etree.fromstring(outside.content)
    assert error.tag == "errors" and error.find("error/code").text == "400"
    assert "outside" in error.find("error/description").text
    responses.append(
        no_key := await client.post(
            "/open311/v2/requests.json", data={k: v for k, v in form.items() if k != "api_key"}
        )
    )
    assert no_key.status_code == 403 and no_key.json()[0]["code"] == 403
    responses.append(
        span := await client.get(
            "/open311/v2/requests.json",
            params={"start_date": "2026-01-01T00:00:00Z", "end_date": "2026-06-01T00:00:00Z"},
        )
    )
    assert span.status_code == 400

    responses.append(
        listed := await client.get("/open311/v2/requests.json", params={"service_request_id": request_id})
    )
    (view,) = listed.json()
    assert (view["status"], view["address"], view["service_code"]) == ("open", "Agar Grove", "fly_tipping")
    assert view["requested_datetime"].endswith(":00:00Z")
    assert not {"description", "media_url", "email", "account_id"} & set(view)
    responses.append(one := await client.get(f"/open311/v2/requests/{request_id}.xml"))
    assert etree.fromstring(one.content).find("request/address").text == "Agar Grove"
    responses.append(token := await client.get(f"/open311/v2/tokens/{request_id}.json"))
    assert token.json() == [{"service_request_id": request_id, "token": request_id}]
    responses.append(await client.get("/open311/v2/requests.xml", params={"status": "open"}))

    # A JSON withdrawal of the same subject closes the request.
    responses.append(
        closed := await client.post(
            "/v1/signals",
            headers={"X-API-Key": key},
            json=[
                {
                    "event_id": f"close-{request_id}",
                    "category": "fly_tipping",
                    "action": "withdrawn",
                    "subject_ref": request_id,
                    "occurred_at": (SENT_AT + dt.timedelta(hours=3)).isoformat(),
                    "location": {"street_id": "way/1001"},
                }
            ],
        )
    )
    assert closed.json()["accepted"] == 1
    responses.append(after := await client.get(f"/open311/v2/requests/{request_id}.json"))
    assert after.json()[0]["status"] == "closed"

    scanned = b"\n".join(r.content for r in responses) + (await _db_dump(ingest["db"])).encode()
    for value in [*personal.values(), "sofa", "mattress", PERSONAL["lat"], PERSONAL["lon"], key]:
        assert value.encode() not in scanned, value
