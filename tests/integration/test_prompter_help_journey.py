"""From a need to a neighbour's action, through real Kafka and PostgreSQL with the prompter and the
feeds served side by side: every prompt links a way to help, "I can help" counts once per browser
(in both services), the resident's optional contact details reach only the chosen organisation, and
the ward's impact page shows the offer."""

from __future__ import annotations

import asyncio
import json
import re
import uuid

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.feeds.main import create_app as create_feeds
from services.feeds.settings import FeedsSettings
from services.prompter.main import create_app as create_prompter
from services.prompter.settings import PrompterSettings
from shared.contracts import STREET_NEEDS, Category, info
from shared.keys import hash_key, new_key
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


async def _until(check, what: str, attempts: int = 600):
    for _ in range(attempts):
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.2)
    raise AssertionError(f"never happened: {what}")


def _need(area_id: str, street: asyncpg.Record, category: Category) -> dict:
    person = info(category).sensitivity == "person"
    return {
        "schema_version": 1,
        "area_id": area_id,
        "area_kind": "unit" if person else "street",
        "area_name": f"{street['name']} and 1 nearby street" if person else street["name"],
        "ward_code": street["ward_code"],
        "street_ids": [street["id"]],
        "category": str(category),
        "sensitivity": "person" if person else "place",
        **({"band": "some", "period": "2026-10"} if person else {"count": 2, "period": "live"}),
        "since": "2026-10-01",
        "published_at": "2026-11-01T09:00:00+00:00",
        "version": 1,
    }


