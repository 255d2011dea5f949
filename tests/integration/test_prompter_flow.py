"""Prompter end to end on the real broker and a fresh database: needs in, prompts out, de-duplicated."""

from __future__ import annotations

import base64
import json
import uuid
from collections.abc import AsyncIterator, Callable

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer

from services.prompter.main import create_app
from services.prompter.org_repository import create_organisation
from services.prompter.settings import PrompterSettings
from shared.contracts import DEAD_LETTERS, PROMPTS, STREET_NEEDS, DeadLettered, PromptPublished, PromptRetired
from shared.keys import hash_key, new_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
TOKEN = "integration-test-token-0123456789"


@pytest.fixture
async def prompter(fresh_database_url: str, kafka_bootstrap: str) -> AsyncIterator[httpx.AsyncClient]:
    settings = PrompterSettings(
        database_url=fresh_database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        group_id=f"prompter-test-{uuid.uuid4().hex}",
        admin_token=TOKEN,
    )
    app = create_app(settings)
    key = new_key("sno_")
    async with app.router.lifespan_context(app):
        async with app.state.runtime.pool.acquire() as conn:  # the app has migrated the schema
            await create_organisation(conn, "Friends of Camden Road", "vcs", hash_key(key))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            yield client


async def _consumer(bootstrap: str, topic: str) -> AIOKafkaConsumer:
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=bootstrap,
        group_id=f"t-{uuid.uuid4().hex}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    return consumer


async def _read_until(consumer: AIOKafkaConsumer, keep: Callable, done: Callable[[list], bool]) -> list:
    """Records `keep` accepts, read until `done(records)`; the test timeout bounds the wait."""
    found: list = []
    while not done(found):
        for records in (await consumer.getmany(timeout_ms=500)).values():
            found.extend(r for r in records if keep(r))
    return found


def _need(area_id: str, street_id: str, version: int = 1) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "area_id": area_id,
            "area_kind": "street",
            "area_name": "Camden Road",
            "ward_code": "E05013654",
            "street_ids": [street_id],
            "category": "fly_tipping",
            "sensitivity": "place",
            "count": 3,
            "trend": "up",
            "since": "2026-11-03",
            "period": "live",
            "published_at": "2026-11-20T14:05:00+00:00",
            "version": version,
        }
    ).encode()


def _prompt(value: bytes) -> PromptPublished | PromptRetired:
    raw = json.loads(value)
    return (PromptPublished if raw["event_type"] == "prompt_published" else PromptRetired).model_validate(raw)


