"""The operators' console in a real headless Chromium, against real ingest, partners, aggregator and console
services: sign in, a council system key shown once then revoked, a form without its CSRF token refused,
a viewer with no change buttons whose forged POST is refused, every action in the audit, axe on each page."""

from __future__ import annotations

import asyncio
import re
import time

import httpx
import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from shared.db import create_database, drop_database
from tests.browser.conftest import axe_violations, describe_violations, save_screenshot
from tests.browser.pages import wait
from tests.integration.test_console_flow import ConsoleStack, _first_street

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


@pytest.fixture
def console_site(stack, gazetteer_template, random_id):
    url = asyncio.run(create_database(stack["database"], prefix="t_console", template=gazetteer_template))
    try:
        with ConsoleStack(url, stack["kafka"], random_id) as running:
            yield running
    finally:
        asyncio.run(drop_database(stack["database"], url))


def _navigates(browser, action) -> None:
    """Do `action` (a click or a script that submits) and wait until the next page has replaced this one."""
    old = browser.find_element(By.TAG_NAME, "html")
    action()
    wait(browser, EC.staleness_of(old))


def _sign_in(browser, base: str, username: str, password: str) -> None:
    browser.delete_all_cookies()
    browser.get(f"{base}/sign-in")
    browser.find_element(By.ID, "username").send_keys(username)
    browser.find_element(By.ID, "password").send_keys(password)
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Sign in']").click)
    assert "Signed in as" in browser.find_element(By.TAG_NAME, "main").text


def _sign_out(browser) -> None:
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Sign out']").click)
    assert browser.current_url.endswith("/sign-in")


def _main_text(browser) -> str:
    return browser.find_element(By.TAG_NAME, "main").text


def _accessible(browser, name: str) -> None:
    found = axe_violations(browser)
    save_screenshot(browser, f"console-{name}")
    assert not found, f"{name}: {describe_violations(found)}"


def test_console_keys_roles_csrf_and_audit_in_a_browser(browser, console_site, random_id):
    base = console_site.urls["console"]
    admin, viewer = f"admin-{random_id}", f"viewer-{random_id}"
    admin_password = asyncio.run(console_site.add_operator(admin, "admin"))
    viewer_password = asyncio.run(console_site.add_operator(viewer, "viewer"))

    browser.delete_all_cookies()
    browser.get(f"{base}/systems")
    assert browser.current_url.endswith("/sign-in")  # no session: the sign-in page
    _accessible(browser, "sign-in")
    _sign_in(browser, base, admin, admin_password)
    _accessible(browser, "overview")

    # Create a council system: its key is shown once.
    name = f"Housing repairs {random_id}"
    browser.get(f"{base}/systems")
    browser.find_element(By.ID, "name").send_keys(name)
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Create and show the key']").click)
    assert "shown only once" in _main_text(browser)
    key = browser.find_element(By.CSS_SELECTOR, "input[data-secret]").get_attribute("value")
    assert key.startswith("sn_") and len(key) > 40
    _accessible(browser, "key-shown-once")
    browser.get(f"{base}/systems")
    assert name in browser.page_source and key not in browser.page_source
    _accessible(browser, "systems")

    # Revoke it.
    _navigates(browser, browser.find_element(By.CSS_SELECTOR, f"a[aria-label='Revoke {name}']").click)
    assert "cannot be undone" in _main_text(browser)  # it asks first
    _accessible(browser, "confirm-revoke")
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Yes, revoke']").click)
    assert "revoked: its key no longer works" in _main_text(browser)
    browser.get(f"{base}/systems")
    row = browser.find_element(By.XPATH, f"//tr[td[contains(., '{name}')]]")
    assert "revoked" in row.text
    assert not row.find_elements(By.CSS_SELECTOR, "button")

    # A form whose CSRF token is taken out is refused and changes nothing.
    _navigates(
        browser,
        lambda: browser.execute_script(
            "document.querySelector(\"form[action='/systems'] input[name='csrf_token']\").remove();"
            "document.getElementById('name').value = 'no token system';"
            "document.querySelector(\"form[action='/systems']\").submit();"
        ),
    )
    assert "This form has expired" in _main_text(browser)
    browser.get(f"{base}/systems")
    assert "no token system" not in browser.page_source

    for page in ("privacy", "operations", "partners", "operators"):
        browser.get(f"{base}/{page}")
        _accessible(browser, page)
    _sign_out(browser)

    # A viewer sees no change buttons anywhere, and a forged POST with their own token is refused.
    _sign_in(browser, base, viewer, viewer_password)
    for page in ("systems", "partners", "privacy", "operations", "operators"):
        browser.get(f"{base}/{page}")
        actions = [f.get_attribute("action") for f in browser.find_elements(By.CSS_SELECTOR, "form")]
        assert [a for a in actions if not a.endswith("/sign-out")] == [], (page, actions)
    forge = (
        "const token = document.querySelector(\"input[name='csrf_token']\").value;"
        "const f = document.createElement('form'); f.method = 'post'; f.action = '/systems';"
        "for (const [k, v] of [['csrf_token', token], ['name', 'forged by viewer'], ['council_id', 'camden'],"
        " ['categories', 'isolation']]) {"
        " const i = document.createElement('input'); i.type = 'hidden'; i.name = k; i.value = v;"
        " f.append(i); }"
        "document.body.append(f); f.submit();"
    )
    _navigates(browser, lambda: browser.execute_script(forge))
    assert "You cannot do this" in _main_text(browser)
    browser.get(f"{base}/systems")
    assert "forged by viewer" not in browser.page_source
    _sign_out(browser)

    # The audit lists each action, who did it and how it went.
    _sign_in(browser, base, admin, admin_password)
    browser.get(f"{base}/audit")
    rows = [r.text for r in browser.find_elements(By.CSS_SELECTOR, "tbody tr")]
    _accessible(browser, "audit")

    def seen(who: str, what: str, outcome: str) -> bool:
        return any(re.search(rf"{re.escape(who)} {re.escape(what)} .*{outcome}", r) for r in rows)

    assert seen(admin, "sign in", "done")
    assert seen(admin, "create council system", "done")
    assert seen(admin, "revoke council system", "done")
    assert seen(admin, "create council system", "refused")  # the form without its token
    assert seen(viewer, "sign in", "done")
    assert seen(viewer, "create council system", "refused")  # the forged POST
    assert seen(viewer, "sign out", "done") and seen(admin, "sign out", "done")