async def test_every_prompt_has_a_way_to_help_and_i_can_help_counts_once(
    fresh_database_url, kafka_bootstrap, random_id
):
    db = await asyncpg.connect(fresh_database_url)
    street = await db.fetchrow(
        "SELECT id, name, ward_code FROM gazetteer.streets WHERE ward_code IS NOT NULL AND name <> ''"
        " ORDER BY id LIMIT 1"
    )
    p_sock, p_base = loopback_socket()
    f_sock, f_base = loopback_socket()
    prompter = create_prompter(
        PrompterSettings(
            database_url=fresh_database_url,
            kafka_bootstrap_servers=kafka_bootstrap,
            group_id=f"prompter-test-{uuid.uuid4().hex}",
            base_url=p_base,
            feeds_url=f_base,
            _env_file=None,
        )
    )
    feeds = create_feeds(
        FeedsSettings(
            database_url=fresh_database_url,
            kafka_bootstrap_servers=kafka_bootstrap,
            group_id=f"feeds-test-{uuid.uuid4().hex}",
            base_url=f_base,
            prompter_url=p_base,
            _env_file=None,
        )
    )
    producer = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await producer.start()
    try:
        async with serve(prompter, p_sock), serve(feeds, f_sock):
            key = new_key("sno_")
            org_id = await db.fetchval(
                "INSERT INTO prompter.organisations (id, name, kind, key_hash) VALUES ($1, $2, 'vcs', $3)"
                " RETURNING id",
                uuid.uuid4(),
                "Kentish Town Friends",
                hash_key(key),
            )
            org = httpx.AsyncClient(base_url=p_base, headers={"Authorization": f"Bearer {key}"}, timeout=30)
            created = await org.post(
                "/v1/opportunities",
                json={
                    "title": "Tea and a chat on Tuesdays",
                    "what": "Pour tea and talk with older neighbours.",
                    "contact_email": "hello@ktfriends.org.uk",
                    "categories": ["isolation"],
                    "area": {"street_ids": [street["id"]]},
                    "times": "Tuesdays 2-4pm",
                },
            )
            assert created.status_code == 201, created.text
            # One need per category on the same street: none may lack a way to help.
            prompt_ids = {}
            for category in Category:
                area_id = f"hj-{random_id}-{category}"
                prompt_ids[category] = f"{area_id}:{category}"
                await producer.send_and_wait(
                    STREET_NEEDS.name,
                    json.dumps(_need(area_id, street, category)).encode(),
                    key=prompt_ids[category].encode(),
                )
            resident = httpx.AsyncClient(base_url=f_base, timeout=30, headers={"Accept": "text/html"})
            for category, prompt_id in prompt_ids.items():
                path = f"/prompts/{prompt_id}"

                async def shown(path=path):
                    page = await resident.get(path)
                    return page if page.status_code == 200 else None

                page = await _until(shown, f"the {category} prompt on the feeds")
                links = re.findall(r'<a href="(https://[^"]+)"', page.text)
                assert links, f"{category}: no way to help on {path}"

            isolation = f"/prompts/{prompt_ids[Category.ISOLATION]}"
            first = await resident.post(f"{isolation}/help")
            assert first.status_code == 200 and "sn_helper" in first.headers["set-cookie"]
            assert "HttpOnly" in first.headers["set-cookie"] and "SameSite=lax" in first.headers["set-cookie"]
            text = first.text
            assert text.index("Tea and a chat on Tuesdays") < text.index("Age UK Camden")  # local first
            assert "mailto:hello@ktfriends.org.uk" in text
            assert f'action="{p_base}/offers"' in text and "You are the first neighbour" in text
            for _ in range(3):  # the same browser again: thanked, not counted
                again = await resident.post(f"{isolation}/help")
                assert again.status_code == 200 and "we count it once" in again.text
            neighbour = httpx.AsyncClient(base_url=f_base, timeout=30)
            assert "2 neighbours" in (await neighbour.post(f"{isolation}/help")).text
            assert (
                await db.fetchval(
                    "SELECT responses FROM feeds.response_counts WHERE prompt_id = $1",
                    prompt_ids[Category.ISOLATION],
                )
                == 2
            )

            async def prompter_counted():
                n = await db.fetchval(
                    "SELECT responses FROM prompter.response_counts WHERE prompt_id = $1",
                    prompt_ids[Category.ISOLATION],
                )
                return n == 2

            await _until(prompter_counted, "the prompter counting two residents")

            # The optional form posts straight to the prompter, for the one organisation chosen.
            opportunity_id = re.search(r'name="opportunity_id" value="([^"]+)"', text)[1]
            form = {
                "prompt_id": prompt_ids[Category.ISOLATION],
                "opportunity_id": opportunity_id,
                "first_name": "Sam",
                "email": "sam@example.org",
            }
            refused = await resident.post(f"{p_base}/offers", data=form)
            assert refused.status_code == 422 and "<strong>consent</strong>" in refused.text
            assert await db.fetchval("SELECT count(*) FROM prompter.help_offers") == 0
            sent = await resident.post(f"{p_base}/offers", data={**form, "consent": "yes"})
            assert sent.status_code == 200 and "Kentish Town Friends" in sent.text
            stored = await db.fetchrow("SELECT organisation_id, first_name, email FROM prompter.help_offers")
            assert tuple(stored) == (org_id, "Sam", "sam@example.org")
            offers = (await org.get("/v1/organisation/offers")).json()
            # (at least: prompts from older runs' needs on the same street link the opportunity too)
            assert offers["responses"] >= 2 and offers["offers"][0]["first_name"] == "Sam"

            impact = await resident.get(f"{p_base}/impact/wards/{street['ward_code']}")
            assert impact.status_code == 200 and impact.text.count('<svg id="') == 2
            offered = re.search(r"Neighbours offered help (\d+) times", impact.text)
            assert offered and int(offered[1]) >= 2  # the ward's: older runs' responses may add to it
            street_page = await resident.get(f"/streets/{street['id']}")
            assert f"{p_base}/impact/wards/{street['ward_code']}" in street_page.text
            # The rate limit stays for new responses from one address, but the page still shows the
            # ways to help (a repeat from a counted browser spends nothing: checked above, 3 repeats).
            litter = f"/prompts/{prompt_ids[Category.LITTER]}/help"
            answers = []
            for _ in range(6):
                async with httpx.AsyncClient(
                    base_url=f_base, timeout=30, headers={"Accept": "text/html"}
                ) as new:
                    answers.append(await new.post(litter))
            assert [a.status_code for a in answers].count(429) >= 1
            limited = next(a for a in answers if a.status_code == 429)
            assert int(limited.headers["retry-after"]) > 0 and "could not count this just now" in limited.text
            assert re.search(r'<a href="https://[^"]+">', limited.text)  # still a way to help
            counted = await db.fetchval(
                "SELECT responses FROM feeds.response_counts WHERE prompt_id = $1",
                prompt_ids[Category.LITTER],
            )
            assert counted == [a.status_code for a in answers].count(200)
            for client in (org, resident, neighbour):
                await client.aclose()
    finally:
        await producer.stop()
        await db.close()
