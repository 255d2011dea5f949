"""Place categories: exact counts per street, small streets at their indivisible place unit."""

from hypothesis import given
from hypothesis import strategies as st

from services.aggregator.disclosure import (
    DisclosurePolicy,
    PlaceArea,
    StreetInfo,
    place_area,
    place_counts,
)

POLICY = DisclosurePolicy()


def test_place_area():
    assert place_area("s1", StreetInfo(8), POLICY) == PlaceArea("s1", "street")
    assert place_area("s2", StreetInfo(7, "p1"), POLICY) == PlaceArea("p1", "unit")
    assert place_area("s3", StreetInfo(7), POLICY) is None


def test_place_counts_merge_whole_units():
    streets = {
        "big": StreetInfo(30, "p1"),
        "tiny": StreetInfo(3, "p1"),
        "alone": StreetInfo(12),
        "grouped": StreetInfo(20, "p2"),
        "lost": StreetInfo(2),
    }
    counts = {"big": 4, "tiny": 1, "alone": 2, "grouped": 5, "lost": 9, "unknown": 7}
    assert place_counts(counts, streets, POLICY) == {
        PlaceArea("p1", "unit"): 5,
        PlaceArea("alone", "street"): 2,
        PlaceArea("grouped", "street"): 5,
    }


street_st = st.builds(StreetInfo, st.integers(0, 20), st.sampled_from([None, "p1", "p2"]))


@given(
    st.dictionaries(st.sampled_from([f"s{i}" for i in range(8)]), street_st),
    st.dictionaries(st.sampled_from([f"s{i}" for i in range(9)]), st.integers(0, 20)),
)
def test_no_small_street_is_published_or_recoverable(streets, counts):
    areas = place_counts(counts, streets, POLICY)
    for area in areas:
        if area.area_kind == "street":
            assert streets[area.area_id].address_count >= 8
            unit = streets[area.area_id].place_unit_id
            # A street shown alone is never also part of a unit total (no subtraction).
            assert (
                unit is None
                or PlaceArea(unit, "unit") not in areas
                or all(s.address_count >= 8 for s in streets.values() if s.place_unit_id == unit)
            )
    assert sum(areas.values()) <= sum(counts.values())
