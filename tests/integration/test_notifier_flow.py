"""The notifier on real Kafka and PostgreSQL with the real SMTP sink: sign up, confirm once, one mail
per new prompt revision, one-click unsubscribe, plain-language pages for bad input, digests on a
controllable clock, bounces."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.notifier import repository as notifier_repo
from services.notifier.alerts import parse_signup, sign_up
from services.notifier.digests import build_due_digests
from services.notifier.main import create_app
from services.notifier.settings import NotifierSettings
from services.notifier.sink import MailSink, free_port, messages
from services.notifier.web import refusal_status
from shared.contracts import PROMPTS, PromptPublished
from shared.dead_letters import read_dead_letters
from shared.gazetteer.selection import Areas
from shared.refusals import Refusal
from tests.support import loopback_socket, serve, street_prompt

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
    return street_prompt(
        street_id,
        f"street:{street_id}:{category}:{random_id}-{n}",
        f"Prompt {random_id}-{n} r{revision}",
        revision=revision,
        category=category,
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
        signup_burst=5,
        signups_per_address_per_day=5,
    )
    with MailSink(maildir, smtp_port) as sink:
        async with serve(create_app(settings, gazetteer=camden_gazetteer, clock=clock), sock):
            async with httpx.AsyncClient(base_url=base, headers=HTML, timeout=30) as client:
                yield client, settings, maildir, clock, sink


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
    client, settings, maildir, _, _ = notifier
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
    (raw,) = [p.read_bytes() for p in (maildir / "new").iterdir()]
    assert b"\nList-Unsubscribe: <http://" in raw, "the URIs arrive as plain text, not encoded-words"
    confirm_url = _link(confirmation, "confirm")
    early = await client.get(_link(confirmation, "manage"))
    assert early.status_code == 409 and "not confirmed yet" in early.text

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

    # Records of one prompt stay in order (same key, same partition): once revision 2 is mailed, the
    # repeated revision 1 has been consumed too. Other prompts may land on other partitions. Mails
    # leave through several concurrent senders, so they need not arrive in the order they were
    # queued: count them once nothing queued is left unsent.
    await _eventually(lambda: any(marker.title in s for s in subjects()), "the marker prompt's mail")
    await _eventually(lambda: any(f"Prompt {random_id}-1 r2" in s for s in subjects()), "revision 2's mail")
    await _eventually(lambda: _drained(settings), "every queued mail to be sent")
    assert sum(first.title in s for s in subjects()) == 1
    assert sum(f"Prompt {random_id}-1 r2" in s for s in subjects()) == 1
    other = _prompt(_street(camden_gazetteer, 400), random_id, 2).prompt_id
    consumed = "SELECT count(*) FROM notifier.changes WHERE prompt_id = $1"
    await _eventually(lambda: _count(settings, consumed, other), "the other street's prompt to be consumed")
    assert await _count(settings, "SELECT count(*) FROM notifier.outbox WHERE prompt_id = $1", other) == 0
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


async def _drained(settings) -> bool:
    """Nothing in the notifier's outbox is waiting to be sent."""
    unsent = "SELECT count(*) FROM notifier.outbox WHERE sent_at IS NULL AND failed_at IS NULL"
    return await _count(settings, unsent) == 0


async def _count(settings, sql: str, *args) -> int:
    conn = await asyncpg.connect(settings.database_dsn())
    try:
        return await conn.fetchval(sql, *args)
    finally:
        await conn.close()


async def _subscribed(client, maildir, street: str, email: str, **extra) -> None:
    assert (await _sign_up(client, street, email, **extra)).status_code == 200
    mail = (await _eventually(lambda: _mails_to(maildir, email), "the confirmation mail"))[0]
    assert (await client.post(_link(mail, "confirm"))).status_code == 200


async def test_concurrent_sign_ups_for_one_address_never_pass_the_daily_cap(
    notifier, fresh_database_url, camden_gazetteer, random_id
):
    """Sign-ups for one address take turns: eight at once, with a cap of five a day, store five."""
    settings = notifier[1]
    email = f"many-{random_id}@example.org"
    areas = Areas(camden_gazetteer)
    form = {"email": email, "kind": "street", "street_id": _street(camden_gazetteer, 9)}
    request = parse_signup(areas, settings, form, [])
    pool = await asyncpg.create_pool(fresh_database_url, min_size=8, max_size=8)
    try:
        now = dt.datetime.now(dt.UTC)
        results = await asyncio.gather(
            *(sign_up(pool, settings, request, now) for _ in range(8)), return_exceptions=True
        )
        stored = await pool.fetchval("SELECT count(*) FROM notifier.subscriptions WHERE email = $1", email)
    finally:
        await pool.close()
    refused = [r for r in results if isinstance(r, Refusal)]
    assert stored == settings.signups_per_address_per_day == 5
    assert len(refused) == 3 and {refusal_status(r) for r in refused} == {429}
    assert [r for r in results if r is not None and not isinstance(r, Refusal)] == []


