"""Quarterly ward trends: full quarters only, suppression respected, a noise tolerance, never a count."""

import dataclasses
import datetime as dt
import math
import random
import re

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.areas import Area
from services.aggregator.disclosure import (
    DisclosurePolicy,
    UnitInfo,
    WardTotal,
    compute_person_release,
    compute_ward_trends,
    period_start,
    previous_quarter,
    quarter_months,
    quarter_of,
    trend,
    trend_tolerance,
)
from services.aggregator.views import diff, ward_trend_views

POLICY = DisclosurePolicy()
CATEGORIES = POLICY.person_categories
Q3 = quarter_months("2026-Q3")
Q2 = quarter_months("2026-Q2")
SIX = (*Q3, *Q2)
AFTER = dt.datetime(2027, 1, 1, tzinfo=dt.UTC)


def _totals(wards, this: int, last: int, cells: int = 3):
    """Every month of Q3 totals `this` and of Q2 `last`, per ward and category."""
    return {
        (m, w, c): WardTotal(this if m in Q3 else last, cells) for m in SIX for w in wards for c in CATEGORIES
    }


def test_quarter_calendar():
    assert quarter_of("2026-12") == "2026-Q4" and quarter_of("2026-01") == "2026-Q1"
    assert quarter_months("2026-Q4") == ("2026-10", "2026-11", "2026-12")
    assert previous_quarter("2026-Q1") == "2025-Q4" and previous_quarter("2026-Q3") == "2026-Q2"
    assert period_start("2026-Q3") == dt.date(2026, 7, 1) and period_start("2026-05") == dt.date(2026, 5, 1)
    with pytest.raises(ValueError):
        quarter_months("2026-Q5")


def test_trend_tolerance_is_the_95_percent_range_of_noise_and_rounding():
    # Without noise only the six roundings (uniform, +-2.5) remain.
    assert trend_tolerance(0, 6, DisclosurePolicy(noise=False)) == math.ceil(1.96 * math.sqrt(6 * 25 / 12))
    # Discrete Laplace at epsilon 0.25 per cell: variance 2a/(1-a)^2, a = exp(-0.25).
    a = math.exp(-POLICY.epsilon_per_cell)
    assert trend_tolerance(18, 6, POLICY) == math.ceil(1.96 * math.sqrt(18 * 2 * a / (1 - a) ** 2 + 12.5))
    # More units summed, more noise to clear; a larger epsilon, less.
    assert trend_tolerance(60, 6, POLICY) > trend_tolerance(18, 6, POLICY)
    assert trend_tolerance(18, 6, DisclosurePolicy(epsilon_per_release=2.0)) < trend_tolerance(18, 6, POLICY)


def test_trend_is_steady_within_the_tolerance():
    assert (trend(10, 0, 10), trend(11, 0, 10), trend(0, 11, 10), trend(0, 10, 10)) == (
        "steady",
        "up",
        "down",
        "steady",
    )


def test_full_quarters_give_a_trend_per_ward_and_category():
    tol = trend_tolerance(18, 6, POLICY)
    up = compute_ward_trends("2026-Q3", set(SIX), _totals(["W1"], 10 + tol, 10), ["W1"], POLICY)
    assert {(t.ward_code, t.category, t.trend) for t in up.trends} == {("W1", c, "up") for c in CATEGORIES}
    assert up.withheld == ()
    # A change the noise could make on its own stays steady: 3 * delta is the quarter difference.
    delta = tol // 3
    steady = compute_ward_trends("2026-Q3", set(SIX), _totals(["W1"], 10 + delta, 10), ["W1"], POLICY)
    assert {t.trend for t in steady.trends} == {"steady"}
    down = compute_ward_trends("2026-Q3", set(SIX), _totals(["W1"], 0, 10 + tol), ["W1"], POLICY)
    assert {t.trend for t in down.trends} == {"down"}


@pytest.mark.parametrize("missing", SIX)
def test_no_partial_quarters(missing):
    result = compute_ward_trends(
        "2026-Q3", set(SIX) - {missing}, _totals(["W1", "W2"], 50, 0), ["W1", "W2"], POLICY
    )
    assert result.trends == ()
    assert {(w.ward_code, w.reason) for w in result.withheld} == {
        ("W1", "quarter_incomplete"),
        ("W2", "quarter_incomplete"),
    }


@pytest.mark.parametrize("month", SIX)
def test_a_ward_without_a_safe_total_in_any_month_gets_no_trend(month):
    totals = _totals(["W1", "W2"], 50, 0)
    del totals[(month, "W1", "isolation")]  # secondary suppression left W1 without a total
    result = compute_ward_trends("2026-Q3", set(SIX), totals, ["W1", "W2"], POLICY)
    assert ("W1", "isolation") not in {(t.ward_code, t.category) for t in result.trends}
    assert [(w.ward_code, w.category, w.reason) for w in result.withheld] == [
        ("W1", "isolation", "secondary_suppression")
    ]
    assert {(t.ward_code, t.category) for t in result.trends} == {
        ("W1", "overcrowding"),
        ("W2", "isolation"),
        ("W2", "overcrowding"),
    }