def _produce_bad_council_input(kafka: str, marker: str) -> None:
    from aiokafka import AIOKafkaProducer

    from shared.contracts import COUNCIL_SIGNALS

    async def send() -> None:
        producer = AIOKafkaProducer(bootstrap_servers=kafka, acks="all")
        await producer.start()
        try:
            await producer.send_and_wait(COUNCIL_SIGNALS.name, b"{not json " + marker.encode(), key=b"k")
        finally:
            await producer.stop()

    asyncio.run(send())


def _register_opportunity(site, key: str, title: str) -> None:
    """An organisation registers a way to help on the prompter with its own key (as it would)."""
    street = asyncio.run(_first_street(site.database_url))
    answer = httpx.post(
        f"{site.urls['prompter']}/v1/opportunities",
        headers={"Authorization": f"Bearer {key}"},
        json={
            "title": title,
            "what": "Pour tea.",
            "contact_phone": "020 7974 4444",
            "categories": ["isolation"],
            "area": {"street_ids": [street]},
        },
        timeout=30,
    )
    assert answer.status_code == 201, answer.text


def _until_page_has(browser, url: str, css: str, attempts: int = 90):
    for _ in range(attempts):
        browser.get(url)
        found = browser.find_elements(By.CSS_SELECTOR, css)
        if found:
            return found
        time.sleep(1)
    raise AssertionError(f"{url} never showed {css}")


