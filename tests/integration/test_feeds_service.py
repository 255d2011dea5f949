"""The feeds service on the real broker and database, served by uvicorn on a loopback port.

prompts.v1 → a subscriber's Atom feed and SSE stream (with resumption) → retirement; CAP alerts;
conditional GET; the subscription lifecycle; "I can help" on resident-responses.v1 and its rate
limit; malformed prompts dead-lettered; error pages for browsers, problem+json for machines.
"""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import json
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import feedparser
import httpx
import pytest
import xmlschema
from aiokafka import AIOKafkaConsumer

from services.feeds.main import create_app
from services.feeds.settings import FeedsSettings
from shared.contracts import (
    DEAD_LETTERS,
    PROMPTS,
    RESIDENT_RESPONSES,
    OpportunityLink,
    PromptPublished,
    PromptRetired,
)
from shared.db import create_database, drop_database
from tests.support import group_at_end, loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ROOT = Path(__file__).resolve().parents[2]
CAMDEN = ROOT / "data" / "camden"
XSD = xmlschema.XMLSchema(ROOT / "tests/data/feeds/CAP-v1.2.xsd")


@pytest.fixture(scope="module")
async def served(stack, gazetteer_template) -> AsyncIterator[tuple[str, FeedsSettings]]:
    """The app on a random loopback port, with its own database and consumer group."""
    database_url = await create_database(stack["database"], prefix="t_feeds", template=gazetteer_template)
    sock, base = loopback_socket()
    group_id = f"feeds-test-{uuid.uuid4().hex[:8]}"
    await group_at_end(stack["kafka"], group_id, PROMPTS)  # resume points count this test's changes only
    settings = FeedsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=stack["kafka"],
        base_url=base,
        group_id=group_id,
        help_burst=2,
        help_rate_per_minute=0.5,
        sse_heartbeat_s=1.0,
        _env_file=None,
    )
    try:
        async with serve(create_app(settings), sock):
            yield base, settings
    finally:
        await drop_database(stack["database"], database_url)


async def _eventually(check, what: str, attempts: int = 300):
    """Poll until `check()` returns something truthy (the consumer is asynchronous)."""
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


async def _street(client: httpx.AsyncClient, q: str, name: str) -> dict:
    found = (await client.get("/v1/streets", params={"q": q})).json()["streets"]
    return next(s for s in found if s["name"] == name)


