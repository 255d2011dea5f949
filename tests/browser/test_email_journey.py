"""E-mail alerts in a real headless Chromium: street page → e-mail form → confirmation mail read
from the Maildir (through the local web mailbox) → confirm → a new place prompt → the instant mail
arrives once → unsubscribe in one click. Feeds, notifier, SMTP sink and mailbox all real."""

from __future__ import annotations

import uuid
from pathlib import Path
from typing import Any, Self

import pytest
from selenium.webdriver.common.by import By
from selenium.webdriver.support import expected_conditions as EC

from services.notifier.sink import MailSink, free_port, messages
from tests.browser.conftest import BackgroundSite, axe_violations, describe_violations, place_prompt
from tests.browser.pages import clicked, until, wait

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]


class AlertsSite(BackgroundSite):
    """Feeds, notifier and the web mailbox served from one background loop, with the SMTP sink."""

    def __init__(self, stack: dict[str, str], template: str, maildir: Path) -> None:
        super().__init__(stack, template)
        self.maildir = maildir
        self.smtp_port = free_port()
        self.feeds = self.notifier = self.mailbox = ""
        self._sink = MailSink(maildir, self.smtp_port)

    def start(self) -> Self:
        self._sink.start()
        return super().start()

    async def _serve(self) -> None:
        from contextlib import AsyncExitStack

        from services.feeds.main import create_app as feeds_app
        from services.feeds.settings import FeedsSettings
        from services.notifier.main import create_app as notifier_app
        from services.notifier.settings import NotifierSettings
        from services.notifier.sink import mailbox_app
        from shared.db import create_database, drop_database
        from tests.support import loopback_socket, serve

        url = await create_database(self.stack["database"], prefix="t_email", template=self.template)
        (feeds_sock, self.feeds), (notifier_sock, self.notifier) = loopback_socket(), loopback_socket()
        mailbox_sock, self.mailbox = loopback_socket()
        tag = uuid.uuid4().hex[:8]
        common = {"database_url": url, "kafka_bootstrap_servers": self.stack["kafka"], "_env_file": None}
        feeds = FeedsSettings(
            **common, base_url=self.feeds, notifier_url=self.notifier, group_id=f"feeds-{tag}"
        )
        notifier = NotifierSettings(
            **common,
            base_url=self.notifier,
            feeds_url=self.feeds,
            group_id=f"notifier-{tag}",
            link_secret=uuid.uuid4().hex * 2,
            smtp_port=self.smtp_port,
            sender_idle_s=0.1,
        )
        try:
            async with AsyncExitStack() as stack:
                await stack.enter_async_context(serve(feeds_app(feeds), feeds_sock))
                await stack.enter_async_context(serve(notifier_app(notifier), notifier_sock))
                await stack.enter_async_context(serve(mailbox_app(self.maildir), mailbox_sock))
                await self._serve_until_stopped()
        finally:
            await drop_database(self.stack["database"], url)

    def stop(self) -> None:
        super().stop()
        self._sink.stop()

    def mails_to(self, address: str) -> list[tuple[str, Any]]:
        return [(k, m) for k, m in messages(self.maildir) if m["To"] == address]


@pytest.fixture
def alerts_site(stack, gazetteer_template, tmp_path):
    site = AlertsSite(stack, gazetteer_template, tmp_path / "mail").start()
    try:
        yield site
    finally:
        site.stop()


def _no_serious_violations(browser) -> None:
    found = axe_violations(browser)
    assert not found, describe_violations(found)


def test_email_alert_journey(browser, alerts_site, camden_gazetteer, random_id):
    street = camden_gazetteer.streets[sorted(camden_gazetteer.streets)[21]]
    address = f"neighbour-{random_id}@example.org"

    browser.get(f"{alerts_site.feeds}/streets/{street.id}")
    browser.find_element(By.ID, "alert-email").send_keys(address)
    clicked(browser, browser.find_element(By.ID, "alert-submit"))
    wait(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Check your inbox"))
    _no_serious_violations(browser)

    key, confirmation = until(lambda: alerts_site.mails_to(address), "the confirmation mail")[0]
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert confirmation.get_body(("plain",)) and confirmation.get_body(("html",))
    browser.get(f"{alerts_site.mailbox}/m/{key}.html")  # the HTML part, as a mail client shows it
    clicked(browser, browser.find_element(By.LINK_TEXT, "Confirm my alerts"))
    clicked(browser, wait(browser, EC.element_to_be_clickable((By.ID, "confirm"))))
    wait(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "Your alerts are on"))
    _no_serious_violations(browser)
    confirm_url = f"{alerts_site.mailbox}/m/{key}.html"
    browser.get(confirm_url)
    clicked(browser, browser.find_element(By.LINK_TEXT, "Confirm my alerts"))
    wait(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "already been used"))

    prompt = place_prompt(street, random_id)
    marker = place_prompt(
        street, random_id, category="graffiti", title=f"Graffiti on {street.name} ({random_id})"
    )
    alerts_site.publish(prompt)
    until(lambda: [m for _, m in alerts_site.mails_to(address) if prompt.title in m["Subject"]], "the alert")
    alerts_site.publish(marker)
    until(
        lambda: [m for _, m in alerts_site.mails_to(address) if marker.title in m["Subject"]], "the 2nd alert"
    )
    alerts = [(k, m) for k, m in alerts_site.mails_to(address) if prompt.title in m["Subject"]]
    assert len(alerts) == 1, "the new prompt is mailed exactly once"

    alert_key, _ = alerts[0]
    browser.get(f"{alerts_site.mailbox}/m/{alert_key}.html")
    clicked(browser, browser.find_element(By.LINK_TEXT, "Unsubscribe"))
    clicked(browser, wait(browser, EC.element_to_be_clickable((By.ID, "unsubscribe"))))
    wait(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "You are unsubscribed"))
    browser.get(f"{alerts_site.mailbox}/m/{alert_key}.html")
    clicked(browser, browser.find_element(By.LINK_TEXT, "Manage your alerts"))
    wait(browser, EC.text_to_be_present_in_element((By.TAG_NAME, "h1"), "These alerts have ended"))

    # The page that gives a private feed link offers e-mail alerts for the same street too.
    browser.get(f"{alerts_site.feeds}/streets/{street.id}")
    clicked(
        browser, browser.find_element(By.XPATH, "//button[contains(., 'Get a private feed link for this')]")
    )
    wait(browser, EC.presence_of_element_located((By.CSS_SELECTOR, ".secret a")))
    form = browser.find_element(By.CSS_SELECTOR, "form.email-alerts")
    assert form.get_attribute("action") == f"{alerts_site.notifier}/subscribe"
    assert form.find_element(By.CSS_SELECTOR, "input[name=street_id]").get_attribute("value") == street.id
