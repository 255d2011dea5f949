"""Notifier logic without a broker or database: tokens, the digest schedule, mails and settings."""

from __future__ import annotations

import datetime as dt
import uuid

import pytest
from pydantic import ValidationError

from services.notifier.mail import confirmation_mail, digest_mail, instant_mail, message_id, wire_bytes
from services.notifier.repository import Subscription
from services.notifier.schedule import latest_period
from services.notifier.settings import NotifierSettings
from services.notifier.tokens import address_hmac, confirm_token, link_token, read_link_token, sha256
from shared.contracts import PromptPublished

SECRET = "s" * 40
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)


def _settings(**overrides) -> NotifierSettings:
    values = {
        "database_url": "postgresql://x/y",
        "kafka_bootstrap_servers": "127.0.0.1:1",
        "link_secret": SECRET,
        "base_url": "https://alerts.example.org",
        **overrides,
    }
    return NotifierSettings(**values)


def _sub(**overrides) -> Subscription:
    values = dict(
        subscription_id=uuid.UUID(int=7),
        email="resident@example.org",
        kind="street",
        label="Camden Road",
        street_ids=["way/1"],
        unit_ids=[],
        ward_codes=[],
        categories=[],
        frequency="instant",
        status="active",
        confirm_expires_at=NOW,
        confirmed_at=NOW,
    )
    return Subscription(**{**values, **overrides})


def _prompt(revision: int = 1) -> PromptPublished:
    return PromptPublished(
        prompt_id="street:way/1:fly_tipping",
        revision=revision,
        area_id="way/1",
        area_kind="street",
        area_name="Camden Road",
        street_ids=("way/1",),
        category="fly_tipping",
        sensitivity="place",
        title="Fly-tipping <reported>",
        body="Dumped bags by the bins & a mattress.",
        published_at=NOW,
    )


def test_confirm_tokens_are_random_and_stored_only_hashed():
    (a, ha), (b, hb) = confirm_token(), confirm_token()
    assert a != b and ha == sha256(a) and hb == sha256(b) and a.encode() not in ha


def test_link_tokens_verify_and_refuse_tampering():
    sid = uuid.uuid4()
    token = link_token(SECRET, sid)
    assert read_link_token(SECRET, token) == sid
    assert read_link_token("t" * 40, token) is None
    assert read_link_token(SECRET, token[:-1] + ("0" if token[-1] != "0" else "1")) is None
    assert read_link_token(SECRET, uuid.uuid4().hex + "." + token.split(".")[1]) is None
    assert read_link_token(SECRET, "garbage") is None


def test_address_hmac_ignores_case_and_depends_on_secret():
    assert address_hmac(SECRET, "A@Example.org") == address_hmac(SECRET, "a@example.org")
    assert address_hmac(SECRET, "a@example.org") != address_hmac("t" * 40, "a@example.org")


@pytest.mark.parametrize(
    ("now", "key", "start", "end"),
    [
        # GMT in winter: 07:00 local = 07:00 UTC.
        (
            "2026-11-26T07:00:00+00:00",
            "daily:2026-11-26",
            "2026-11-25T07:00:00+00:00",
            "2026-11-26T07:00:00+00:00",
        ),
        (
            "2026-11-26T06:59:59+00:00",
            "daily:2026-11-25",
            "2026-11-24T07:00:00+00:00",
            "2026-11-25T07:00:00+00:00",
        ),
        # BST in summer: 07:00 local = 06:00 UTC.
        (
            "2026-07-01T06:30:00+00:00",
            "daily:2026-07-01",
            "2026-06-30T06:00:00+00:00",
            "2026-07-01T06:00:00+00:00",
        ),
        # The clocks went forward on 29 March 2026: that day's period is 23 hours long.
        (
            "2026-03-29T08:00:00+00:00",
            "daily:2026-03-29",
            "2026-03-28T07:00:00+00:00",
            "2026-03-29T06:00:00+00:00",
        ),
    ],
)
def test_daily_period_is_by_london_wall_clock(now, key, start, end):
    p = latest_period(dt.datetime.fromisoformat(now), "daily", hour=7)
    assert (p.key, p.start, p.end) == (key, dt.datetime.fromisoformat(start), dt.datetime.fromisoformat(end))