def _prompt(street: dict, random_id: str, **overrides) -> PromptPublished:
    fields = dict(
        prompt_id=f"t{random_id}-{street['id']}:fly_tipping",
        revision=1,
        area_id=street["id"],
        area_kind="street",
        area_name=street["name"],
        ward_code=street["ward_code"],
        street_ids=(street["id"],),
        category="fly_tipping",
        sensitivity="place",
        title=f"Fly-tipping on {street['name']} ({random_id})",
        body="Bags dumped by the corner.",
        opportunities=(
            OpportunityLink(
                opportunity_id="o-1",
                title="Clean-up Saturday",
                organisation="Camden Clean Streets",
                url="https://example.org/cleanup",
                when="Saturdays 10am at the library",
            ),
        ),
        published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    fields.update(overrides)
    return PromptPublished(**fields)


class SseReader:
    """A real SSE client: reads `id:`/`event:`/`data:` blocks and heartbeat comments."""

    def __init__(self, client: httpx.AsyncClient, url: str, last_event_id: str | None = None) -> None:
        self.events: asyncio.Queue[dict] = asyncio.Queue()
        self.comments = 0
        self.content_type = ""
        headers = {"Last-Event-ID": last_event_id} if last_event_id else {}
        self.task = asyncio.create_task(self._run(client, url, headers))
        self.connected = asyncio.Event()

    async def _run(self, client, url, headers):
        async with client.stream("GET", url, headers=headers, timeout=None) as response:
            self.content_type = response.headers["content-type"]
            self.connected.set()
            block: dict = {}
            async for line in response.aiter_lines():
                if line == "":
                    if block:
                        await self.events.put(block)
                    block = {}
                elif line.startswith(":"):
                    self.comments += 1
                else:
                    field, _, value = line.partition(":")
                    block[field] = value.removeprefix(" ")

    async def next(self, event: str, prompt_id: str) -> dict:
        while True:
            block = await asyncio.wait_for(self.events.get(), 60)
            if block.get("event") == event and json.loads(block["data"])["prompt_id"] == prompt_id:
                return block

    async def close(self):
        self.task.cancel()
        await asyncio.gather(self.task, return_exceptions=True)


async def test_prompt_reaches_subscribers_feeds_and_live_stream_then_retires(served, producer, random_id):
    base, _ = served
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        street = await _street(client, "agar", "Agar Grove")
        sub = await client.post("/v1/subscriptions", json={"street_id": street["id"]})
        assert sub.status_code == 201, sub.text
        feeds = sub.json()["feeds"]
        token = sub.json()["feed_url"].rsplit("/", 1)[1]
        assert len(token) == 22 and sub.json()["street_ids"] == [street["id"]]

        live = SseReader(client, feeds["events"])
        await asyncio.wait_for(live.connected.wait(), 30)
        assert live.content_type.startswith("text/event-stream")

        prompt = _prompt(street, random_id)
        await producer.send_and_wait(
            PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
        )

        async def in_atom():
            parsed = feedparser.parse((await client.get(feeds["atom"])).content)
            return parsed if any(e.title == prompt.title for e in parsed.entries) else None

        parsed = await _eventually(in_atom, "the prompt in the subscriber's Atom feed")
        assert parsed.bozo == 0
        entry = next(e for e in parsed.entries if e.title == prompt.title)
        assert entry.id.startswith("tag:") and "Clean-up Saturday" in entry.content[0].value
        rss = feedparser.parse((await client.get(feeds["rss"])).content)
        assert rss.bozo == 0 and any(e.title == prompt.title for e in rss.entries)
        doc = (await client.get(feeds["json_feed"])).json()
        assert doc["version"] == "https://jsonfeed.org/version/1.1"
        assert any(i["title"] == prompt.title for i in doc["items"])
        street_atom = feedparser.parse((await client.get(f"/streets/{street['id']}.atom")).content)
        assert any(e.title == prompt.title for e in street_atom.entries)
        ward_page = await client.get(f"/wards/{street['ward_code']}")
        assert prompt.title in ward_page.text

        published = await live.next("prompt", prompt.prompt_id)
        assert published["id"].isdigit() and json.loads(published["data"])["title"] == prompt.title

        # Resumption: a client reconnecting with the id before this event gets it replayed.
        resumed = SseReader(client, feeds["events"], last_event_id=str(int(published["id"]) - 1))
        replayed = await resumed.next("prompt", prompt.prompt_id)
        assert replayed["id"] == published["id"]

        # Conditional GET: the same representation is a 304, by ETag and by date.
        first = await client.get(feeds["atom"])
        assert first.headers["cache-control"].startswith("private")
        again = await client.get(feeds["atom"], headers={"If-None-Match": first.headers["etag"]})
        assert again.status_code == 304
        dated = await client.get(feeds["atom"], headers={"If-Modified-Since": first.headers["last-modified"]})
        assert dated.status_code == 304

        # CAP: a place category becomes an alert in the index, valid against the OASIS schema.
        index = feedparser.parse((await client.get("/cap/alerts.xml")).content)
        assert index.bozo == 0
        cap_entry = next(e for e in index.entries if e.title == prompt.title)
        cap = await client.get(cap_entry.link)
        assert cap.headers["content-type"].startswith("application/cap+xml")
        XSD.validate(cap.content)
        assert b"<msgType>Alert</msgType>" in cap.content and b"+00:00</sent>" in cap.content
        assert b"<polygon>" in cap.content

        retired = PromptRetired(
            prompt_id=prompt.prompt_id,
            area_id=prompt.area_id,
            category=prompt.category,
            retired_at=dt.datetime.now(dt.UTC),
        )
        await producer.send_and_wait(
            PROMPTS.name, retired.model_dump_json().encode(), key=prompt.prompt_id.encode()
        )
        gone = await live.next("retired", prompt.prompt_id)
        assert int(gone["id"]) > int(published["id"])

        async def not_in_atom():
            response = await client.get(feeds["atom"], headers={"If-None-Match": first.headers["etag"]})
            return response.status_code == 200 and prompt.title not in response.text

        await _eventually(not_in_atom, "the retired prompt gone from the Atom feed")
        index = feedparser.parse((await client.get("/cap/alerts.xml")).content)
        cancel_entry = next(e for e in index.entries if e.title.endswith(prompt.title))
        cancel = await client.get(cancel_entry.link)
        XSD.validate(cancel.content)
        assert b"<msgType>Cancel</msgType>" in cancel.content
        assert cap_entry.link.rsplit("/", 1)[1].removesuffix(".xml").encode() in cancel.content  # references

        async def heartbeat():
            return live.comments >= 1

        await _eventually(heartbeat, "a heartbeat comment (every 1 s in this test) on the live stream")
        await live.close()
        await resumed.close()


async def test_subscription_lifecycle_by_form_and_area(served):
    base, _ = served
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        street = await _street(client, "agar", "Agar Grove")
        search = await client.get("/streets", params={"q": "agar"})
        assert search.status_code == 200 and f'/streets/{street["id"]}"' in search.text
        notice = await client.get(f"/streets/{street['id']}/notice")
        assert notice.status_code == 200 and "@media print" in notice.text and "size: A4" in notice.text
        short = notice.text.split('class="url">', 1)[1].split("<", 1)[0]
        followed = await client.get(short.removeprefix(base.split("://", 1)[1]))
        assert followed.status_code == 301 and followed.headers["location"].endswith(
            f"/streets/{street['id']}"
        )
        form = await client.post("/subscriptions", data={"kind": "street", "street_id": street["id"]})
        assert form.status_code == 201 and "Keep this link private" in form.text
        assert form.headers["referrer-policy"] == "no-referrer"
        area = await client.post("/v1/subscriptions", json={"lat": 51.5443, "lon": -0.1310, "radius_m": 300})
        assert area.status_code == 201, area.text
        assert street["id"] in area.json()["street_ids"] and area.json()["unit_ids"]
        too_far = await client.post(
            "/v1/subscriptions", json={"lat": 51.5443, "lon": -0.131, "radius_m": 5000}
        )
        assert too_far.status_code == 422
        assert too_far.headers["content-type"] == "application/problem+json"
        assert too_far.json()["errors"][0]["field"] == "radius_m"

        url = area.json()["feed_url"].removeprefix(base)
        page = await client.get(url)
        assert page.status_code == 200 and 'lang="en-GB"' in page.text and 'href="#main"' in page.text
        assert "OpenStreetMap contributors (ODbL)" in page.text
        confirm = await client.get(f"{url}/unsubscribe")
        assert confirm.status_code == 200 and "<form" in confirm.text
        assert (await client.get(url)).status_code == 200  # the confirmation page changes nothing
        assert (await client.post(f"{url}/unsubscribe")).status_code == 200
        assert (await client.get(f"{url}.atom")).status_code == 410
        assert (await client.get(f"{url}/events")).status_code == 410
        assert (await client.get("/s/AAAAAAAAAAAAAAAAAAAAAA.atom")).status_code == 404


async def test_i_can_help_publishes_resident_responded_and_is_rate_limited(
    served, producer, stack, random_id
):
    base, _ = served
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        street = await _street(client, "agar", "Agar Grove")
        prompt = _prompt(street, random_id)
        await producer.send_and_wait(
            PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
        )

        async def stored():
            return (await client.get(f"/prompts/{prompt.prompt_id}")).status_code == 200

        await _eventually(stored, "the prompt stored")
        first = await client.post(f"/v1/prompts/{prompt.prompt_id}/responses")
        assert first.status_code == 201, first.text
        assert first.json()["responses"] == 1
        assert first.json()["opportunities"][0]["url"] == "https://example.org/cleanup"
        thanks = await client.post(f"/prompts/{prompt.prompt_id}/help", headers={"Accept": "text/html"})
        assert thanks.status_code == 200 and "Clean-up Saturday" in thanks.text
        again = await client.post(f"/v1/prompts/{prompt.prompt_id}/responses")  # same browser: once
        assert again.status_code == 201 and again.json()["responses"] == 2
        client.cookies.clear()  # another resident from the same address: rate limited
        limited = await client.post(f"/v1/prompts/{prompt.prompt_id}/responses")
        assert limited.status_code == 429
        assert limited.headers["content-type"] == "application/problem+json"
        assert int(limited.headers["retry-after"]) > 0
        page = await client.get(f"/prompts/{prompt.prompt_id}")
        assert "2 neighbours said they can help" in page.text
        assert (await client.post("/v1/prompts/no-such-prompt/responses")).status_code == 404

    consumer = AIOKafkaConsumer(
        RESIDENT_RESPONSES.name,
        bootstrap_servers=stack["kafka"],
        group_id=f"t-{random_id}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        seen = []
        while len(seen) < 2:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                seen += [r for r in records if r.key == prompt.prompt_id.encode()]
    finally:
        await consumer.stop()
    body = json.loads(seen[0].value)
    assert set(body) == {
        "schema_version",
        "response_id",
        "prompt_id",
        "area_id",
        "category",
        "kind",
        "responded_on",
    }
    assert body["kind"] == "can_help" and body["responded_on"] == dt.datetime.now(dt.UTC).date().isoformat()
    assert uuid.UUID(body["response_id"]).version == 5  # uuid5(helper cookie, prompt): counted once


async def test_malformed_prompt_is_dead_lettered_and_consumption_carries_on(
    served, producer, stack, random_id
):
    base, _ = served
    key = f"bad-{random_id}".encode()
    await producer.send_and_wait(PROMPTS.name, b'{"event_type": "prompt_published", "oops": 1}', key=key)
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        street = await _street(client, "agar", "Agar Grove")
        prompt = _prompt(street, random_id)
        await producer.send_and_wait(
            PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
        )

        async def stored():
            return (await client.get(f"/prompts/{prompt.prompt_id}")).status_code == 200

        await _eventually(stored, "the next prompt stored after the malformed one")
    consumer = AIOKafkaConsumer(
        DEAD_LETTERS.name,
        bootstrap_servers=stack["kafka"],
        group_id=f"t-{random_id}",
        auto_offset_reset="earliest",
    )
    await consumer.start()
    try:
        letter = None
        while letter is None:
            batch = await consumer.getmany(timeout_ms=1000)
            for records in batch.values():
                for r in records:
                    doc = json.loads(r.value)
                    if doc.get("service") == "feeds" and doc.get("key_b64") == base64.b64encode(key).decode():
                        letter = doc
    finally:
        await consumer.stop()
    assert letter["source_topic"] == PROMPTS.name and letter["errors"]


async def test_browsers_get_error_pages_and_machines_problem_json(served):
    base, _ = served
    browser = {"Accept": "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"}
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        for path, status in [
            ("/streets/no-such-street", 404),
            ("/wards/E99999999", 404),
            ("/prompts/no-such-prompt", 404),
            ("/n/zzzzzzz", 404),
        ]:
            page = await client.get(path, headers=browser)
            assert page.status_code == status and page.headers["content-type"].startswith("text/html"), path
            assert 'lang="en-GB"' in page.text and "Find a street" in page.text
            machine = await client.get(path)
            assert machine.status_code == status
            assert machine.headers["content-type"] == "application/problem+json"
        sub = (
            await client.post(
                "/v1/subscriptions",
                json={"ward_code": (await _street(client, "agar", "Agar Grove"))["ward_code"]},
            )
        ).json()
        path = sub["feed_url"].removeprefix(base)
        await client.post(f"{path}/unsubscribe")
        ended = await client.get(path, headers=browser)
        assert ended.status_code == 410 and "Subscribe again" in ended.text
        assert ended.headers["referrer-policy"] == "no-referrer"
        feed = await client.get(f"{path}.atom", headers=browser)
        assert feed.status_code == 410 and feed.headers["content-type"] == "application/problem+json"
        form = await client.post(
            "/subscriptions",
            data={"kind": "area", "lat": "51.5", "lon": "-0.13", "radius_m": "99999"},
            headers=browser,
        )
        assert form.status_code == 422 and "Choose a distance between 50 and 2,000 metres" in form.text
        typed = await client.post("/subscriptions", data={"kind": "area", "lat": "north"}, headers=browser)
        assert typed.status_code == 422 and "Choose a point first" in typed.text
        help_ = await client.post("/prompts/no-such-prompt/help", headers=browser)
        assert help_.status_code == 404 and "It may have been retired" in help_.text


async def test_a_private_feed_page_offers_e_mail_alerts_for_its_street_but_not_for_a_radius(served):
    base, settings = served
    async with httpx.AsyncClient(base_url=base, timeout=30) as client:
        street = await _street(client, "agar", "Agar Grove")
        followed = await client.post("/v1/subscriptions", json={"street_id": street["id"]})
        page = await client.get(followed.json()["feed_url"].removeprefix(base))
        assert f'action="{settings.notifier_url}/subscribe"' in page.text
        assert f'name="street_id" value="{street["id"]}"' in page.text
        # A point and radius would tell the notifier where the resident lives: no form offers it.
        area = await client.post("/v1/subscriptions", json={"lat": 51.5443, "lon": -0.1310, "radius_m": 300})
        page = await client.get(area.json()["feed_url"].removeprefix(base))
        assert page.status_code == 200 and "/subscribe" not in page.text
