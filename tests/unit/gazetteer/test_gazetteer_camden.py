"""The real Camden extract: streets, addresses, wards, search."""

import re

from shared.gazetteer.camden import build_camden

from .conftest import by_name


def test_about_1500_distinct_street_names(camden):
    names = {s.norm_name for s in camden.streets.values()}
    assert 1400 <= len(names) <= 1600
    assert len(camden.streets) >= len(names)


def test_streets_have_stable_ids_and_osm_segments(camden):
    for s in camden.streets.values():
        assert re.fullmatch(r"s-[0-9a-f]{12}", s.id)
        assert s.segment_ids and all(re.fullmatch(r"way/\d+", w) for w in s.segment_ids)
    segments = [w for s in camden.streets.values() for w in s.segment_ids]
    assert len(segments) == len(set(segments))


def test_agar_grove_is_one_street_with_a_ward_and_lsoa(camden):
    [agar] = by_name(camden, "Agar Grove")
    assert agar.ward_name == "Camden Square" and agar.ward_code.startswith("E05")
    assert agar.lsoa_code.startswith("E01")
    assert len(agar.segment_ids) > 1  # several OSM ways merged into one street


def test_every_street_has_a_ward(camden):
    # Camden's extract lies inside the borough; simplified ward shapes are covered by the
    # nearest-ward rule.
    assert all(s.ward_code for s in camden.streets.values())
    assert len(camden.wards) == 20


def test_addresses_are_counted(camden, camden_build):
    report = camden_build[1]
    assert report.addresses["read"] > 12_000
    assert camden.address_count == report.addresses["counted"] > 11_000
    assert report.addresses["unmatched"] < 100
    assert sum(s.address_count > 0 for s in camden.streets.values()) > 500


def test_reimport_gives_identical_ids_and_units(camden):
    again, _ = build_camden()
    assert list(again.streets) == list(camden.streets)
    assert [u.id for u in again.units] == [u.id for u in camden.units]
    assert [s.address_count for s in again.streets.values()] == [
        s.address_count for s in camden.streets.values()
    ]


def test_search_by_prefix_is_tolerant(camden):
    assert "Agar Grove" in [s.name for s in camden.search("agar")]
    assert [s.name for s in camden.search("AGAR GR.")] == ["Agar Grove"]
    assert "King's Cross Road" in [s.name for s in camden.search("kings cross rd")]
    assert "St Pancras Way" in [s.name for s in camden.search("saint pancras")]
    assert camden.search("") == [] and camden.search("zzzz") == []
    assert len(camden.search("a", limit=3)) == 3


def test_match_address_finds_the_street_named_in_an_address(camden):
    [agar] = by_name(camden, "Agar Grove")
    assert camden.match_address("Flat 2, 35 Agar Grove, London NW1 9UG") is agar
    assert camden.match_address("1 Nowhere Lane, Atlantis") is None


def test_contains_uses_the_borough_boundary(camden):
    [agar] = by_name(camden, "Agar Grove")
    point = agar.geometry.interpolate(0.5, normalized=True)
    assert camden.contains(point.x, point.y)
    assert not camden.contains(-0.1276, 51.5072)  # Charing Cross, Westminster
    assert not camden.contains(2.35, 48.85)
