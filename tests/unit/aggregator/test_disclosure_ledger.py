"""The privacy ledger: per-subject annual epsilon never passes the cap; counts leave capped subjects out."""

import datetime as dt

from hypothesis import given, settings
from hypothesis import strategies as st

from services.aggregator.disclosure import (
    DisclosurePolicy,
    Ledger,
    UnitInfo,
    compute_person_release,
    release_spend,
    tally,
)

SUBJECTS = [f"{i:064x}" for i in range(6)]
releases = st.lists(
    st.tuples(
        st.integers(2024, 2025),
        st.integers(1, 12),
        st.dictionaries(
            st.tuples(st.sampled_from(SUBJECTS), st.sampled_from(["isolation", "overcrowding"])),
            st.sampled_from(["u1", "u2"]),
            max_size=12,
        ),
    ),
    max_size=40,
)


@settings(max_examples=200)
@given(releases, st.sampled_from([0.1, 0.5, 0.7, 1.0, 2.5, 6.0]))
def test_the_annual_cap_is_never_passed(sequence, epsilon):
    policy = DisclosurePolicy(epsilon_per_release=epsilon)
    ledger = Ledger()
    for year, month, memberships in sequence:
        result = tally(f"{year}-{month:02d}", memberships, ledger, policy)
        ledger.record(result.charges)
        assert sum(result.counts.values()) + sum(result.excluded.values()) == len(memberships)
    for subject in SUBJECTS:
        for year in (2024, 2025):
            assert ledger.spent(subject, year) <= policy.annual_epsilon_cap + 1e-9


def test_a_subject_past_the_cap_is_left_out_of_the_counts():
    policy = DisclosurePolicy(epsilon_per_release=1.0)
    ledger = Ledger()
    me, other = SUBJECTS[:2]
    seen = []
    for month in range(1, 13):
        period = f"2024-{month:02d}"
        result = tally(period, {(me, "isolation"): "u1"}, ledger, policy)
        ledger.record(result.charges)
        seen.append(result.counts.get(("u1", "isolation"), 0))
    assert seen == [1] * 6 + [0] * 6
    assert ledger.spent(me, 2024) == 6.0
    # A new year is a new budget; another subject was never affected.
    assert tally("2025-01", {(me, "isolation"): "u1"}, ledger, policy).counts
    assert tally("2024-12", {(other, "isolation"): "u1"}, ledger, policy).counts


def test_default_policy_fits_twelve_monthly_releases_exactly():
    policy = DisclosurePolicy()
    ledger = Ledger()
    for month in range(1, 13):
        result = tally(f"2024-{month:02d}", {(SUBJECTS[0], "isolation"): "u1"}, ledger, policy)
        assert result.counts and not result.excluded
        ledger.record(result.charges)
    assert ledger.spent(SUBJECTS[0], 2024) == 6.0


def test_rerunning_a_period_charges_nothing_more():
    policy = DisclosurePolicy()
    ledger = Ledger()
    memberships = {(SUBJECTS[0], "isolation"): "u1", (SUBJECTS[0], "overcrowding"): "u2"}
    first = tally("2024-05", memberships, ledger, policy)
    assert first.charges == {(SUBJECTS[0], "2024-05"): 0.5}
    assert first.counts == {("u1", "isolation"): 1, ("u2", "overcrowding"): 1}
    ledger.record(first.charges)
    again = tally("2024-05", memberships, ledger, policy)
    assert again.charges == {} and again.counts == first.counts
    ledger.record(first.charges)
    assert ledger.spent(SUBJECTS[0], 2024) == 0.5


def test_release_spend_and_ledger_round_trip():
    policy = DisclosurePolicy()
    charges = release_spend(SUBJECTS[:3], "2024-01", policy)
    assert charges == {(s, "2024-01"): 0.5 for s in SUBJECTS[:3]}
    assert Ledger(charges).entries == charges


def test_capped_subjects_are_audited_as_budget_exhausted():
    policy = DisclosurePolicy(epsilon_per_release=6.0, noise=False, ward_aggregates=False)
    ledger = Ledger(release_spend(SUBJECTS[:2], "2024-01", policy))
    memberships = {(s, "isolation"): "u1" for s in SUBJECTS}
    counted = tally("2024-02", memberships, ledger, policy)
    assert counted.counts == {("u1", "isolation"): 4}
    assert counted.excluded == {("u1", "isolation"): 2}
    result = compute_person_release(
        "2024-02",
        counted.counts,
        {"u1": UnitInfo(60, "W")},
        policy,
        now=dt.datetime(2024, 3, 1, tzinfo=dt.UTC),
        excluded=counted.excluded,
    )
    assert [(w.unit_id, w.reason) for w in result.withheld] == [("u1", "budget_exhausted")]
