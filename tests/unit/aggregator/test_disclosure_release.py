"""Person-category releases: properties over random units, counts and noise, plus the audit."""

import dataclasses
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.disclosure import (
    Cell,
    DisclosurePolicy,
    ReleaseNotDue,
    UnitInfo,
    band_for,
    compute_person_release,
    period_end,
    round_to_base,
)

CATEGORIES = DisclosurePolicy().person_categories
UNIT_IDS = [f"u{i}" for i in range(8)]
AFTER = dt.datetime(2040, 1, 1, tzinfo=dt.UTC)

periods = st.builds(lambda y, m: f"{y:04d}-{m:02d}", st.integers(2020, 2030), st.integers(1, 12))
units_st = st.dictionaries(
    st.sampled_from(UNIT_IDS[:6]),
    st.builds(
        UnitInfo,
        address_count=st.integers(0, 120),
        ward_code=st.sampled_from(["W1", "W2"]),
        publishable=st.booleans(),
    ),
    max_size=6,
)
# Unit ids u6 and u7 are never in `units`: counts on units the gazetteer no longer has.
counts_st = st.dictionaries(
    st.tuples(st.sampled_from(UNIT_IDS), st.sampled_from(CATEGORIES)), st.integers(0, 40)
)
policies = st.builds(DisclosurePolicy, noise=st.booleans(), ward_aggregates=st.booleans())


def _sampler(data):
    return lambda true, epsilon: true + data.draw(st.integers(-12, 12), label="noise")


def _no_draws(true, epsilon):
    raise AssertionError("noise was drawn again")


@settings(max_examples=300)
@given(periods, counts_st, units_st, policies, st.integers(0, 10**8), st.data())
def test_nothing_published_that_rules_forbid(period, counts, units, policy, delay_s, data):
    now = period_end(period) + dt.timedelta(seconds=delay_s)
    result = compute_person_release(period, counts, units, policy, now=now, sampler=_sampler(data))
    noisy = {
        (u, c): result.new_draws.get((period, u, c), counts.get((u, c), 0)) for u in units for c in CATEGORIES
    }
    assert [f.name for f in dataclasses.fields(Cell)] == ["unit_id", "category", "band", "rounded_count"]
    for cell in result.published:
        unit = units[cell.unit_id]
        assert unit.publishable and unit.address_count >= 40
        n = noisy[(cell.unit_id, cell.category)]
        assert n >= 8
        assert cell.band == band_for(n, policy)
        assert cell.rounded_count == round_to_base(n, 5) and cell.rounded_count % 5 == 0
        if not policy.noise:
            assert counts[(cell.unit_id, cell.category)] >= 8
    published = {(c.unit_id, c.category) for c in result.published}
    withheld = [(w.unit_id, w.category) for w in result.withheld]
    assert len(withheld) == len(set(withheld)) and not published & set(withheld)
    # Audit: every cell with someone in it is either published or held back with a reason.
    assert {k for k, n in counts.items() if n > 0} <= published | set(withheld)
    if policy.ward_aggregates:
        for (ward, category), _ in result.ward_totals.items():
            hidden = [
                u
                for u in units
                if units[u].ward_code == ward
                and (u, category) in noisy
                and units[u].publishable
                and units[u].address_count >= 40
                and (u, category) not in published
            ]
            assert len(hidden) != 1, "a ward total would reveal one withheld unit"
    else:
        assert not result.ward_totals


@given(periods, st.integers(0, 27 * 24 * 3600 - 1), units_st, counts_st)
def test_a_month_that_has_not_ended_is_refused(period, offset_s, units, counts):
    year, month = map(int, period.split("-"))
    now = dt.datetime(year, month, 1, tzinfo=dt.UTC) + dt.timedelta(seconds=offset_s)
    with pytest.raises(ReleaseNotDue):
        compute_person_release(period, counts, units, DisclosurePolicy(), now=now)


@given(periods, counts_st, counts_st, units_st, st.data())
def test_noise_is_drawn_once_and_reused(period, counts, later_counts, units, data):
    policy = DisclosurePolicy()
    first = compute_person_release(period, counts, units, policy, now=AFTER, sampler=_sampler(data))
    again = compute_person_release(
        period, counts, units, policy, first.new_draws, now=AFTER, sampler=_no_draws
    )
    assert again == dataclasses.replace(first, new_draws={})
    # A month once drawn is final: changed counts must not move it, or the change would leak.
    changed = compute_person_release(
        period, later_counts, units, policy, first.new_draws, now=AFTER, sampler=_no_draws
    )
    assert changed.published == first.published
    assert changed.ward_totals == first.ward_totals


