"""The feeds service's "find your place" surface over HTTP, on the real broker and database: search by
postcode or name, the map's GeoJSON, HEAD on pages, gzip, offline /docs, share metadata, notices for
streets and wards, and plain-language errors for the "near me" form."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import httpx
import pytest

from services.feeds.main import create_app
from services.feeds.settings import FeedsSettings
from shared.db import create_database, drop_database
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,*/*;q=0.8"


@pytest.fixture(scope="module")
async def client(stack, gazetteer_template) -> AsyncIterator[httpx.AsyncClient]:
    url = await create_database(stack["database"], prefix="t_place", template=gazetteer_template)
    sock, base = loopback_socket()
    settings = FeedsSettings(
        database_url=url,
        kafka_bootstrap_servers=stack["kafka"],
        base_url=base,
        group_id=f"feeds-place-{uuid.uuid4().hex[:8]}",
        notice_contact="Call 020 0000 0000",
        _env_file=None,
    )
    try:
        async with serve(create_app(settings), sock), httpx.AsyncClient(base_url=base, timeout=30) as c:
            yield c
    finally:
        await drop_database(stack["database"], url)


async def test_postcode_search_lists_or_opens_its_streets(client, camden_gazetteer):
    one = next(c for c, ids in sorted(camden_gazetteer.postcodes.items()) if len(ids) == 1)
    r = await client.get("/streets", params={"q": one.replace(" ", "").lower()})
    assert r.status_code == 303
    assert r.headers["location"].endswith(f"/streets/{camden_gazetteer.postcodes[one][0]}")
    many = next(c for c, ids in sorted(camden_gazetteer.postcodes.items()) if len(ids) > 1)
    r = await client.get("/streets", params={"q": many})
    assert r.status_code == 200 and f"Streets in {many}" in r.text
    for sid in camden_gazetteer.postcodes[many]:
        assert f"/streets/{sid}" in r.text
    r = await client.get("/streets", params={"q": many[:-2]})
    assert "Choose your postcode" in r.text and f"q={many.replace(' ', '%20')}" in r.text
    r = await client.get("/streets", params={"q": "ZZ9 9ZZ"})
    assert "We couldn't find ZZ9 9ZZ in Camden" in r.text
    r = await client.get("/streets", params={"q": "camdn rd"})
    assert r.text.index("Camden Road, ") < r.text.index("Camden Street, ")


async def test_map_geojson_is_cached_and_gzipped(client, camden_gazetteer):
    r = await client.get("/map/streets.geojson", headers={"Accept-Encoding": "gzip"})
    assert r.status_code == 200 and r.headers["content-type"] == "application/geo+json"
    assert r.headers["content-encoding"] == "gzip" and "max-age=86400" in r.headers["cache-control"]
    assert len(r.json()["features"]) == len(camden_gazetteer.streets)
    again = await client.get("/map/streets.geojson", headers={"If-None-Match": r.headers["etag"]})
    assert again.status_code == 304
    areas = (await client.get("/map/areas.geojson")).json()
    assert {f["properties"]["kind"] for f in areas["features"]} == {"ward", "boundary"}
    assert (await client.get("/map/needs.geojson")).json()["type"] == "FeatureCollection"
    street = camden_gazetteer.postcodes["NW1 9LN"][0]
    focus = (await client.get(f"/streets/{street}/map.geojson")).json()["features"]
    assert [f["properties"]["id"] for f in focus if f["properties"]["role"] == "focus"] == [street]
    ward = camden_gazetteer.streets[street].ward_code
    focus = (await client.get(f"/wards/{ward}/map.geojson")).json()["features"]
    assert focus[0]["properties"]["role"] == "focus" and focus[0]["geometry"]["type"].endswith("Polygon")
    missing = await client.get("/streets/nope/map.geojson", headers={"Accept": BROWSER})
    assert missing.status_code == 404 and missing.headers["content-type"] == "application/problem+json"


async def test_head_on_pages_and_gzip_of_large_answers(client, camden_gazetteer):
    street = camden_gazetteer.postcodes["NW1 9LN"][0]
    for path in ("/", f"/streets/{street}", f"/streets/{street}/notice", "/docs", "/cap/alerts.xml"):
        head = await client.head(path)
        get = await client.get(path)
        assert head.status_code == get.status_code == 200, path
        assert head.content == b"" and head.headers["content-type"] == get.headers["content-type"], path
    raw = await client.get("/", headers={"Accept-Encoding": "gzip"})
    assert raw.headers["content-encoding"] == "gzip"
    small = await client.get("/healthz", headers={"Accept-Encoding": "gzip"})
    assert "content-encoding" not in small.headers  # below the minimum size


async def test_docs_work_offline(client):
    page = await client.get("/docs")
    assert page.status_code == 200
    assert "/docs/assets/swagger-ui-bundle.js" in page.text and "cdn" not in page.text.lower()
    for asset in ("swagger-ui-bundle.js", "swagger-ui.css"):
        assert (await client.get(f"/docs/assets/{asset}")).status_code == 200


async def test_share_metadata_and_links_on_public_pages_only(client, camden_gazetteer):
    street_id = camden_gazetteer.postcodes["NW1 9LN"][0]
    street = camden_gazetteer.streets[street_id]
    page = (await client.get(f"/streets/{street_id}")).text
    assert f'<meta property="og:title" content="{street.name}">' in page
    assert f'<meta property="og:url" content="{client.base_url}/streets/{street_id}">' in page
    assert '<meta name="twitter:card" content="summary">' in page
    assert "https://wa.me/?text=" in page and "mailto:?subject=" in page
    ward_page = (await client.get(f"/wards/{street.ward_code}")).text
    assert 'property="og:title"' in ward_page and f"/wards/{street.ward_code}/notice" in ward_page


async def test_street_and_ward_notices_have_a_qr_code_short_link_and_contact(client, camden_gazetteer):
    street_id = camden_gazetteer.postcodes["NW1 9LN"][0]
    ward = camden_gazetteer.streets[street_id].ward_code
    for path, target in (
        (f"/streets/{street_id}", f"/streets/{street_id}"),
        (f"/wards/{ward}", f"/wards/{ward}"),
    ):
        notice = (await client.get(f"{path}/notice")).text
        assert "<svg" in notice and "QR code for" in notice and "Call 020 0000 0000" in notice
        short = notice.split('class="url">', 1)[1].split("<", 1)[0]
        hop = await client.get(f"/n/{short.rsplit('/', 1)[1]}")
        assert hop.status_code == 301 and hop.headers["location"].endswith(target)


@pytest.mark.parametrize(
    "form, message",
    [
        ({"kind": "area", "lat": "", "lon": "", "radius_m": "300"}, "Choose a point first"),
        (
            {"kind": "area", "lat": "51.54", "lon": "-0.14", "radius_m": "5000"},
            "Choose a distance between 50 and 2,000 metres",
        ),
        (
            {"kind": "area", "lat": "51.54", "lon": "-0.14", "radius_m": "10"},
            "Choose a distance between 50 and 2,000 metres",
        ),
        (
            {"kind": "area", "lat": "51.4545", "lon": "-0.0983", "radius_m": "300"},
            "That point is outside Camden",
        ),
    ],
)
async def test_near_me_form_errors_are_plain_words(client, form, message):
    r = await client.post("/subscriptions", data=form, headers={"Accept": BROWSER})
    assert r.status_code == 422 and message in r.text
    assert "radius_m" not in r.text.split("<main", 1)[1]  # no field names on the page


async def test_near_me_follows_whole_streets_around_the_point(client, camden_gazetteer):
    street = camden_gazetteer.streets[camden_gazetteer.postcodes["NW1 9LN"][0]]
    point = street.geometry.interpolate(0.5, normalized=True)
    r = await client.post(
        "/subscriptions",
        data={"kind": "area", "lat": f"{point.y:.5f}", "lon": f"{point.x:.5f}", "radius_m": "200"},
        headers={"Accept": BROWSER},
    )
    assert r.status_code == 201 and "Streets within 200 m of a point" in r.text


async def test_a_deployment_may_name_a_tile_server(stack, gazetteer_template):
    url = await create_database(stack["database"], prefix="t_tiles", template=gazetteer_template)
    sock, base = loopback_socket()
    settings = FeedsSettings(
        database_url=url,
        kafka_bootstrap_servers=stack["kafka"],
        base_url=base,
        group_id=f"feeds-tiles-{uuid.uuid4().hex[:8]}",
        map_tile_url="https://tiles.example.org/{z}/{x}/{y}.png",
        map_tile_attribution="© Example tiles",
        _env_file=None,
    )
    try:
        async with serve(create_app(settings), sock), httpx.AsyncClient(base_url=base) as c:
            layers = (await c.get("/map/needs.geojson")).json()
            assert layers["basemap"] == {
                "tiles": "https://tiles.example.org/{z}/{x}/{y}.png",
                "attribution": "© Example tiles",
            }
    finally:
        await drop_database(stack["database"], url)


async def test_without_a_tile_server_the_map_is_ours_alone(client):
    assert "basemap" not in (await client.get("/map/needs.geojson")).json()


async def test_the_api_finds_places_as_the_search_box_does(client, camden_gazetteer):
    found = (await client.get("/v1/places", params={"q": "nw19ln"})).json()
    assert found["kind"] == "postcode" and found["postcode"] == "NW1 9LN"
    assert [s["id"] for s in found["streets"]] == list(camden_gazetteer.postcodes["NW1 9LN"])
    partial = (await client.get("/v1/places", params={"q": "NW1 9"})).json()
    assert partial["kind"] == "postcodes" and "NW1 9LN" in partial["postcodes"]
    named = (await client.get("/v1/places", params={"q": "camden sq"})).json()
    assert named["kind"] == "streets" and named["streets"][0]["label"].startswith("Camden Square, off ")
    assert (await client.get("/v1/places", params={"q": "ZZ9 9ZZ"})).json()["kind"] == "unknown_postcode"


def _far_from_streets(gazetteer, metres: float) -> tuple[float, float]:
    """A point inside the council with no street within `metres` (a park, a railway yard)."""
    import numpy as np
    import shapely

    xmin, ymin, xmax, ymax = gazetteer.boundary.bounds
    lons, lats = np.meshgrid(np.linspace(xmin, xmax, 80), np.linspace(ymin, ymax, 80))
    lons, lats = lons.ravel(), lats.ravel()
    inside = gazetteer.contains_many(lons, lats)
    x, y = gazetteer.projector.xy(lons[inside], lats[inside])
    lines = gazetteer.projector.to_metric(np.asarray([s.geometry for s in gazetteer.streets.values()]))
    tree = shapely.STRtree(lines)
    points = shapely.points(x, y)
    _, far = tree.query_nearest(points, return_distance=True, all_matches=False)
    best = int(np.argmax(far))
    assert far[best] > metres, "no point in the council is that far from a street"
    return float(lats[inside][best]), float(lons[inside][best])


async def test_nothing_near_a_point_is_said_plainly(client, camden_gazetteer):
    lat, lon = _far_from_streets(camden_gazetteer, 60)
    r = await client.post(
        "/subscriptions",
        data={"kind": "area", "lat": f"{lat:.5f}", "lon": f"{lon:.5f}", "radius_m": "50"},
        headers={"Accept": BROWSER},
    )
    assert r.status_code == 422 and "find a street that close to the point" in r.text
