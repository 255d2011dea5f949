"""Postcodes from OSM address tags, forgiving street search, and GeoJSON for the map."""

from __future__ import annotations

import json
import random

import pytest

from shared.gazetteer import build_gazetteer
from shared.gazetteer.geojson import dumps, streets_collection, wards_collection
from shared.gazetteer.osm import normalise_postcode
from shared.gazetteer.search import StreetFinder


@pytest.mark.parametrize(
    "raw, printed",
    [
        ("NW1 9LN", "NW1 9LN"),
        ("nw19ln", "NW1 9LN"),
        ("  wc1h  0ab ", "WC1H 0AB"),
        ("EC1M 3HA", "EC1M 3HA"),
        ("N1C 4UR", "N1C 4UR"),
        ("NW1", None),
        ("Camden Road", None),
        ("12345", None),
    ],
)
def test_normalise_postcode(raw, printed):
    assert normalise_postcode(raw) == printed


def _extract(tmp_path, points):
    streets = [
        {"id": "way/1", "name": "Alpha Road", "line": [(-0.1500, 51.5400), (-0.1480, 51.5400)]},
        {"id": "way/2", "name": "Beta Street", "line": [(-0.1500, 51.5410), (-0.1480, 51.5410)]},
    ]
    features = [
        {
            "type": "Feature",
            "properties": {"id": s["id"], "name": s["name"]},
            "geometry": {"type": "LineString", "coordinates": s["line"]},
        }
        for s in streets
    ]
    features += [
        {"type": "Feature", "properties": props, "geometry": {"type": "Point", "coordinates": xy}}
        for xy, props in points
    ]
    path = tmp_path / "extract.geojson"
    path.write_text(json.dumps({"type": "FeatureCollection", "features": features}))
    return path


def test_postcodes_map_to_the_streets_their_addresses_are_on(tmp_path):
    near_alpha, near_beta = (-0.1490, 51.54003), (-0.1490, 51.54097)
    path = _extract(
        tmp_path,
        [
            (near_alpha, {"addr:housenumber": "1", "addr:street": "Alpha Road", "addr:postcode": "ab1 2cd"}),
            (near_alpha, {"addr:housenumber": "3", "addr:street": "Alpha Rd", "addr:postcode": "AB1 2CD"}),
            # Tagged with a street name but no house number (a shop, a block): still counts.
            (near_beta, {"addr:street": "Beta Street", "addr:postcode": "AB1 2CD"}),
            # No addr:street: the nearest street.
            (near_beta, {"addr:housenumber": "2", "addr:postcode": "AB1 2CE"}),
            (near_beta, {"addr:housenumber": "4", "addr:postcode": "not a postcode"}),
            ((-0.2, 51.6), {"addr:postcode": "ZZ1 1ZZ"}),  # far from any street
        ],
    )
    gazetteer, report = build_gazetteer(path)
    by_name = {s.name: s.id for s in gazetteer.streets.values()}
    # Most addresses first: two on Alpha Road, one on Beta Street.
    assert gazetteer.postcodes == {
        "AB1 2CD": (by_name["Alpha Road"], by_name["Beta Street"]),
        "AB1 2CE": (by_name["Beta Street"],),
    }
    assert report.postcodes["read"] == 5 and report.postcodes["unmatched"] == 1
    assert report.postcodes["postcodes"] == 2 and report.postcodes["pairs"] == 3
    assert report.skipped["skipped_bad_postcodes"] == 1
    assert report.as_counts()["postcodes"] == report.postcodes


def test_camden_postcodes_are_imported_and_counted(camden_build):
    gazetteer, report = camden_build
    assert report.postcodes["postcodes"] == len(gazetteer.postcodes) > 1000
    assert report.postcodes["pairs"] >= report.postcodes["postcodes"]
    assert all(normalise_postcode(code) == code for code in gazetteer.postcodes)
    assert all(i in gazetteer.streets for ids in gazetteer.postcodes.values() for i in ids)
    assert "Camden Road" in [gazetteer.streets[i].name for i in gazetteer.postcodes["NW1 9LN"]]
    # Tagged only on a multipolygon relation in the extract (a block of flats): found through its area.
    assert "WC1B 3DG" in gazetteer.postcodes


@pytest.fixture(scope="module")
def finder(camden_gazetteer) -> StreetFinder:
    return StreetFinder(camden_gazetteer)


