"""Partner formats: GeoJSON lon/lat order and properties, RFC 4180 CSV, cursors, URL guard."""

from __future__ import annotations

import csv
import datetime as dt
import io

import pytest
from shapely.geometry import LineString

from services.partners.cursor import decode_cursor, encode_cursor
from services.partners.geometry import AreaGeometry
from services.partners.payloads import webhook_body
from services.partners.render import (
    HISTORY_FIELDS,
    NEED_FIELDS,
    feature,
    feature_collection,
    history_item,
    history_row,
    need_row,
    to_csv,
)
from services.partners.urls import UnsafeUrl, check_webhook_url
from shared.contracts import StreetNeedChanged
from shared.gazetteer.model import Gazetteer, Street

NEED = StreetNeedChanged(
    area_id="way/1",
    area_kind="street",
    area_name='Agar Grove, "north", end',
    ward_code="E05013660",
    street_ids=("way/1", "way/2"),
    category="fly_tipping",
    sensitivity="place",
    count=4,
    trend="up",
    since=dt.date(2026, 11, 1),
    period="live",
    published_at=dt.datetime(2026, 11, 22, 10, 5, tzinfo=dt.UTC),
    version=3,
).model_dump(mode="json")


def _gazetteer() -> Gazetteer:
    # London is west of Greenwich: longitude about -0.13, latitude about 51.54.
    return Gazetteer(
        streets={
            "way/1": Street(
                "way/1", "Agar Grove", "agar grove", LineString([(-0.1301, 51.5412), (-0.1288, 51.542)]), ()
            ),
            "way/2": Street(
                "way/2", "Agar Place", "agar place", LineString([(-0.1288, 51.542), (-0.127, 51.543)]), ()
            ),
        }
    )


def test_geojson_geometry_is_longitude_then_latitude() -> None:
    geometry = AreaGeometry(_gazetteer()).geojson("way/1", "street", ("way/1",))
    assert geometry == {"type": "LineString", "coordinates": [[-0.1301, 51.5412], [-0.1288, 51.542]]}
    lon, lat = geometry["coordinates"][0]
    assert -180 <= lon <= 180 and 51 < lat < 52 and lon < 0


def test_a_unit_is_the_union_of_its_streets_and_has_a_bbox() -> None:
    areas = AreaGeometry(_gazetteer())
    assert areas.geojson("unit-9", "unit", ("way/1", "way/2"))["type"] in ("LineString", "MultiLineString")
    assert areas.bbox("unit-9", "unit", ("way/1", "way/2")) == (-0.1301, 51.5412, -0.127, 51.543)


def test_unknown_areas_have_null_geometry() -> None:
    assert AreaGeometry().geojson("way/1", "street", ("way/1",)) is None
    assert AreaGeometry(_gazetteer()).bbox("way/404", "street", ("way/404",)) is None


def test_features_carry_the_contract_fields_as_properties() -> None:
    f = feature(NEED, {"type": "Point", "coordinates": [-0.13, 51.54]})
    assert f["type"] == "Feature" and f["id"] == "way/1:fly_tipping"
    assert list(f["properties"]) == list(StreetNeedChanged.model_fields)
    assert f["properties"]["count"] == 4
    fc = feature_collection([f], None)
    assert fc["type"] == "FeatureCollection" and fc["features"] == [f]


def test_csv_has_a_header_crlf_and_quotes_per_rfc_4180() -> None:
    text = to_csv(NEED_FIELDS, [need_row(NEED)])
    assert text.startswith(",".join(NEED_FIELDS) + "\r\n") and text.endswith("\r\n")
    assert '"Agar Grove, ""north"", end"' in text
    [row] = list(csv.DictReader(io.StringIO(text)))
    assert row["street_ids"] == "way/1 way/2" and row["band"] == "" and row["count"] == "4"


def test_history_rows_cover_changes_and_removals() -> None:
    changed_at = dt.datetime(2026, 11, 22, 10, 5, tzinfo=dt.UTC)
    base = {
        "key": "way/1:fly_tipping",
        "area_id": "way/1",
        "category": "fly_tipping",
        "version": 3,
        "changed_at": changed_at,
    }
    items = [
        history_item({**base, "id": 1, "change": "changed", "payload": NEED}),
        history_item({**base, "id": 2, "change": "removed", "payload": None}),
    ]
    rows = list(csv.DictReader(io.StringIO(to_csv(HISTORY_FIELDS, map(history_row, items)))))
    assert [(r["history_id"], r["change"], r["area_id"], r["count"]) for r in rows] == [
        ("1", "changed", "way/1", "4"),
        ("2", "removed", "way/1", ""),
    ]


def test_webhook_bodies_name_the_change() -> None:
    changed_at = dt.datetime(2026, 11, 22, 10, 5, tzinfo=dt.UTC)
    assert webhook_body({"change": "changed", "changed_at": changed_at, "payload": NEED}).startswith(
        '{"type":"street_need.changed","timestamp":"2026-11-22T10:05:00+00:00","data":{'
    )
    removed = webhook_body(
        {
            "change": "removed",
            "changed_at": changed_at,
            "key": "way/1:litter",
            "area_id": "way/1",
            "category": "litter",
            "version": 2,
        }
    )
    assert '"type":"street_need.removed"' in removed and '"version":2' in removed


def test_cursors_round_trip_and_reject_garbage() -> None:
    assert decode_cursor(encode_cursor("way/1:litter")) == "way/1:litter"
    assert decode_cursor(encode_cursor(42)) == 42
    with pytest.raises(ValueError):
        decode_cursor("%%%")


@pytest.mark.parametrize(
    "url",
    [
        "file:///etc/passwd",
        "ftp://example.org/x",
        "gopher://x",
        "http://user:pw@127.0.0.1/",
        "http:///nohost",
    ],
)
def test_only_http_urls_without_credentials_are_accepted(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_webhook_url(url, allow_loopback=True, require_https=False)


@pytest.mark.parametrize(
    "url",
    [
        "http://127.0.0.1:8080/hook",
        "http://[::1]/hook",
        "http://10.0.0.5/",
        "http://169.254.169.254/latest/meta-data",
        "http://192.168.1.1/",
    ],
)
def test_loopback_private_and_link_local_targets_need_the_dev_setting(url: str) -> None:
    with pytest.raises(UnsafeUrl):
        check_webhook_url(url, allow_loopback=False, require_https=False)
    assert check_webhook_url(url, allow_loopback=True, require_https=False) == url


def test_https_can_be_required() -> None:
    with pytest.raises(UnsafeUrl):
        check_webhook_url("http://127.0.0.1/", allow_loopback=True, require_https=True)
    assert check_webhook_url("https://127.0.0.1/", allow_loopback=True, require_https=True)
