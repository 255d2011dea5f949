"""Snapping points to streets, on Camden and synthetic lines."""

import numpy as np
import pytest
from shapely.geometry import LineString

from shared.gazetteer import Snapper, TooFarFromStreet, choose_crs

from .conftest import by_name


def test_point_on_agar_grove_snaps_to_agar_grove(camden):
    [agar] = by_name(camden, "Agar Grove")
    point = agar.geometry.interpolate(0.3, normalized=True)
    street_id, distance = camden.snapper.snap_one(point.x, point.y)
    assert street_id == agar.id and distance < 1


def test_point_a_few_metres_off_snaps_within_limit(camden):
    [agar] = by_name(camden, "Agar Grove")
    point = agar.geometry.interpolate(0.5, normalized=True)
    street_id, distance = camden.snapper.snap_one(point.x, point.y + 0.0001)  # ~11 m north
    assert distance < 15
    assert street_id == agar.id or camden.streets[street_id].ward_code == agar.ward_code


def test_far_points_are_rejected_with_their_distance(camden):
    with pytest.raises(TooFarFromStreet) as err:
        camden.snapper.snap_one(-0.13, 50.70)  # the English Channel
    assert err.value.distance_m > 50_000 and isinstance(err.value, ValueError)
    assert "from the nearest street" in str(err.value)
    with pytest.raises(TooFarFromStreet):
        camden.snapper.snap_one(-0.13, 51.5, max_distance_m=0.5)


def test_vectorised_equals_one_by_one(camden):
    rng = np.random.default_rng(7)
    lons, lats = rng.uniform(-0.22, -0.10, 300), rng.uniform(51.51, 51.58, 300)
    ids, distances = camden.snapper.snap_many(lons, lats)
    assert None in ids and any(ids)
    for lon, lat, sid, d in zip(lons, lats, ids, distances, strict=True):
        try:
            assert camden.snapper.snap_one(lon, lat) == (sid, pytest.approx(d))
        except TooFarFromStreet as err:
            assert sid is None and err.distance_m == pytest.approx(d) and d > 150


def test_non_finite_coordinates_are_rejected(camden):
    with pytest.raises(ValueError, match="finite"):
        camden.snapper.snap_one(float("nan"), 51.5)


def test_projection_is_british_grid_in_gb_and_utm_elsewhere(camden):
    assert camden.projector.crs == "EPSG:27700"
    assert choose_crs(10.07, 48.13) == "EPSG:32632"
    assert choose_crs(-74.0, 40.7) == "EPSG:32618"
    assert choose_crs(151.2, -33.9) == "EPSG:32756"


def test_snapper_on_synthetic_lines_in_new_york():
    a = LineString([(-74.0000, 40.7000), (-74.0000, 40.7010)])
    b = LineString([(-73.9990, 40.7000), (-73.9990, 40.7010)])
    snapper = Snapper(["a", "b"], [a, b], max_distance_m=50)
    assert snapper.projector.crs == "EPSG:32618"
    ids, distances = snapper.snap_many([-73.9998, -73.9992, -73.9995], [40.7005, 40.7005, 40.71])
    assert ids[:2] == ["a", "b"] and ids[2] is None
    assert distances[0] == pytest.approx(16.9, abs=0.5)


def test_vectorised_snapping_finds_the_nearest_street_as_shapely_does(camden):
    """The grid of candidate segments is exact: on 20,000 points in and around Camden, each point's
    distance is shapely's distance to the nearest street geometry, and the street it names is at
    that distance (another street may be exactly as near)."""
    import shapely

    snapper = camden.snapper
    rng = np.random.default_rng(11)
    lons, lats = rng.uniform(-0.23, -0.09, 20_000), rng.uniform(51.50, 51.59, 20_000)
    ids, distances = snapper.snap_many(lons, lats, max_distance_m=1e9)
    x, y = snapper.projector.xy(lons, lats)
    points = shapely.points(x, y)
    (point, _), expected = snapper._tree.query_nearest(points, return_distance=True, all_matches=False)
    assert (point == np.arange(len(points))).all()  # one nearest street per point, in order
    np.testing.assert_allclose(distances, expected, rtol=0, atol=1e-6)
    metric = {sid: snapper.projector.to_metric(camden.streets[sid].geometry) for sid in set(ids)}
    named = np.array([shapely.distance(p, metric[sid]) for p, sid in zip(points, ids, strict=True)])
    np.testing.assert_allclose(named, expected, rtol=0, atol=1e-6)
