"""Open311 GeoReport v2 form parsing (with FixMyStreet's quirks), date windows and XML rendering."""

from __future__ import annotations

import datetime as dt
from urllib.parse import parse_qsl

import pytest
from lxml import etree

from services.ingest.open311 import (
    NOT_PINPOINTED,
    Open311Error,
    date_range,
    errors_body,
    parse_form,
    place_services,
    render,
    service_definition,
    service_view,
)

FMS = (
    "api_key=sn_abc&service_code=fly_tipping&lat=51.5436&long=-0.1290&address_id=%23NOTPINPOINTED%23"
    "&address_string=14+Agar+Grove&email=a%40b.org&deviceid=IPHONE-123&first_name=Ann&last_name=Lee"
    "&phone=0207&account_id=77&description=Mattress+dumped&media_url=http%3A%2F%2Fx%2Fy.jpg"
    "&attribute%5Buprn%5D=5023741&attribute%5Bkinds%5D%5B%5D=mattress&attribute%5Bkinds%5D%5B%5D=sofa"
    "&jurisdiction_id=camden"
)


def test_fixmystreet_form():
    form = parse_form(parse_qsl(FMS))
    assert (form.api_key, form.service_code, form.jurisdiction_id) == ("sn_abc", "fly_tipping", "camden")
    assert (form.lat, form.long) == (51.5436, -0.129)
    assert form.address_id is None and not form.pinpointed  # #NOTPINPOINTED# is no address
    assert form.attributes == {"uprn": "5023741", "kinds": ["mattress", "sofa"]}
    dumped = repr(form)
    for personal in ("a@b.org", "IPHONE-123", "Ann", "Lee", "0207", "Mattress dumped", "y.jpg"):
        assert personal not in dumped


def test_pinpointed_address_id_and_missing_fields():
    form = parse_form([("service_code", "graffiti"), ("address_id", "UPRN-1")])
    assert form.pinpointed and form.address_id == "UPRN-1" and form.lat is None and form.api_key is None
    assert NOT_PINPOINTED == "#NOTPINPOINTED#"


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        ([("lat", "51.5")], "lat and long must be sent together"),
        ([("lat", "north"), ("long", "1")], "lat must be a number"),
        ([("lat", "nan"), ("long", "1")], "finite"),
        ([("lat", "95"), ("long", "1")], "WGS84"),
        ([("description", "x" * 4001)], "longer than 4000"),
    ],
)
def test_form_errors(pairs, message):
    with pytest.raises(Open311Error, match=message) as err:
        parse_form(pairs)
    assert err.value.status == 400


def test_date_window():
    now = dt.datetime(2026, 5, 1, tzinfo=dt.UTC)
    assert date_range(None, None, now) == (now - dt.timedelta(days=90), now)
    assert date_range("2026-01-01T00:00:00Z", None, now)[1] == dt.datetime(2026, 4, 1, tzinfo=dt.UTC)
    with pytest.raises(Open311Error, match="90 days"):
        date_range("2026-01-01T00:00:00Z", "2026-04-02T00:00:00+00:00", now)
    with pytest.raises(Open311Error, match="timezone"):
        date_range("2026-01-01T00:00:00", None, now)


def test_services_are_place_categories_only_and_render_as_xml():
    services = [service_view(c) for c in place_services()]
    codes = {s["service_code"] for s in services}
    assert "fly_tipping" in codes and "isolation" not in codes and "overcrowding" not in codes
    xml, media = render("xml", "services", "service", services)
    assert media.startswith("application/xml")
    root = etree.fromstring(xml)
    assert root.tag == "services" and root.find("service/type").text == "realtime"
    assert root.find("service/metadata").text == "true"
    definition = etree.fromstring(
        render("xml", "service_definition", "", service_definition(place_services()[0]))[0]
    )
    assert definition.find("attributes/attribute/code").text == "uprn"
    assert definition.find("attributes/attribute/required").text == "false"


def test_error_format():
    assert errors_body(404, "service_code x was not found") == [
        {"code": 404, "description": "service_code x was not found"}
    ]
    root = etree.fromstring(render("xml", "errors", "error", errors_body(400, "bad"))[0])
    assert root.tag == "errors" and root.find("error/code").text == "400"
    assert root.find("error/description").text == "bad"
