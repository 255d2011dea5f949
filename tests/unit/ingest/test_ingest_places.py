"""Open311's place areas (docs/privacy.md rule 2) agree with the aggregator's, street by street."""

from __future__ import annotations

from services.aggregator.areas import Areas
from services.aggregator.disclosure import DisclosurePolicy
from services.ingest.places import place_area
from shared.privacy import MIN_STREET_ADDRESSES


def test_every_camden_street_is_shown_where_the_aggregator_shows_it(camden_gazetteer):
    areas = Areas(camden_gazetteer, DisclosurePolicy())
    small = 0
    for street_id, street in camden_gazetteer.streets.items():
        mine = place_area(camden_gazetteer, street_id)
        theirs = areas.place_area_of.get(street_id)
        assert (mine.area_id if mine else None) == (theirs.area_id if theirs else None), street_id
        if street.address_count < MIN_STREET_ADDRESSES:
            small += 1
            assert mine is None or mine.area_kind == "unit"
            assert mine is None or mine.area_id != street_id
    assert small > 10, "Camden has small streets: the test must cover them"
