"""Fuzzing and review findings at ingest's door: odd input gets a clean answer and never reaches a log."""

from __future__ import annotations

import logging
import uuid

import httpx
import pytest
from lxml import etree

from services.ingest.open311 import render, to_xml, xml_safe
from services.ingest.pipeline import out_of_scope
from services.ingest.quiet import QuietErrors
from services.ingest.repository import System

SYSTEM = System(uuid.uuid4(), "s", "camden", frozenset({"graffiti"}), None, None)  # type: ignore[arg-type]


def test_any_category_value_is_out_of_scope_or_not_without_crashing():
    items = [{"category": {}}, {"category": ["fly_tipping"]}, {"category": 3}, {"category": "fly_tipping"}, 7]
    assert out_of_scope(items, SYSTEM) == [(3, "fly_tipping")]


def test_control_characters_never_break_xml():
    for text in ("x\x16", "json\x00", "\x0c", "a\ud800b", "\ufffe"):
        body, _ = render("xml", "errors", "error", [{"code": 404, "description": text}])
        assert etree.fromstring(body).find("error/description").text == xml_safe(text)
    assert xml_safe("tab\tline\nok") == "tab\tline\nok"
    assert etree.fromstring(to_xml("r", "i", {"k": "a\x01b"})).find("k").text == "a\ufffdb"


async def test_unexpected_errors_answer_500_and_log_no_value(caplog):
    secret = "14 Agar Grove, London NW1 9SL"

    async def app(scope, receive, send):
        raise ValueError(f"input_value={secret!r}")

    client = httpx.AsyncClient(transport=httpx.ASGITransport(app=QuietErrors(app)), base_url="http://t")
    with caplog.at_level(logging.DEBUG):
        response = await client.get("/v1/signals")
    assert response.status_code == 500
    assert response.headers["content-type"] == "application/problem+json"
    assert secret not in response.text
    assert caplog.records and all(secret not in r.getMessage() and not r.exc_info for r in caplog.records)
    assert all(secret not in str(r.__dict__) for r in caplog.records)


def test_previous_keys_go_on_the_wire_only_after_a_rotation():
    from services.ingest.pipeline import _wire
    from shared.contracts import SignalAnonymised

    base = {
        "event_id": uuid.uuid4(),
        "category": "isolation",
        "sensitivity": "person",
        "action": "raised",
        "street_id": "way/1",
        "subject_key": "a" * 64,
        "key_version": 1,
        "occurred_at": "2026-11-01T00:00:00Z",
        "council_id": "camden",
        "source": "http",
    }
    plain = _wire(SignalAnonymised(**base))
    assert b"previous_keys" not in plain and SignalAnonymised.model_validate_json(plain).previous_keys == ()
    rotated = _wire(SignalAnonymised(**base | {"key_version": 2, "previous_keys": ("b" * 64,)}))
    assert SignalAnonymised.model_validate_json(rotated).previous_keys == ("b" * 64,)


@pytest.mark.parametrize(
    ("start", "end"),
    [(None, "0001-01-01T00:00:00Z"), ("9999-12-31T00:00:00Z", None), ("0001-01-01T00:00:00+14:00", None)],
)
def test_extreme_open311_dates_are_a_400_not_a_crash(start, end):
    import datetime as dt

    from services.ingest.open311 import Open311Error, date_range

    with pytest.raises(Open311Error) as caught:
        date_range(start, end, dt.datetime.now(dt.UTC))
    assert caught.value.status == 400
