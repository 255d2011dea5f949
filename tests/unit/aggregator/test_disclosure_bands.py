"""Bands, rounding, trends, periods and policy validation."""

import datetime as dt

import pytest
from hypothesis import given
from hypothesis import strategies as st

from services.aggregator.disclosure import (
    DisclosurePolicy,
    ReleaseNotDue,
    band_for,
    period_end,
    release_due,
    round_to_base,
    trend,
)

POLICY = DisclosurePolicy()


@pytest.mark.parametrize(
    ("count", "band"),
    [
        (-3, None),
        (0, None),
        (7, None),
        (8, "some"),
        (14, "some"),
        (15, "several"),
        (29, "several"),
        (30, "many"),
        (500, "many"),
    ],
)
def test_bands(count, band):
    assert band_for(count, POLICY) == band


@pytest.mark.parametrize(
    ("count", "rounded"),
    [(0, 0), (2, 0), (3, 5), (7, 5), (8, 10), (12, 10), (13, 15), (14, 15), (-2, 0), (-3, -5)],
)
def test_round_to_nearest_five(count, rounded):
    assert round_to_base(count, 5) == rounded


@given(st.integers(-1000, 1000), st.integers(1, 50))
def test_rounding_is_to_the_nearest_multiple(count, base):
    rounded = round_to_base(count, base)
    assert rounded % base == 0
    assert 2 * abs(rounded - count) <= base


def test_trend():
    assert (trend(3, 1), trend(1, 3), trend(2, 2)) == ("up", "down", "steady")


def test_policy_defaults_are_privacy_md():
    p = DisclosurePolicy()
    assert (p.min_subjects, p.min_unit_addresses, p.min_street_addresses, p.rounding_base) == (8, 40, 8, 5)
    assert (p.several_from, p.many_from, p.epsilon_per_release, p.annual_epsilon_cap) == (15, 30, 0.5, 6.0)
    assert p.noise and p.ward_aggregates
    assert set(p.person_categories) == {"isolation", "overcrowding"}
    assert p.epsilon_per_cell == 0.25


@pytest.mark.parametrize(
    "kwargs",
    [
        {"min_subjects": 15},
        {"many_from": 10},
        {"epsilon_per_release": 0},
        {"epsilon_per_release": 7.0},
        {"rounding_base": 0},
        {"person_categories": ()},
        {"person_categories": ("isolation", "isolation")},
        {"release_delay_days": -1},
    ],
)
def test_policy_rejects_nonsense(kwargs):
    with pytest.raises(ValueError):
        DisclosurePolicy(**kwargs)


def test_release_due_only_after_the_month_and_delay():
    assert period_end("2024-12") == dt.datetime(2025, 1, 1, tzinfo=dt.UTC)
    release_due("2024-12", dt.datetime(2025, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ReleaseNotDue):
        release_due("2024-12", dt.datetime(2024, 12, 31, 23, 59, tzinfo=dt.UTC))
    with pytest.raises(ReleaseNotDue):
        release_due("2024-12", dt.datetime(2025, 1, 5, tzinfo=dt.UTC), delay_days=7)
    with pytest.raises(ValueError):
        release_due("2024-13", dt.datetime(2030, 1, 1, tzinfo=dt.UTC))
    with pytest.raises(ValueError):
        release_due("2024-12", dt.datetime(2030, 1, 1))