def test_weekly_period_ends_on_the_chosen_day():
    # Thursday 26 Nov 2026: the latest Monday 07:00 is 23 Nov.
    p = latest_period(NOW, "weekly", hour=7, weekday="mon")
    assert p.key == "weekly:2026-11-23"
    assert p.end == dt.datetime(2026, 11, 23, 7, tzinfo=dt.UTC)
    assert p.end - p.start == dt.timedelta(days=7)
    # On Monday before 07:00, the period is the one that ended the Monday before.
    early = latest_period(dt.datetime(2026, 11, 23, 6, tzinfo=dt.UTC), "weekly", hour=7, weekday="mon")
    assert early.key == "weekly:2026-11-16"
    # The same instant always names the same period: that is what makes "never twice" hold.
    assert latest_period(NOW + dt.timedelta(days=3), "weekly", hour=7, weekday="mon") == p


def _parts(msg):
    return msg.get_body(("plain",)).get_content(), msg.get_body(("html",)).get_content()


def test_every_mail_has_one_click_unsubscribe_text_and_html_and_manage_link():
    s = _settings()
    sub = _sub()
    mails = [
        confirmation_mail(s, _sub(status="pending"), "tok", NOW),
        instant_mail(s, sub, _prompt(), NOW),
        digest_mail(s, sub, "daily:2026-11-26", [_prompt()], NOW),
    ]
    token = link_token(SECRET, sub.subscription_id)
    for msg in mails:
        assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
        https, mailto = (p.strip() for p in msg["List-Unsubscribe"].split(","))
        assert https == f"<https://alerts.example.org/unsubscribe/{token}>"
        assert mailto.startswith("<mailto:unsubscribe@streetneeds.localhost?subject=")
        text, html = _parts(msg)
        for body in (text, html):
            assert f"https://alerts.example.org/manage/{token}" in body
            assert f"https://alerts.example.org/unsubscribe/{token}" in body
        assert msg["To"] == "resident@example.org"
        # On the wire the URIs stay plain text (not RFC 2047 encoded-words), one per line.
        wire = wire_bytes(msg).decode()
        assert f"\r\nList-Unsubscribe: <https://alerts.example.org/unsubscribe/{token}>,\r\n <mailto:" in wire
        assert "\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n" in wire
    assert "https://alerts.example.org/confirm/tok" in _parts(mails[0])[0]


def test_html_part_escapes_prompt_text():
    text, html = _parts(instant_mail(_settings(), _sub(), _prompt(), NOW))
    assert "Fly-tipping &lt;reported&gt;" in html and "bins &amp; a mattress" in html
    assert "Fly-tipping <reported>" in text and "bins & a mattress" in text


def test_message_id_is_deterministic_per_row():
    s, sub = _settings(), _sub()
    assert (
        instant_mail(s, sub, _prompt(), NOW)["Message-ID"]
        == instant_mail(s, sub, _prompt(), NOW)["Message-ID"]
    )
    assert (
        instant_mail(s, sub, _prompt(), NOW)["Message-ID"]
        != instant_mail(s, sub, _prompt(2), NOW)["Message-ID"]
    )
    assert message_id(s, "digest", sub.subscription_id, "daily:x").endswith("@streetneeds.localhost>")


@pytest.mark.parametrize(
    ("overrides", "message"),
    [
        ({"smtp_tls": True, "smtp_starttls": True}, "exclude each other"),
        ({"smtp_host": "smtp.example.org", "smtp_username": "u", "smtp_password": "p"}, "in clear"),
        ({"smtp_username": "u"}, "go together"),
        ({"link_secret": "short"}, "at least 32"),
        ({"base_url": "alerts.example.org"}, "absolute"),
        ({"lease_s": 10, "smtp_timeout_s": 30}, "longer than NOTIFIER_SMTP_TIMEOUT_S"),
    ],
)
def test_settings_refuse_unsafe_or_incoherent_smtp(overrides, message):
    with pytest.raises(ValidationError, match=message):
        _settings(**overrides)


def test_settings_accept_auth_over_starttls_and_local_auth_without_tls():
    _settings(
        smtp_host="smtp.example.org", smtp_port=587, smtp_starttls=True, smtp_username="u", smtp_password="p"
    )
    _settings(smtp_host="localhost", smtp_username="u", smtp_password="p")
