"""The help journey in a real headless Chromium, with the prompter and the feeds on real Kafka and
PostgreSQL: a need becomes a prompt page that links ways to help → "I can help" → the ways to help,
local group first, with contact routes → clicking again counts once → the optional form sends a first
name and email to that one group only (consent required) → the ward's impact page draws its charts."""

from __future__ import annotations

import asyncio
import json
import re
import uuid
from typing import Any
from urllib.parse import quote

import asyncpg
import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from shared.keys import hash_key, new_key
from tests.browser.conftest import BackgroundSite, axe_violations, describe_violations, save_screenshot
from tests.browser.pages import clicked, until, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class HelpSite(BackgroundSite):
    """The prompter and the feeds on one fresh database, served from one background loop."""

    def __init__(self, stack: dict[str, str], template: str) -> None:
        super().__init__(stack, template)
        self.prompter = self.feeds = self.database_url = ""

    async def _serve(self) -> None:
        from services.feeds.main import create_app as feeds_app
        from services.feeds.settings import FeedsSettings
        from services.prompter.main import create_app as prompter_app
        from services.prompter.settings import PrompterSettings
        from shared.db import create_database, drop_database
        from tests.support import loopback_socket, serve

        self.database_url = await create_database(
            self.stack["database"], prefix="t_help", template=self.template
        )
        p_sock, self.prompter = loopback_socket()
        f_sock, self.feeds = loopback_socket()
        common = {
            "database_url": self.database_url,
            "kafka_bootstrap_servers": self.stack["kafka"],
            "_env_file": None,
        }
        prompter = prompter_app(
            PrompterSettings(
                **common,
                group_id=f"prompter-browser-{uuid.uuid4().hex[:8]}",
                base_url=self.prompter,
                feeds_url=self.feeds,
            )
        )
        feeds = feeds_app(
            FeedsSettings(
                **common,
                group_id=f"feeds-browser-{uuid.uuid4().hex[:8]}",
                base_url=self.feeds,
                prompter_url=self.prompter,
            )
        )
        try:
            async with serve(prompter, p_sock), serve(feeds, f_sock):
                await self._serve_until_stopped()
        finally:
            await drop_database(self.stack["database"], self.database_url)

    def sql(self, query: str, *args: Any) -> Any:
        async def run():
            conn = await asyncpg.connect(self.database_url)
            try:
                return await conn.fetchval(query, *args)
            finally:
                await conn.close()

        return asyncio.run(run())

    def publish_need(self, key: str, need: dict) -> None:
        from shared.contracts import STREET_NEEDS

        self.send(STREET_NEEDS.name, (key, json.dumps(need).encode()))


@pytest.fixture(scope="module")
def site(stack, gazetteer_template):
    s = HelpSite(stack, gazetteer_template).start()
    try:
        yield s
    finally:
        s.stop()