@pytest.mark.parametrize(
    "typed, street",
    [
        ("camdn rd", "Camden Road"),
        ("Camden Road", "Camden Road"),
        ("kentish twn rd", "Kentish Town Road"),
        ("kings x rd", "King's Cross Road"),
        ("englands lane", "England's Lane"),
        ("fitzjohns av", "Fitzjohn's Avenue"),
        ("the agar grove", "Agar Grove"),
        ("AGAR GR.", "Agar Grove"),
        ("belsize pk", "Belsize Park"),
        ("haverstock hil", "Haverstock Hill"),
        ("tottenham ct rd", "Tottenham Court Road"),
        ("grays inn rd", "Gray's Inn Road"),
        ("gt russell st", "Great Russell Street"),
        ("queens cres", "Queen's Crescent"),
        ("prince of wales rd", "Prince of Wales Road"),
        ("malden rd", "Malden Road"),
    ],
)
def test_forgiving_street_search_puts_the_right_street_first(finder, typed, street):
    found = finder.find(typed)
    assert found.kind == "streets"
    assert found.streets[0].name == street


def test_search_finds_nothing_for_nonsense_and_empty_input(finder):
    assert finder.find("qqqqqqqq").kind == "nothing"
    assert finder.find("   ").kind == "nothing"
    assert finder.streets("") == []


def test_full_partial_and_unknown_postcodes(finder, camden_gazetteer):
    found = finder.find("nw1 9ln")
    assert found.kind == "postcode" and found.postcode == "NW1 9LN"
    assert [s.id for s in found.streets] == list(camden_gazetteer.postcodes["NW1 9LN"])
    for partial in ("NW1 9", "nw19", "NW1 9L"):
        found = finder.find(partial)
        assert found.kind == "postcodes", partial
        assert found.postcodes and all(p.startswith(partial.upper()[:3]) for p in found.postcodes)
        assert "NW1 9LN" in finder.postcodes_starting(partial, limit=1000)
    assert finder.find("ZZ9 9ZZ").kind == "unknown_postcode"


def test_same_named_streets_are_told_apart_by_a_nearby_street_and_ward(finder, camden_gazetteer):
    squares = [s for s in camden_gazetteer.streets.values() if s.name == "Camden Square"]
    assert len(squares) == 2
    labels = {finder.label(s) for s in squares}
    assert len(labels) == 2, labels
    assert all(label.startswith("Camden Square, off ") for label in labels)
    assert all(label.endswith(f", {squares[0].ward_name}") for label in labels)
    unique = camden_gazetteer.streets[camden_gazetteer.postcodes["NW1 9LN"][0]]
    assert finder.label(unique) == f"{unique.name}, {unique.ward_name}"


def test_geojson_of_streets_and_wards_is_small_and_complete(camden_gazetteer):
    streets = streets_collection(camden_gazetteer)
    assert len(streets["features"]) == len(camden_gazetteer.streets)
    first = streets["features"][0]
    assert set(first["properties"]) == {"id", "name", "ward"}
    coords = json.dumps(first["geometry"]["coordinates"])
    assert all(len(n.split(".")[1]) <= 5 for n in coords.replace("[", "").replace("]", "").split(", "))
    assert len(dumps(streets)) < 1_000_000
    areas = wards_collection(camden_gazetteer)
    kinds = [f["properties"]["kind"] for f in areas["features"]]
    assert kinds.count("ward") == len(camden_gazetteer.wards) and kinds.count("boundary") == 1


def _misspell(name: str, rng: random.Random) -> str:
    """One slip as residents make them: a letter dropped, swapped or wrong, or words run together."""
    text, i = name.lower(), rng.randrange(1, max(2, len(name) - 2))
    slip = rng.choice(("drop", "swap", "wrong", "join"))
    if slip == "drop":
        return text[:i] + text[i + 1 :]
    if slip == "swap":
        return text[:i] + text[i + 1] + text[i] + text[i + 2 :]
    if slip == "wrong":
        return text[:i] + rng.choice("abcdefghijklmnopqrstuvwxyz") + text[i + 1 :]
    return text.replace(" ", "", 1)


def test_one_slip_in_a_street_name_still_finds_it_first(finder, camden_gazetteer):
    rng = random.Random(7)
    names = sorted({s.name for s in camden_gazetteer.streets.values() if s.address_count})
    sample = rng.sample(names, 300)
    misses = [
        (typed, name)
        for name in sample
        if (typed := _misspell(name, rng)) and [s.name for s in finder.streets(typed, 1)] != [name]
    ]
    assert len(misses) <= 0.03 * len(sample), misses


@pytest.mark.parametrize(
    "typed, street",
    [
        ("12 Camden Road, London NW1 9LN", "Camden Road"),
        ("12 Camden Road", "Camden Road"),
        ("Flat 3, 12a Agar Grove", "Agar Grove"),
        ("12-14 kentish twn rd, london", "Kentish Town Road"),
        ("Camden Road London", "Camden Road"),
        ("camden road, london nw1", "Camden Road"),
        ("12 Camden Road, London ZZ9 9ZZ", "Camden Road"),  # an unknown postcode in an address
    ],
)
def test_a_whole_typed_address_finds_its_street(finder, typed, street):
    assert finder.find(typed).streets[0].name == street
