"""CAP 1.2 alerts validated against the official OASIS schema (tests/data/feeds/CAP-v1.2.xsd)."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
import xmlschema
from lxml import etree

from services.feeds.cap import CAP_NS, alert_xml, area_polygons, cancel_message, cap_time, next_message
from services.feeds.repository import CapMessage

XSD = xmlschema.XMLSchema(Path(__file__).resolve().parents[2] / "data/feeds/CAP-v1.2.xsd")
C = f"{{{CAP_NS}}}"
SENDER = "streetneeds@example.org"


def _render(message, gazetteer):
    return alert_xml(
        message,
        sender=SENDER,
        sender_name="streetneeds",
        base_url="https://f.example.org",
        polygons=area_polygons(gazetteer, message.event.street_ids, 25.0),
    )


def _message(prompt, previous=None, msg=None):
    ident, msg_type, refs = msg or next_message(prompt, previous, SENDER)
    return CapMessage(
        ident,
        prompt.prompt_id,
        prompt.revision,
        msg_type,
        prompt.published_at.replace(microsecond=0),
        refs,
        prompt,
    )


def test_alert_is_valid_cap_1_2_with_explicit_offset(prompt, gazetteer):
    xml = _render(_message(prompt), gazetteer)
    XSD.validate(xml)
    root = etree.fromstring(xml)
    assert root.tag == f"{C}alert"
    assert root.findtext(f"{C}sent") == "2026-05-02T14:37:21+00:00"
    assert root.findtext(f"{C}status") == "Actual"
    assert root.findtext(f"{C}msgType") == "Alert"
    assert root.findtext(f"{C}scope") == "Public"
    info = root.find(f"{C}info")
    assert info.findtext(f"{C}category") == "Env"
    assert (info.findtext(f"{C}urgency"), info.findtext(f"{C}severity"), info.findtext(f"{C}certainty")) == (
        "Future",
        "Minor",
        "Observed",
    )
    assert info.findtext(f"{C}expires").endswith("+00:00")
    assert "Saturday paint-out" in info.findtext(f"{C}instruction")
    identifier = root.findtext(f"{C}identifier")
    assert not any(c in identifier for c in " ,<&")


def test_polygon_is_a_closed_ring_of_lat_lon_pairs_around_the_street(prompt, gazetteer):
    (polygon,) = area_polygons(gazetteer, prompt.street_ids, 25.0)
    pairs = [tuple(map(float, p.split(","))) for p in polygon.split(" ")]
    assert len(pairs) >= 4 and pairs[0] == pairs[-1]
    lats, lons = [p[0] for p in pairs], [p[1] for p in pairs]
    assert all(51.5 < lat < 51.6 for lat in lats) and all(-0.14 < lon < -0.12 for lon in lons)
    # ~25 m around a street running west-east: the ring reaches a little beyond both ends.
    assert min(lons) < -0.1335 and max(lons) > -0.1290


def test_update_and_cancel_reference_the_earlier_message(prompt, gazetteer):
    first = _message(prompt)
    revised = prompt.model_copy(
        update={"revision": 2, "published_at": dt.datetime(2026, 5, 9, 8, tzinfo=dt.UTC)}
    )
    update = _message(revised, previous=first)
    assert update.msg_type == "Update"
    assert update.refs == f"{SENDER},{first.identifier},2026-05-02T14:37:21+00:00"
    XSD.validate(_render(update, gazetteer))

    ident, refs = cancel_message(update, SENDER)
    cancel = CapMessage(
        ident, update.prompt_id, 2, "Cancel", dt.datetime(2026, 5, 10, 7, tzinfo=dt.UTC), refs, revised
    )
    xml = _render(cancel, gazetteer)
    XSD.validate(xml)
    root = etree.fromstring(xml)
    assert root.findtext(f"{C}msgType") == "Cancel"
    assert root.findtext(f"{C}references") == f"{SENDER},{update.identifier},2026-05-09T08:00:00+00:00"
    # After a Cancel, the need coming back is a fresh Alert, not an Update of a cancelled one.
    again = revised.model_copy(update={"published_at": dt.datetime(2026, 6, 1, tzinfo=dt.UTC)})
    assert _message(again, previous=cancel).msg_type == "Alert"


def test_the_schema_rejects_a_trailing_z(prompt, gazetteer):
    xml = _render(_message(prompt), gazetteer).replace(b"2026-05-02T14:37:21+00:00", b"2026-05-02T14:37:21Z")
    assert not XSD.is_valid(xml)
    assert cap_time(dt.datetime(2026, 11, 22, 10, tzinfo=dt.UTC)) == "2026-11-22T10:00:00+00:00"


def test_person_categories_are_never_cap(person_prompt, gazetteer):
    with pytest.raises(ValueError, match="place"):
        _render(_message(person_prompt), gazetteer)


def test_alert_without_known_geometry_is_still_valid(make, gazetteer):
    prompt = make(street_ids=("s-not-in-gazetteer",))
    xml = _render(_message(prompt), gazetteer)
    XSD.validate(xml)
    assert etree.fromstring(xml).find(f"{C}info/{C}area/{C}areaDesc").text == "Agar Grove"
