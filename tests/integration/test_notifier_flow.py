"""The notifier on real Kafka and PostgreSQL with the real SMTP sink: sign up, confirm once, one mail
per new prompt revision, one-click unsubscribe, plain-language pages for bad input, digests on a
controllable clock, bounces."""

from __future__ import annotations

import asyncio
import datetime as dt
import re
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.notifier.main import create_app
from services.notifier.settings import NotifierSettings
from services.notifier.sink import MailSink, free_port, messages
from shared.contracts import PROMPTS, PromptPublished
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(180)]

HTML = {"Accept": "text/html"}


class Clock:
    def __init__(self) -> None:
        self.now = dt.datetime.now(dt.UTC)

    def __call__(self) -> dt.datetime:
        return self.now


async def _eventually(check, what: str, attempts: int = 600):
    for _ in range(attempts):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _prompt(street_id: str, random_id: str, n: int, revision: int = 1, category: str = "fly_tipping"):
    return PromptPublished(
        prompt_id=f"street:{street_id}:{category}:{random_id}-{n}",
        revision=revision,
        area_id=street_id,
        area_kind="street",
        area_name="Test street",
        street_ids=(street_id,),
        category=category,
        sensitivity="place",
        title=f"Prompt {random_id}-{n} r{revision}",
        body="Bags dumped by the bins.",
        published_at=dt.datetime.now(dt.UTC),
    )


@pytest.fixture
async def notifier(stack, fresh_database_url, camden_gazetteer, random_id, tmp_path):
    maildir = tmp_path / "mail"
    smtp_port = free_port()
    sock, base = loopback_socket()
    clock = Clock()
    settings = NotifierSettings(
        database_url=fresh_database_url,
        kafka_bootstrap_servers=stack["kafka"],
        link_secret="l" * 40,
        webhook_token="w" * 40,
        base_url=base,
        group_id=f"notifier-{random_id}",
        smtp_port=smtp_port,
        sender_idle_s=0.1,
        digest_check_s=3600,
    )
    with MailSink(maildir, smtp_port):
        async with serve(create_app(settings, gazetteer=camden_gazetteer, clock=clock), sock):
            async with httpx.AsyncClient(base_url=base, headers=HTML, timeout=30) as client:
                yield client, settings, maildir, clock


@pytest.fixture
async def producer(stack):
    p = AIOKafkaProducer(bootstrap_servers=stack["kafka"], acks="all")
    await p.start()
    yield p
    await p.stop()


async def _publish(producer, event: PromptPublished) -> None:
    await producer.send_and_wait(PROMPTS.name, event.model_dump_json().encode(), key=event.prompt_id.encode())


def _mails_to(maildir: Path, address: str):
    return [m for _, m in messages(maildir) if m["To"] == address]


def _link(msg, path: str) -> str:
    text = msg.get_body(("plain",)).get_content()
    return re.search(rf"(http://\S+/{path}/\S+)", text).group(1)


def _street(camden_gazetteer, n: int = 0) -> str:
    return sorted(camden_gazetteer.streets)[n]


async def _sign_up(client, street_id: str, email: str, **extra) -> httpx.Response:
    return await client.post(
        "/subscribe", data={"email": email, "kind": "street", "street_id": street_id, **extra}
    )


async def test_sign_up_confirm_once_one_mail_per_change_then_one_click_unsubscribe(
    notifier, producer, camden_gazetteer, random_id
):
    client, settings, maildir, _ = notifier
    street = _street(camden_gazetteer, 3)
    email = f"resident-{random_id}@example.org"
    response = await _sign_up(client, street, email.upper().replace("EXAMPLE", "Example"))
    assert response.status_code == 200 and "Check your inbox" in response.text

    confirmation = (await _eventually(lambda: _mails_to(maildir, email), "the confirmation mail"))[0]
    assert confirmation["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    assert (
        "<mailto:" in confirmation["List-Unsubscribe"] and "/unsubscribe/" in confirmation["List-Unsubscribe"]
    )
    assert confirmation.get_body(("plain",)) is not None and confirmation.get_body(("html",)) is not None
    confirm_url = _link(confirmation, "confirm")

    page = await client.get(confirm_url)
    assert page.status_code == 200 and "Yes, start my alerts" in page.text
    done = await client.post(confirm_url)
    assert done.status_code == 200 and "Your alerts are on" in done.text
    again = await client.post(confirm_url)
    assert again.status_code == 410 and "already been used" in again.text
    assert (await client.get(confirm_url)).status_code == 410

    first = _prompt(street, random_id, 1)
    await _publish(producer, first)
    await _publish(producer, first)  # the same revision again (a redelivery or a republish): no new mail
    await _publish(producer, _prompt(_street(camden_gazetteer, 400), random_id, 2))  # a street not followed
    await _publish(producer, _prompt(street, random_id, 1, revision=2))  # a new revision: a mail
    marker = _prompt(street, random_id, 3)
    await _publish(producer, marker)

    def subjects():
        return [m["Subject"] for m in _mails_to(maildir, email)]

    await _eventually(lambda: any(marker.title in s for s in subjects()), "the marker prompt's mail")
    assert sum(first.title in s for s in subjects()) == 1
    assert sum(f"Prompt {random_id}-1 r2" in s for s in subjects()) == 1
    assert not any(f"{random_id}-2 " in s for s in subjects())
    alert = next(m for m in _mails_to(maildir, email) if first.title in m["Subject"])
    assert alert["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    ids = [m["Message-ID"] for m in _mails_to(maildir, email)]
    assert len(ids) == len(set(ids))

    # RFC 8058: the mail client POSTs to the List-Unsubscribe URL; one request ends the alerts.
    one_click = re.search(r"<(http[^>]+)>", alert["List-Unsubscribe"]).group(1)
    bye = await client.post(one_click, content=b"List-Unsubscribe=One-Click")
    assert bye.status_code == 200 and "unsubscribed" in bye.text
    manage = await client.get(_link(alert, "manage"))
    assert manage.status_code == 410 and "ended" in manage.text
    conn = await asyncpg.connect(settings.database_dsn())
    try:
        assert await conn.fetchval("SELECT count(*) FROM notifier.subscriptions") == 0
    finally:
        await conn.close()
