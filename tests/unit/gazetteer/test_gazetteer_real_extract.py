"""A real OSM extract nobody tuned for: Kirchberg an der Iller, Germany, with no boundary files."""

import pytest

from shared.gazetteer import TooFarFromStreet

from .conftest import by_name


def test_imports_without_boundary_files(kirchberg, kirchberg_build):
    report = kirchberg_build[1]
    assert sorted(s.name for s in kirchberg.streets.values()) == [
        "Goethestraße",
        "Haydnstraße",
        "Richard-Wagner-Straße",
    ]
    # Two named ways were clipped to a single node at the extract's edge.
    assert report.skipped["skipped_degenerate_ways"] == 2
    assert all(s.ward_code is None and s.lsoa_code is None for s in kirchberg.streets.values())
    assert kirchberg.wards == [] and kirchberg.boundary is None
    assert kirchberg.projector.crs == "EPSG:32632"  # UTM 32N, chosen from the data


def test_every_address_is_counted(kirchberg, kirchberg_build):
    assert kirchberg_build[1].addresses["read"] == 17
    assert kirchberg.address_count == 17
    [haydn] = by_name(kirchberg, "Haydnstraße")
    assert haydn.address_count >= 6  # its six tagged buildings


def test_snapping(kirchberg):
    [goethe] = by_name(kirchberg, "Goethestraße")
    point = goethe.geometry.interpolate(0.5, normalized=True)
    assert kirchberg.snapper.snap_one(point.x, point.y)[0] == goethe.id
    with pytest.raises(TooFarFromStreet):
        kirchberg.snapper.snap_one(point.x, point.y + 0.01)  # ~1.1 km north


def test_contains_uses_the_streets_hull(kirchberg):
    [goethe] = by_name(kirchberg, "Goethestraße")
    point = goethe.geometry.interpolate(0.5, normalized=True)
    assert kirchberg.contains(point.x, point.y)
    assert kirchberg.contains(point.x, point.y + 0.0015)  # ~170 m: inside the 200 m margin
    assert not kirchberg.contains(point.x, point.y + 0.01)


def test_units(kirchberg):
    place = kirchberg.units_for(8)
    assert place and all(u.publishable and u.address_count >= 8 for u in place)
    assert sorted(s for u in place for s in u.street_ids) == sorted(kirchberg.streets)
    [person] = kirchberg.units_for(40)  # 17 addresses in all: one unit, held back
    assert not person.publishable and not person.is_ward
    assert sorted(person.street_ids) == sorted(kirchberg.streets)


def test_search(kirchberg):
    assert [s.name for s in kirchberg.search("goethestr")] == ["Goethestraße"]
    assert [s.name for s in kirchberg.search("wagner")] == ["Richard-Wagner-Straße"]
