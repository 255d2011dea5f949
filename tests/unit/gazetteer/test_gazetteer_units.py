"""Publication units: synthetic streets for the rules, Camden for the real thing."""

import random
import re

from hypothesis import given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString

from shared.gazetteer import Street, build_units, name_key

DX, DY = 0.001, 0.001  # ~74 m east, ~111 m north at latitude 48


def street(i: int, count: int, ward: str | None = None, row: int = 0, col: int | None = None):
    col = i if col is None else col
    line = LineString([(10 + DX * col, 48 + DY * row), (10 + DX * (col + 1), 48 + DY * row)])
    name = f"Street {i:03d}"
    return Street(
        f"s-{i:03d}", name, name_key(name), line, (f"way/{i}",), count, ward, f"Ward {ward}" if ward else None
    )


def check_partition(streets, units):
    members = [s for u in units for s in u.street_ids]
    assert sorted(members) == sorted(s.id for s in streets)


def test_streets_with_enough_addresses_are_their_own_units():
    streets = [street(0, 50), street(1, 60), street(2, 45)]
    units = build_units(streets, 40)
    assert sorted(u.street_ids for u in units) == [("s-000",), ("s-001",), ("s-002",)]
    assert all(u.publishable and re.fullmatch(r"u40-[0-9a-f]{12}", u.id) for u in units)


def test_small_streets_merge_with_touching_neighbours_into_contiguous_units():
    streets = [street(i, 10) for i in range(10)]
    units = build_units(streets, 40)
    check_partition(streets, units)
    assert all(u.address_count >= 40 for u in units) and len(units) == 2
    for u in units:
        cols = sorted(int(s[2:]) for s in u.street_ids)
        assert cols == list(range(cols[0], cols[-1] + 1))  # adjoining streets only


def test_leftover_merges_into_the_adjacent_unit():
    [unit] = build_units([street(0, 40), street(1, 5)], 40)
    assert unit.street_ids == ("s-000", "s-001") and unit.address_count == 45
    assert unit.name == "Street 000 and 1 nearby street"


def test_isolated_street_joins_the_nearest_unit():
    far = street(9, 5, row=5, col=0)  # ~550 m north, touching nothing
    streets = [street(0, 40), street(1, 40), far]
    units = build_units(streets, 40)
    check_partition(streets, units)
    assert ("s-000", "s-009") in [u.street_ids for u in units]


def test_ward_short_of_threshold_is_one_unpublishable_ward_unit():
    streets = [street(0, 10, "A"), street(1, 10, "A"), street(2, 50, "B"), street(3, 45, "B")]
    units = {u.ward_code: u for u in build_units(streets, 40) if u.ward_code == "A"}
    assert units["A"].street_ids == ("s-000", "s-001")
    assert units["A"].is_ward and not units["A"].publishable and units["A"].name == "Ward A ward"


def test_units_never_cross_wards():
    streets = [street(i, 15, "A" if i < 5 else "B") for i in range(10)]
    units = build_units(streets, 40)
    check_partition(streets, units)
    ward = {s.id: s.ward_code for s in streets}
    for u in units:
        assert {ward[s] for s in u.street_ids} == {u.ward_code}
        assert u.address_count >= 40


def test_same_input_in_any_order_gives_the_same_units():
    streets = [street(i, (i * 7) % 23, "A" if i % 3 else "B", row=i // 6, col=i % 6) for i in range(30)]
    shuffled = streets[:]
    random.Random(1).shuffle(shuffled)
    assert build_units(streets, 40) == build_units(shuffled, 40)
    assert build_units(streets, 8) == build_units(shuffled, 8)


@settings(max_examples=40, deadline=None)
@given(
    counts=st.lists(st.integers(0, 60), min_size=1, max_size=24),
    wards=st.lists(st.sampled_from(["A", "B", None]), min_size=24, max_size=24),
    threshold=st.sampled_from([8, 40]),
)
def test_every_street_in_one_unit_and_units_reach_the_threshold(counts, wards, threshold):
    streets = [street(i, c, wards[i], row=i // 5, col=i % 5) for i, c in enumerate(counts)]
    units = build_units(streets, threshold)
    check_partition(streets, units)
    ward = {s.id: s.ward_code for s in streets}
    for u in units:
        assert {ward[s] for s in u.street_ids} == {u.ward_code}
        assert u.publishable == (u.address_count >= threshold)
        if not u.publishable:  # only when the whole ward (or the ward-less rest) falls short
            assert sorted(u.street_ids) == sorted(s for s in ward if ward[s] == u.ward_code)
            assert u.is_ward == (u.ward_code is not None)


def test_camden_units_cover_every_street_once_within_wards(camden):
    for threshold in (8, 40):
        units = camden.units_for(threshold)
        members = [s for u in units for s in u.street_ids]
        assert sorted(members) == sorted(camden.streets)
        for u in units:
            assert u.id.startswith(f"u{threshold}-")
            assert {camden.streets[s].ward_code for s in u.street_ids} == {u.ward_code}
            assert u.address_count == sum(camden.streets[s].address_count for s in u.street_ids)
            assert u.address_count >= threshold or (u.is_ward and not u.publishable)


def test_camden_has_many_units_and_unit_lookup_works(camden):
    assert len(camden.units_for(8)) > len(camden.units_for(40)) > 100
    sid = next(iter(camden.streets))
    assert sid in camden.unit_of(sid, 40).street_ids