async def _a_street(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT id FROM gazetteer.streets ORDER BY id LIMIT 1")
    finally:
        await conn.close()


async def test_need_to_prompt_dedup_relink_and_retire(
    prompter, producer, kafka_bootstrap, random_id, fresh_database_url
):
    # A random area id keeps this test's prompt key apart from every other run; the street is real
    # (the fresh database holds the Camden gazetteer) because opportunities must name known streets.
    area_id, street_id = f"it-{random_id}", await _a_street(fresh_database_url)
    key = f"{area_id}:fly_tipping".encode()
    prompts = await _consumer(kafka_bootstrap, PROMPTS.name)
    letters = await _consumer(kafka_bootstrap, DEAD_LETTERS.name)
    try:
        # A malformed record first: it is dead-lettered and the consumer carries on.
        bad = f'{{"area_id": "{area_id}", "broken": true'.encode()
        await producer.send_and_wait(STREET_NEEDS.name, bad, key=key)
        await producer.send_and_wait(STREET_NEEDS.name, _need(area_id, street_id), key=key)
        mine = lambda r: r.key == key  # noqa: E731
        (first,) = await _read_until(prompts, mine, lambda found: len(found) >= 1)
        event = _prompt(first.value)
        assert isinstance(event, PromptPublished) and event.revision == 1
        assert event.title == "3 reports of fly-tipping on Camden Road this month"
        assert event.body.startswith("Neighbours could organise a clean-up")
        # No local group yet, but never no way to help: the platforms directory fills in.
        assert event.opportunities and {o.kind for o in event.opportunities} == {"platform"}

        (letter,) = await _read_until(
            letters,
            lambda r: area_id.encode() in base64.b64decode(json.loads(r.value)["original_b64"]),
            lambda found: len(found) >= 1,
        )
        letter = DeadLettered.model_validate_json(letter.value)
        assert letter.service == "prompter" and letter.source_topic == STREET_NEEDS.name and letter.errors

        # The identical need again: no new prompt. A partner registers a clean-up on the street: the
        # prompt's content changes, so revision 2 links it. Then the tombstone retires the prompt.
        await producer.send_and_wait(STREET_NEEDS.name, _need(area_id, street_id), key=key)
        created = await prompter.post(
            "/v1/opportunities",
            json={
                "title": "Camden Road clean-up",
                "organisation": "Friends of Camden Road",
                "url": "https://example.org/cleanup",
                "contact_email": "hello@example.org",
                "categories": ["fly_tipping"],
                "area": {"street_ids": [street_id]},
                "times": "Saturdays 10am",
            },
        )
        assert created.status_code == 201, created.text
        await producer.send_and_wait(STREET_NEEDS.name, None, key=key)

        rest = await _read_until(
            prompts, mine, lambda found: any(_prompt(r.value).event_type == "prompt_retired" for r in found)
        )
        events = [_prompt(r.value) for r in rest]
        assert [(e.event_type, getattr(e, "revision", None)) for e in events] == [
            ("prompt_published", 2),
            ("prompt_retired", None),
        ]
        linked = events[0].opportunities
        assert linked[0].opportunity_id == created.json()["id"] and linked[0].kind == "local"
        assert linked[0].when == "Saturdays 10am" and linked[0].contact_email == "hello@example.org"
        assert {o.kind for o in linked[1:]} == {"platform"}  # local first, then platforms
        assert events[1].prompt_id == key.decode() and events[1].area_id == area_id
    finally:
        await prompts.stop()
        await letters.stop()

    conn = await asyncpg.connect(fresh_database_url)
    try:
        row = await conn.fetchrow(
            "SELECT revision, status, content_hash FROM prompter.prompts WHERE prompt_id = $1", key.decode()
        )
        active = await conn.fetchval("SELECT active FROM prompter.needs WHERE prompt_id = $1", key.decode())
        history = await conn.fetch(
            "SELECT active, count FROM prompter.needs_history WHERE prompt_id = $1 ORDER BY id", key.decode()
        )
    finally:
        await conn.close()
    assert (row["revision"], row["status"], row["content_hash"], active) == (2, "retired", None, False)
    # The impact pages' history: raised with its count (the identical repeat is a stale version), then gone.
    assert [(h["active"], h["count"]) for h in history] == [(True, 3), (True, 3), (False, None)]


def _ward_trend(ward: str, trend: str, version: int) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "area_id": ward,
            "area_kind": "ward",
            "area_name": "Belsize",
            "ward_code": ward,
            "street_ids": ["way/1", "way/2"],
            "category": "isolation",
            "sensitivity": "person",
            "band": None,
            "count": None,
            "trend": trend,
            "since": "2026-07-01",
            "period": "2026-Q3",
            "published_at": "2026-10-01T09:00:00+00:00",
            "version": version,
        }
    ).encode()


async def test_ward_trend_prompts_and_a_steady_trend_retires_them(
    prompter, producer, kafka_bootstrap, random_id
):
    ward = f"W{random_id}"
    key = f"{ward}:isolation".encode()
    prompts = await _consumer(kafka_bootstrap, PROMPTS.name)
    try:
        for version, trend in enumerate(("up", "steady", "down"), start=1):
            await producer.send_and_wait(STREET_NEEDS.name, _ward_trend(ward, trend, version), key=key)
        found = await _read_until(prompts, lambda r: r.key == key, lambda found: len(found) >= 3)
    finally:
        await prompts.stop()
    events = [_prompt(r.value) for r in found]
    assert [(e.event_type, getattr(e, "revision", None)) for e in events] == [
        ("prompt_published", 1),
        ("prompt_retired", None),
        ("prompt_published", 2),
    ]
    assert events[0].title == "More older neighbours in Belsize may be feeling lonely"
    assert events[2].title == "Fewer older neighbours in Belsize seem lonely than last season"
    assert events[0].area_kind == "ward" and events[0].ward_code == ward