def test_i_can_help_shows_ways_to_help_and_counts_once(browser, site):
    street_id, ward = site.sql(
        "SELECT array[id, ward_code] FROM gazetteer.streets WHERE ward_code IS NOT NULL AND name <> ''"
        " ORDER BY id LIMIT 1"
    )
    key = new_key("sno_")
    site.sql(
        "INSERT INTO prompter.organisations (id, name, kind, key_hash)"
        " VALUES ($1, 'Kentish Town Friends', 'vcs', $2)",
        uuid.uuid4(),
        hash_key(key),
    )
    created = httpx.post(
        f"{site.prompter}/v1/opportunities",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "title": "Tea and a chat on Tuesdays",
            "what": "Pour tea and talk with older neighbours.",
            "contact_email": "hello@ktfriends.example.org",
            "categories": ["isolation"],
            "area": {"street_ids": [street_id]},
            "times": "Tuesdays 2 to 4pm",
        },
        timeout=30,
    )
    assert created.status_code == 201, created.text
    area_id = f"bh-{uuid.uuid4().hex[:8]}"
    prompt_id = f"{area_id}:isolation"
    site.publish_need(
        prompt_id,
        {
            "schema_version": 1,
            "area_id": area_id,
            "area_kind": "unit",
            "area_name": "Test Street and 2 nearby streets",
            "ward_code": ward,
            "street_ids": [street_id],
            "category": "isolation",
            "sensitivity": "person",
            "band": "several",
            "since": "2026-10-01",
            "period": "2026-10",
            "published_at": "2026-11-01T09:00:00+00:00",
            "version": 1,
        },
    )
    page = f"{site.feeds}/prompts/{quote(prompt_id, safe='')}"
    until(lambda: httpx.get(page, timeout=10).status_code == 200, "the prompt on the resident's page")

    browser.get(page)
    assert (
        "Several older neighbours near Test Street may be lonely"
        in browser.find_element(By.TAG_NAME, "h1").text
    )
    ways = [li.text for li in browser.find_elements(By.CSS_SELECTOR, "ul.ways > li")]
    assert ways[0].startswith("Tea and a chat on Tuesdays")  # the local group first, then platforms
    platforms = [a.text for a in browser.find_elements(By.CSS_SELECTOR, "ul.ways a[href^='https://']")]
    assert "Age UK Camden" in platforms
    clicked(browser, browser.find_element(By.XPATH, "//button[normalize-space()='I can help']"))
    wait(browser, EC.title_contains("Thank you"))
    body = browser.find_element(By.TAG_NAME, "main").text
    assert "You are the first neighbour to say so" in body
    assert body.index("Tea and a chat on Tuesdays") < body.index("Age UK Camden")
    assert browser.find_element(By.CSS_SELECTOR, "a[href='mailto:hello@ktfriends.example.org']")
    violations = axe_violations(browser)
    assert not violations, describe_violations(violations)
    save_screenshot(browser, "help-thanks")

    for _ in range(2):  # back to the prompt, and "I can help" again: thanked, counted once
        browser.get(page)
        clicked(browser, browser.find_element(By.XPATH, "//button[normalize-space()='I can help']"))
        wait(browser, EC.title_contains("Thank you"))
        assert "we count it once" in browser.find_element(By.TAG_NAME, "main").text
    assert site.sql("SELECT responses FROM feeds.response_counts WHERE prompt_id = $1", prompt_id) == 1
    until(
        lambda: (
            site.sql("SELECT responses FROM prompter.response_counts WHERE prompt_id = $1", prompt_id) == 1
        ),
        "the prompter counting the response",
    )
    browser.get(f"{page}?fresh=1")  # the prompt page is cacheable for a minute: ask past the cache
    assert "1 neighbour said they can help" in browser.find_element(By.TAG_NAME, "main").text

    # The optional form: consent is required (the browser enforces it; the prompter does too).
    clicked(browser, browser.find_element(By.XPATH, "//button[normalize-space()='I can help']"))
    wait(browser, EC.title_contains("Thank you"))
    browser.find_element(By.ID, "first_name").send_keys("Sam")
    browser.find_element(By.ID, "email").send_keys("sam@example.org")
    browser.find_element(By.XPATH, "//button[normalize-space()='Send my details to this group']").click()
    assert "Thank you" in browser.title  # not sent: the consent box is required
    assert site.sql("SELECT count(*) FROM prompter.help_offers") == 0
    browser.find_element(By.NAME, "consent").click()
    clicked(
        browser, browser.find_element(By.XPATH, "//button[normalize-space()='Send my details to this group']")
    )
    wait(browser, EC.title_contains("Your details were sent"))
    assert "Kentish Town Friends" in browser.find_element(By.TAG_NAME, "h1").text
    assert site.sql("SELECT email FROM prompter.help_offers") == "sam@example.org"

    browser.get(f"{site.prompter}/impact/wards/{ward}")
    charts = browser.find_elements(By.CSS_SELECTOR, "svg[role='img']")
    assert len(charts) == 2 and all(c.size["width"] > 200 for c in charts)
    # At least this one (older test runs' responses in the ward, read from the shared topic, may add).
    assert re.search(r"Neighbours offered help \d+ times? in", browser.find_element(By.TAG_NAME, "main").text)
    save_screenshot(browser, "help-impact-ward")

    # The group signs in (no JavaScript needed) and finds the offer, then hands it over.
    browser.get(f"{site.prompter}/organisations")
    browser.find_element(By.ID, "api_key").send_keys(key)
    clicked(browser, browser.find_element(By.XPATH, "//button[normalize-space()='Sign in']"))
    wait(browser, EC.title_contains("Kentish Town Friends"))
    main = browser.find_element(By.TAG_NAME, "main").text
    assert "Tea and a chat on Tuesdays" in main and "sam@example.org" in main
    violations = axe_violations(browser)
    assert not violations, describe_violations(violations)
    save_screenshot(browser, "help-organisation-home")
    clicked(
        browser, browser.find_element(By.XPATH, "//button[normalize-space()='Mark handed over and delete']")
    )
    wait(browser, EC.title_contains("Kentish Town Friends"))
    assert "sam@example.org" not in browser.find_element(By.TAG_NAME, "main").text
    assert site.sql("SELECT count(*) FROM prompter.help_offers") == 0
    browser.get(f"{site.prompter}/organisations/opportunities/new")
    violations = axe_violations(browser)
    assert not violations, describe_violations(violations)
    save_screenshot(browser, "help-organisation-form")
    violations = axe_violations(browser)
    assert not violations, describe_violations(violations)