async def test_bad_input_gets_plain_language_pages_and_nothing_half_done(
    notifier, camden_gazetteer, random_id
):
    client, settings, maildir, clock, sink = notifier
    street = _street(camden_gazetteer, 5)
    rows = "SELECT count(*) FROM notifier.subscriptions"

    bad = await _sign_up(client, street, "not-an-address")
    assert bad.status_code == 422 and "does not look like an e-mail address" in bad.text
    nowhere = await _sign_up(client, "no-such-street", f"a-{random_id}@example.org")
    assert nowhere.status_code == 422 and "could not find that place" in nowhere.text
    often = await _sign_up(client, street, f"a-{random_id}@example.org", frequency="hourly")
    assert often.status_code == 422 and "instant, daily or weekly" in often.text
    assert await _count(settings, rows) == 0

    unknown = await client.get("/confirm/not-a-token")
    assert unknown.status_code == 404 and "do not recognise this link" in unknown.text
    assert (await client.get("/manage/abc.def")).status_code == 404
    assert (await client.post("/unsubscribe/abc.def")).status_code == 404

    # The mail server is down: the sign-up is refused and nothing is stored.
    sink.stop()
    down = await _sign_up(client, street, f"b-{random_id}@example.org")
    assert down.status_code == 503 and "Nothing was saved" in down.text
    assert await _count(settings, rows) == 0
    sink.__init__(maildir, settings.smtp_port)
    sink.start()

    # A link used after it expired: a plain page, and the unconfirmed address is deleted.
    email = f"late-{random_id}@example.org"
    assert (await _sign_up(client, street, email)).status_code == 200
    mail = (await _eventually(lambda: _mails_to(maildir, email), "the confirmation mail"))[0]
    assert await _count(settings, rows) == 1
    clock.now += dt.timedelta(hours=settings.confirm_hours, seconds=1)
    late = await client.post(_link(mail, "confirm"))
    assert late.status_code == 410 and "expired" in late.text
    assert await _count(settings, rows) == 0