def test_every_console_task_in_a_browser(browser, console_site, random_id):
    base = console_site.urls["console"]
    name = f"op-{random_id}"
    _sign_in(browser, base, name, asyncio.run(console_site.add_operator(name, "operator")))

    # Overview: every service's readiness and the consumer lag.
    text = _main_text(browser)
    assert "ingest ready" in text and "Consumer lag" in text

    # Partners: a key shown once, then revoked.
    partner = f"Food bank {random_id}"
    browser.get(f"{base}/partners")
    browser.find_element(By.ID, "name").send_keys(partner)
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Create and show the key']").click)
    assert (
        browser.find_element(By.CSS_SELECTOR, "input[data-secret]").get_attribute("value").startswith("snp_")
    )
    browser.get(f"{base}/partners")
    _navigates(browser, browser.find_element(By.CSS_SELECTOR, f"a[aria-label='Revoke {partner}']").click)
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Yes, revoke']").click)
    assert "revoked" in _main_text(browser)

    # Council system with its own categories and rate limit, then changed.
    system = f"Adult care {random_id}"
    browser.get(f"{base}/systems")
    browser.find_element(By.ID, "name").send_keys(system)
    for box in browser.find_elements(By.CSS_SELECTOR, "form[action='/systems'] input[name='categories']"):
        if box.get_attribute("value") != "isolation":
            box.click()
    browser.find_element(By.ID, "rate_per_minute").send_keys("90")
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Create and show the key']").click)
    browser.get(f"{base}/systems")
    row = browser.find_element(By.XPATH, f"//tr[td[contains(., '{system}')]]")
    assert "isolation" in row.text and "fly_tipping" not in row.text and "90" in row.text
    row.find_element(By.TAG_NAME, "summary").click()
    rate = row.find_element(By.CSS_SELECTOR, "input[name='rate_per_minute']")
    rate.clear()
    rate.send_keys("45")
    _navigates(browser, row.find_element(By.XPATH, ".//button[.='Save']").click)
    assert "at 45 requests per minute" in _main_text(browser)

    # Privacy: releases, ε, withheld counts, key versions; a withdrawal by council reference.
    browser.get(f"{base}/privacy")
    text = _main_text(browser)
    assert "Privacy budget" in text and "Versions configured: 1" in text
    browser.find_element(By.ID, "subject_ref").send_keys(f"CASE-{random_id}")
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Withdraw']").click)
    assert "Withdrawal sent" in _main_text(browser) and f"CASE-{random_id}" not in browser.page_source

    # Moderation: a platform added, edited and switched off; an organisation's key.
    browser.get(f"{base}/moderation")
    browser.find_element(By.ID, "platform-id").send_keys(f"litter-{random_id}")
    browser.find_element(By.ID, "new-name").send_keys("Camden litter pickers")
    browser.find_element(By.ID, "new-description").send_keys("Borough litter picks.")
    browser.find_element(By.ID, "new-url").send_keys("https://litter.example.org/")
    form = browser.find_element(By.CSS_SELECTOR, "form[action='/platforms']")
    form.find_element(By.CSS_SELECTOR, "input[value='litter']").click()
    _navigates(browser, form.find_element(By.XPATH, ".//button[.='Add platform']").click)
    assert "added to the directory" in _main_text(browser)
    browser.get(f"{base}/moderation")
    _navigates(
        browser,
        browser.find_element(By.CSS_SELECTOR, "button[aria-label='Switch off Camden litter pickers']").click,
    )
    assert "switched off" in _main_text(browser)
    browser.get(f"{base}/moderation")
    row = browser.find_element(By.XPATH, "//tr[td[contains(., 'Camden litter pickers')]]")
    row.find_element(By.XPATH, ".//summary[.='Edit']").click()
    renamed = row.find_element(By.CSS_SELECTOR, "input[name='name']")
    renamed.clear()
    renamed.send_keys("Camden litter heroes")
    _navigates(browser, row.find_element(By.XPATH, ".//button[.='Save']").click)
    assert "'Camden litter heroes' saved" in _main_text(browser)

    browser.get(f"{base}/moderation")
    browser.find_element(By.ID, "org-name").send_keys(f"Lunch club {random_id}")
    _navigates(browser, browser.find_element(By.XPATH, "//button[.='Create and show the key']").click)
    org_key = browser.find_element(By.CSS_SELECTOR, "input[data-secret]").get_attribute("value")
    assert org_key.startswith("sno_")
    title = f"Tea hosts {random_id}"
    _register_opportunity(console_site, org_key, title)
    browser.get(f"{base}/moderation")
    _accessible(browser, "moderation")
    _navigates(
        browser, browser.find_element(By.CSS_SELECTOR, f"button[aria-label='Switch off {title}']").click
    )
    assert "switched off: prompts no longer link to it" in _main_text(browser)
    assert title not in httpx.get(f"{console_site.urls['prompter']}/v1/opportunities").text

    # Operations: a dead letter with its reason, discarded; the volumes chart and its table.
    raw = f"RAW-COUNCIL-INPUT-{random_id}"
    _produce_bad_council_input(console_site.kafka, raw)
    replay = _until_page_has(browser, f"{base}/operations", "button[aria-label^='Replay dead letter']")
    _navigates(browser, replay[0].click)
    assert "Replayed to" in _main_text(browser)
    # Still bad input: ingest dead-letters the replayed copy again, which is then discarded.
    discard = _until_page_has(browser, f"{base}/operations", "button[aria-label^='Discard dead letter']")
    assert "ingest" in _main_text(browser) and raw not in browser.page_source  # reasons, not raw input
    label = discard[0].get_attribute("aria-label")
    _navigates(browser, discard[0].click)
    assert "Dead letter discarded" in _main_text(browser)
    browser.get(f"{base}/operations")
    assert not browser.find_elements(By.CSS_SELECTOR, f"button[aria-label='{label}']")
    assert f"CASE-{random_id}" not in browser.page_source and raw not in browser.page_source
    _accessible(browser, "operations-with-data")

    browser.get(f"{base}/audit")
    text = _main_text(browser)
    for action in (
        "create partner",
        "revoke partner",
        "create council system",
        "set council system categories and rate",
        "withdraw a subject",
        "add platform",
        "switch platform",
        "create organisation",
        "replay dead letter",
        "discard dead letter",
        "edit platform",
        "pause opportunity",
    ):
        assert f"{name} {action}" in text, action
