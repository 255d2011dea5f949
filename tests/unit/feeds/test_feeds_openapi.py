"""The feeds' OpenAPI documents the media types its routes really send (Atom, RSS, JSON Feed, GeoJSON,
CAP, Server-Sent Events) and the statuses beyond the common ones (304, 410, 429, 301): a fuzzing
finding of issue 11, where every one of these routes was documented as JSON."""

from __future__ import annotations

import re

import pytest
from sse_starlette import EventSourceResponse

from services.docs import openapi
from services.feeds.cap import CAP_XML
from services.feeds.formats import ATOM
from services.feeds.maps import GEOJSON
from services.feeds.views import FORMATS


@pytest.fixture(scope="module")
def paths() -> dict:
    return openapi("feeds")["paths"]


def _bare(media_type: str) -> str:
    return media_type.split(";")[0].strip()


def _content(paths: dict, path: str, status: str = "200") -> set[str]:
    return set(paths[path]["get"]["responses"][status].get("content", {}))


FEEDS = ["/streets/{street_id}.{fmt}", "/wards/{ward_code}.{fmt}", "/s/{token}.{fmt}"]
EVENTS = ["/streets/{street_id}/events", "/wards/{ward_code}/events", "/s/{token}/events"]
MAPS = [
    "/map/streets.geojson",
    "/map/areas.geojson",
    "/map/needs.geojson",
    "/streets/{street_id}/map.geojson",
    "/wards/{ward_code}/map.geojson",
    "/s/{token}/map.geojson",
]
PRIVATE = ["/s/{token}", "/s/{token}.{fmt}", "/s/{token}/events", "/s/{token}/map.geojson"]
PAGES = ["/", "/streets", "/streets/{street_id}", "/wards/{ward_code}", "/s/{token}"]


@pytest.mark.parametrize("path", FEEDS)
def test_a_feed_documents_every_format_it_sends_and_not_json(paths, path):
    fmt = next(p for p in paths[path]["get"]["parameters"] if p["name"] == "fmt")
    sent = {_bare(FORMATS[f][0]) for f in fmt["schema"]["enum"]}
    assert sent == {"application/atom+xml", "application/rss+xml", "application/feed+json"}
    assert _content(paths, path) == sent
    assert "304" in paths[path]["get"]["responses"]


@pytest.mark.parametrize("path", EVENTS)
def test_live_updates_document_an_event_stream_and_the_connection_caps(paths, path):
    async def nothing():
        yield ""

    sent = EventSourceResponse(nothing()).headers["content-type"]  # what events_response answers with
    assert _content(paths, path) == {_bare(sent)} == {"text/event-stream"}
    assert {"429", "503"} <= set(paths[path]["get"]["responses"])


@pytest.mark.parametrize("path", MAPS)
def test_maps_document_geojson(paths, path):
    assert _content(paths, path) == {GEOJSON}
    assert "304" in paths[path]["get"]["responses"]


def test_cap_documents_its_atom_index_and_cap_messages(paths):
    assert _content(paths, "/cap/alerts.xml") == {_bare(ATOM)}
    assert _content(paths, "/cap/{identifier}.xml") == {_bare(CAP_XML)} == {"application/cap+xml"}
    for path in ("/cap/alerts.xml", "/cap/{identifier}.xml"):
        assert "304" in paths[path]["get"]["responses"]


@pytest.mark.parametrize("path", PRIVATE)
def test_an_ended_subscription_is_documented(paths, path):
    assert "410" in paths[path]["get"]["responses"]


@pytest.mark.parametrize("path", PAGES)
def test_pages_with_validators_document_not_modified(paths, path):
    assert "304" in paths[path]["get"]["responses"]


def test_the_short_link_documents_its_redirect_only(paths):
    responses = paths["/n/{code}"]["get"]["responses"]
    assert "301" in responses and "200" not in responses


def test_no_feeds_route_documents_json_it_does_not_send(paths):
    # Only the /v1 API answers JSON; every other route sends one of the types above, HTML or problems.
    for path, item in paths.items():
        for op in item.values():
            for status, response in op["responses"].items():
                if "application/json" in response.get("content", {}):
                    assert path.startswith("/v1/"), (path, status)


@pytest.mark.parametrize(
    ("path", "name", "value"),
    [
        ("/streets/{street_id}", "street_id", "s-000826463b9f"),
        ("/wards/{ward_code}", "ward_code", "E05013652"),
        ("/s/{token}", "token", "Aq3_-x" * 3 + "abcd"),
    ],
)
def test_a_page_id_is_documented_without_a_dot(paths, path, name, value):
    # `/streets/a.b` is street a's feed in format b (a 422 for an unknown format), never street a.b's page.
    param = next(p for p in paths[path]["get"]["parameters"] if p["name"] == name)
    assert re.fullmatch(param["schema"]["pattern"], value)
    assert not re.fullmatch(param["schema"]["pattern"], value[:4] + "." + value[4:])
