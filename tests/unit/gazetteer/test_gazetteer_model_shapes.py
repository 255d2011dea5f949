"""The shape of a published area, as the aggregator and partners draw it."""

from __future__ import annotations

import pytest


@pytest.fixture(scope="module")
def gazetteer(camden_gazetteer):
    return camden_gazetteer


def test_street_and_unit_shapes_are_their_streets_lines(gazetteer):
    unit = next(u for u in gazetteer.units_for(40) if len(u.street_ids) >= 3)
    shape = gazetteer.area_shape("unit", unit.id, unit.street_ids)
    assert shape.geom_type == "MultiLineString"
    for street_id in unit.street_ids:
        assert shape.buffer(1e-9).contains(gazetteer.streets[street_id].geometry)
    street = gazetteer.streets[unit.street_ids[0]]
    assert gazetteer.area_shape("street", street.id, [street.id]).equals(street.geometry)


def test_ward_shape_is_its_polygon_and_unknown_areas_have_none(gazetteer):
    ward = gazetteer.wards[0]
    assert gazetteer.area_shape("ward", ward.code, []).equals(ward.geometry)
    assert gazetteer.area_shape("street", "s-nowhere", ["s-nowhere"]) is None