def test_wards_without_a_code_are_not_decided():
    result = compute_ward_trends("2026-Q3", set(SIX), _totals(["", "W1"], 50, 0), ["", "W1"], POLICY)
    assert {t.ward_code for t in result.trends} == {"W1"} and not result.withheld


def test_release_keeps_the_number_of_cells_behind_each_ward_total():
    units = {f"u{i}": UnitInfo(50, "W1" if i < 3 else "W2") for i in range(5)}
    result = compute_person_release(
        "2026-07", {("u0", "isolation"): 12}, units, DisclosurePolicy(noise=False), now=AFTER
    )
    assert set(result.ward_cells) == set(result.ward_totals)
    assert result.ward_cells[("W1", "isolation")] == 3 and result.ward_cells[("W2", "overcrowding")] == 2


def _discrete_laplace(rng: random.Random):
    def sample(true: int, epsilon: float) -> int:
        p = 1 - math.exp(-epsilon)  # difference of two geometric draws is discrete Laplace
        geometric = lambda: int(math.log(1 - rng.random()) / math.log(1 - p))  # noqa: E731
        return true + geometric() - geometric()

    return sample


def test_noise_alone_rarely_flips_a_trend():
    """Unchanged true counts, fresh noise each month, through the real release path: about 5% flip."""
    rng = random.Random(7)
    units = {f"u{i}": UnitInfo(60, "W1") for i in range(6)}
    counts = {(f"u{i}", c): 3 + i for i in range(6) for c in CATEGORIES}
    flips = trials = 0
    for _ in range(300):
        totals, released = {}, set()
        for month in SIX:
            result = compute_person_release(
                month, counts, units, POLICY, now=AFTER, sampler=_discrete_laplace(rng)
            )
            released.add(month)
            totals.update(
                {
                    (month, w, c): WardTotal(n, result.ward_cells[(w, c)])
                    for (w, c), n in result.ward_totals.items()
                }
            )
        for t in compute_ward_trends("2026-Q3", released, totals, ["W1"], POLICY).trends:
            trials += 1
            flips += t.trend != "steady"
    assert trials == 600
    assert flips / trials < 0.09  # 95% range: about 0.05 expected


def test_a_real_change_shows_through_the_noise():
    rng = random.Random(11)
    units = {f"u{i}": UnitInfo(60, "W1") for i in range(6)}
    ups = trials = 0
    for _ in range(100):
        totals, released = {}, set()
        for month in SIX:
            base = 20 if month in Q3 else 3  # every unit: 17 more subjects a month, ~300 a quarter
            counts = {(u, c): base for u in units for c in CATEGORIES}
            result = compute_person_release(
                month, counts, units, POLICY, now=AFTER, sampler=_discrete_laplace(rng)
            )
            released.add(month)
            totals.update(
                {
                    (month, w, c): WardTotal(n, result.ward_cells[(w, c)])
                    for (w, c), n in result.ward_totals.items()
                }
            )
        for t in compute_ward_trends("2026-Q3", released, totals, ["W1"], POLICY).trends:
            trials += 1
            ups += t.trend == "up"
    assert ups / trials > 0.95


class _Wards:
    def __init__(self, codes):
        self.wards = {c: Area(c, "ward", f"Ward {c}", c, (f"way/{c}1", f"way/{c}2")) for c in codes}


totals_st = st.dictionaries(
    st.tuples(st.sampled_from(SIX), st.sampled_from(["W1", "W2", "W3"]), st.sampled_from(CATEGORIES)),
    st.builds(WardTotal, st.integers(0, 500), st.integers(1, 30)),
)


@settings(max_examples=200, deadline=None)
@given(totals=totals_st, released=st.sets(st.sampled_from(SIX)))
def test_property_a_trend_is_a_direction_never_a_count(totals, released):
    result = compute_ward_trends("2026-Q3", released, totals, ["W1", "W2", "W3"], POLICY)
    decided = [(t.ward_code, t.category) for t in result.trends] + [
        (w.ward_code, w.category) for w in result.withheld
    ]
    assert sorted(decided) == sorted((w, c) for w in ("W1", "W2", "W3") for c in CATEGORIES)
    for t in result.trends:
        assert [f.name for f in dataclasses.fields(t)] == ["ward_code", "category", "trend"]
        assert released >= set(SIX)
        assert all((m, t.ward_code, t.category) in totals for m in SIX)
    views = ward_trend_views(result, _Wards(["W1", "W2", "W3"]))
    now = dt.datetime(2026, 10, 1, 9, 30, 17, tzinfo=dt.UTC)
    for change in diff(views, {}, set(views), now):
        message = change.message
        assert message.band is None and message.count is None and message.trend in ("up", "down", "steady")
        assert message.area_kind == "ward" and message.area_id == message.ward_code
        assert message.period == "2026-Q3" and message.since == dt.date(2026, 7, 1)
        assert message.street_ids == (f"way/{message.ward_code}1", f"way/{message.ward_code}2")
        # No total, sum or cell count anywhere in what is published.
        assert not re.search(r"\d", message.model_dump_json(include={"band", "count", "trend"}))