def test_every_publishable_cell_gets_noise_zeros_included():
    units = {"a": UnitInfo(50, "W"), "b": UnitInfo(50, "W"), "small": UnitInfo(10, "W")}
    result = compute_person_release("2024-03", {}, units, DisclosurePolicy(), now=AFTER)
    assert set(result.new_draws) == {("2024-03", u, c) for u in "ab" for c in CATEGORIES}


def test_real_opendp_noise_is_used_by_default():
    units = {f"u{i}": UnitInfo(50, "W") for i in range(100)}
    counts = {(u, "isolation"): 20 for u in units}
    result = compute_person_release("2024-03", counts, units, DisclosurePolicy(), now=AFTER)
    drawn = [result.new_draws[("2024-03", u, "isolation")] for u in units]
    assert len(set(drawn)) > 5 and abs(sum(drawn) / len(drawn) - 20) < 3


def _exact(**kwargs):
    return DisclosurePolicy(noise=False, **kwargs)


def test_audit_reasons():
    units = {
        "big": UnitInfo(60, "W1"),
        "small": UnitInfo(39, "W1"),
        "closed": UnitInfo(90, "W1", publishable=False),
        "quiet": UnitInfo(60, "W2"),
        "capped": UnitInfo(60, "W3"),
        "shown": UnitInfo(60, "W3"),
        "gone": UnitInfo(60, "W4"),
    }
    counts = {
        ("big", "isolation"): 9,
        ("small", "isolation"): 30,
        ("closed", "isolation"): 30,
        ("quiet", "isolation"): 7,
        ("gone", "isolation"): 3,
        ("capped", "isolation"): 2,
        ("shown", "isolation"): 12,
        ("nowhere", "isolation"): 12,
    }
    result = compute_person_release(
        "2024-03",
        counts,
        units,
        _exact(ward_aggregates=False),
        now=AFTER,
        excluded={("capped", "isolation"): 6},
    )
    assert {(w.unit_id, w.reason) for w in result.withheld} == {
        ("small", "unit_too_small"),
        ("closed", "unit_not_publishable"),
        ("nowhere", "unit_not_publishable"),
        ("quiet", "below_threshold"),
        ("gone", "below_threshold"),
        ("capped", "budget_exhausted"),
    }
    assert {(c.unit_id, c.band, c.rounded_count) for c in result.published} == {
        ("big", "some", 10),
        ("shown", "some", 10),
    }


def test_secondary_suppression_withholds_the_next_smallest():
    units = {"a": UnitInfo(60, "W"), "b": UnitInfo(60, "W"), "c": UnitInfo(60, "W")}
    counts = {
        ("a", "isolation"): 3,
        ("b", "isolation"): 9,
        ("c", "isolation"): 20,
        ("a", "overcrowding"): 9,
        ("b", "overcrowding"): 9,
        ("c", "overcrowding"): 9,
    }
    result = compute_person_release("2024-03", counts, units, _exact(), now=AFTER)
    assert {(c.unit_id, c.category) for c in result.published} == {
        ("c", "isolation"),
        ("a", "overcrowding"),
        ("b", "overcrowding"),
        ("c", "overcrowding"),
    }
    assert ("b", "isolation", "secondary_suppression") in {
        (w.unit_id, w.category, w.reason) for w in result.withheld
    }
    assert result.ward_totals == {("W", "isolation"): 30, ("W", "overcrowding"): 25}
    without = compute_person_release("2024-03", counts, units, _exact(ward_aggregates=False), now=AFTER)
    assert ("b", "isolation") in {(c.unit_id, c.category) for c in without.published}


def test_a_ward_total_that_is_one_withheld_unit_is_not_kept():
    units = {"a": UnitInfo(60, "W")}
    result = compute_person_release("2024-03", {("a", "isolation"): 5}, units, _exact(), now=AFTER)
    assert ("W", "isolation") not in result.ward_totals


def test_unknown_categories_and_negative_counts_are_refused():
    units = {"a": UnitInfo(60, "W")}
    with pytest.raises(ValueError):
        compute_person_release("2024-03", {("a", "litter"): 9}, units, _exact(), now=AFTER)
    with pytest.raises(ValueError):
        compute_person_release("2024-03", {("a", "isolation"): -1}, units, _exact(), now=AFTER)