async def test_digests_are_built_on_schedule_and_never_twice(notifier, producer, camden_gazetteer, random_id):
    client, settings, maildir, clock, _ = notifier
    street = _street(camden_gazetteer, 7)
    email = f"daily-{random_id}@example.org"
    clock.now = dt.datetime(2026, 11, 26, 10, 0, tzinfo=dt.UTC)
    await _subscribed(client, maildir, street, email, frequency="daily")
    event = _prompt(street, random_id, 1)
    await _publish(producer, event)
    changes = "SELECT count(*) FROM notifier.changes WHERE prompt_id = $1"
    await _eventually(lambda: _count(settings, changes, event.prompt_id), "the change to be consumed")
    assert len(_mails_to(maildir, email)) == 1, "a daily subscriber gets no instant mail"

    pool = await asyncpg.create_pool(settings.database_dsn(), min_size=1, max_size=2)
    try:
        before = await build_due_digests(pool, settings, dt.datetime(2026, 11, 27, 6, 59, tzinfo=dt.UTC))
        assert before["daily:2026-11-26"] == 0, "the period with the change has not ended yet"
        due = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
        assert (await build_due_digests(pool, settings, due))["daily:2026-11-27"] == 1
        assert (await build_due_digests(pool, settings, due + dt.timedelta(hours=5)))["daily:2026-11-27"] == 0
    finally:
        await pool.close()

    def digests():
        return [m for m in _mails_to(maildir, email) if "digest" in m["Subject"]]

    digest = (await _eventually(digests, "the digest mail"))[0]
    assert event.title in digest.get_body(("plain",)).get_content()
    assert digest["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    sent = "SELECT count(*) FROM notifier.outbox WHERE kind = 'digest' AND sent_at IS NOT NULL"
    await _eventually(lambda: _count(settings, sent), "the digest to be marked sent")
    assert len(digests()) == 1


async def test_bounce_webhook_suppresses_the_address(notifier, camden_gazetteer, random_id):
    client, settings, maildir, _, _ = notifier
    street = _street(camden_gazetteer, 9)
    email = f"bounce-{random_id}@example.org"
    await _subscribed(client, maildir, street, email)
    payload = {"events": [{"type": "complaint", "email": email.upper()}]}

    refused = await client.post("/v1/bounces", json=payload, headers={"Accept": "application/json"})
    assert refused.status_code == 401 and refused.headers["content-type"] == "application/problem+json"
    token = settings.webhook_token.get_secret_value()
    done = await client.post("/v1/bounces", json=payload, headers={"Authorization": f"Bearer {token}"})
    assert done.status_code == 200 and done.json() == {"suppressed": 1, "alerts_deleted": 1}
    assert await _count(settings, "SELECT count(*) FROM notifier.subscriptions WHERE email = $1", email) == 0

    again = await _sign_up(client, street, email)
    assert again.status_code == 409 and "cannot send mail to that address" in again.text

    conn = await asyncpg.connect(settings.database_dsn())
    try:
        counts = await notifier_repo.stats(conn)  # what `streetneeds notifier stats` prints
    finally:
        await conn.close()
    assert counts["suppressed addresses"] == 1 and "alerts active instant" not in counts
    assert not [v for v in map(str, counts.values()) if "@" in v]


async def test_malformed_prompt_is_dead_lettered_and_consumption_carries_on(
    notifier, producer, camden_gazetteer, random_id
):
    client, settings, maildir, _, _ = notifier
    street = _street(camden_gazetteer, 13)
    email = f"dl-{random_id}@example.org"
    await _subscribed(client, maildir, street, email)
    key = f"street:{street}:bad:{random_id}".encode()
    await producer.send_and_wait(PROMPTS.name, b'{"event_type": "prompt_published", "revision": 0}', key=key)
    after = _prompt(street, random_id, 1)
    await _publish(producer, after)
    await _eventually(
        lambda: [m for m in _mails_to(maildir, email) if after.title in m["Subject"]], "the alert"
    )

    async def letter():
        async for found in read_dead_letters(settings, service="notifier"):
            if found.key_b64 and base64.b64decode(found.key_b64) == key:
                return found
        return None

    found = await _eventually(letter, "the dead letter")
    assert found.source_topic == PROMPTS.name and found.reason.startswith("value is not a valid")


async def test_sign_up_with_categories_then_manage_frequency_and_categories(
    notifier, producer, camden_gazetteer, random_id
):
    client, settings, maildir, _, _ = notifier
    street = _street(camden_gazetteer, 15)
    form = await client.get("/subscribe", params={"kind": "street", "street_id": street})
    assert form.status_code == 200 and 'value="graffiti"' in form.text and 'value="isolation"' in form.text
    email = f"choosy-{random_id}@example.org"
    await _subscribed(client, maildir, street, email, categories="graffiti", frequency="instant")

    # A prompt of another category is not mailed; one of the chosen category is.
    await _publish(producer, _prompt(street, random_id, 1, category="litter"))
    wanted = _prompt(street, random_id, 2, category="graffiti")
    await _publish(producer, wanted)
    await _eventually(
        lambda: [m for m in _mails_to(maildir, email) if wanted.title in m["Subject"]], "the alert"
    )
    litter = _prompt(street, random_id, 1, category="litter").prompt_id
    consumed = "SELECT count(*) FROM notifier.changes WHERE prompt_id = $1"
    await _eventually(lambda: _count(settings, consumed, litter), "the litter prompt to be consumed")
    assert await _count(settings, "SELECT count(*) FROM notifier.outbox WHERE prompt_id = $1", litter) == 0

    alert = next(m for m in _mails_to(maildir, email) if wanted.title in m["Subject"])
    manage_url = _link(alert, "manage")
    page = await client.get(manage_url)
    assert page.status_code == 200 and 'value="graffiti" checked' in page.text
    saved = await client.post(manage_url, data={"frequency": "weekly", "categories": ["litter", "graffiti"]})
    assert saved.status_code == 200 and "weekly" in saved.text
    row = (
        "SELECT frequency || ':' || array_to_string(categories, ',') FROM notifier.subscriptions"
        " WHERE email = $1"
    )
    assert await _count(settings, row, email) == "weekly:graffiti,litter"
    bad = await client.post(manage_url, data={"frequency": "hourly"})
    assert bad.status_code == 422 and "instant, daily or weekly" in bad.text


async def test_sign_ups_are_rate_limited_per_client_and_per_address(notifier, camden_gazetteer, random_id):
    client, settings, maildir, clock, _ = notifier
    street = _street(camden_gazetteer, 17)
    email = f"busy-{random_id}@example.org"
    statuses = [(await _sign_up(client, street, email)).status_code for _ in range(settings.signup_burst + 1)]
    assert statuses == [200] * settings.signup_burst + [429]
    assert len(_mails_to(maildir, email)) == settings.signup_burst

    # From another client, the address itself has had its day's confirmation mails.
    request = parse_signup(Areas(camden_gazetteer), settings, {"email": email, "street_id": street}, [])
    pool = await asyncpg.create_pool(settings.database_dsn(), min_size=1, max_size=1)
    try:
        with pytest.raises(Refusal) as refused:
            await sign_up(pool, settings, request, clock())
    finally:
        await pool.close()
    assert refusal_status(refused.value) == 429 and "this address" in refused.value.title
    assert len(_mails_to(maildir, email)) == settings.signup_burst
