"""Notifier parts without a broker or database: record parsing, the sign-up rate limit, the mail sink."""

from __future__ import annotations

import datetime as dt
import smtplib
from email.message import EmailMessage

import pytest
from fastapi.testclient import TestClient

from services.notifier.sink import MailSink, free_port, mailbox_app, messages
from shared.contracts import PROMPTS, ContractError, PromptPublished, PromptRetired, Tombstone
from shared.ratelimit import TokenBucket


def _published() -> PromptPublished:
    return PromptPublished(
        prompt_id="street:s-1:litter",
        revision=2,
        area_id="s-1",
        area_kind="street",
        area_name="A street",
        street_ids=("s-1",),
        category="litter",
        sensitivity="place",
        title="Litter",
        body="By the bus stop.",
        published_at=dt.datetime(2026, 11, 26, tzinfo=dt.UTC),
    )


def test_records_parse_to_events_tombstones_or_errors():
    event = _published()
    assert PROMPTS.decode(event.prompt_id.encode(), event.model_dump_json().encode()) == event
    retired = PromptRetired(
        prompt_id=event.prompt_id, area_id="s-1", category="litter", retired_at=event.published_at
    )
    assert isinstance(PROMPTS.decode(None, retired.model_dump_json().encode()), PromptRetired)
    assert PROMPTS.decode(b"street:s-1:litter", None) == Tombstone("street:s-1:litter")
    with pytest.raises(ContractError, match="names nothing"):
        PROMPTS.decode(None, None)
    with pytest.raises(ContractError, match="does not match"):
        PROMPTS.decode(b"another", event.model_dump_json().encode())
    with pytest.raises(ContractError):
        PROMPTS.decode(None, b'{"event_type": "prompt_published"}')


def test_rate_limiter_allows_a_burst_then_refills():
    now = [0.0]
    limiter = TokenBucket(rate_per_minute=2, burst=3, clock=lambda: now[0])
    assert [limiter.allow("1.2.3.4")[0] for _ in range(4)] == [True, True, True, False]
    assert limiter.allow("5.6.7.8")[0], "another client has its own bucket"
    now[0] += 30  # one token per 30 s
    assert limiter.allow("1.2.3.4")[0] and not limiter.allow("1.2.3.4")[0]


def test_sink_files_mail_in_a_maildir_and_the_mailbox_shows_it(tmp_path):
    maildir = tmp_path / "mail"
    maildir.mkdir()  # an existing, empty folder (as .local/mail may be)
    port = free_port()
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = "a@x.localhost", "b@x.localhost", "Hello <there>"
    msg.set_content("Open http://127.0.0.1:8005/confirm/abc to confirm.")
    msg.add_alternative('<p><a href="http://127.0.0.1:8005/confirm/abc">Confirm</a></p>', subtype="html")
    with MailSink(maildir, port), smtplib.SMTP("127.0.0.1", port) as smtp:
        smtp.send_message(msg)
    ((key, stored),) = messages(maildir)
    assert stored["Subject"] == "Hello <there>"

    client = TestClient(mailbox_app(maildir))
    index = client.get("/")
    assert f'href="/m/{key}"' in index.text and "Hello &lt;there&gt;" in index.text
    page = client.get(f"/m/{key}")
    assert '<a href="http://127.0.0.1:8005/confirm/abc">' in page.text
    assert client.get(f"/m/{key}.html").text.startswith("<p><a href=")
    assert "Subject: Hello <there>" in client.get(f"/m/{key}.eml").text
    assert client.get("/m/nope").status_code == 404
