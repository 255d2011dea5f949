"""Property tests over random signal streams applied to the aggregator's pure state logic."""

from __future__ import annotations

import datetime as dt
import itertools
import random
import uuid

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from shapely.geometry import LineString

from services.aggregator.areas import Areas
from services.aggregator.disclosure import (
    DisclosurePolicy,
    Ledger,
    compute_person_release,
    tally,
)
from services.aggregator.state import (
    Cell,
    SignalState,
    active_subjects,
    cells_of_rows,
    folded_rows,
    person_memberships,
    place_stats,
    reduce_batch,
)
from services.aggregator.views import diff, person_views, place_views
from shared.contracts import Sensitivity, SignalAnonymised, info
from shared.gazetteer.model import Gazetteer, Street, Unit

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)
NOW = dt.datetime(2026, 4, 10, 12, tzinfo=dt.UTC)
CATEGORIES = ["isolation", "overcrowding", "fly_tipping", "graffiti", "litter"]
# Streets: address counts chosen so that some publish alone, some merge into place units.
ADDRESSES = {"s1": 30, "s2": 5, "s3": 12, "s4": 3, "s5": 50, "s6": 2}


def gazetteer() -> Gazetteer:
    streets = {
        sid: Street(
            sid,
            sid.upper(),
            sid,
            LineString([(i * 0.01, 51.5), (i * 0.01 + 0.005, 51.5)]),
            (),
            n,
            "W1" if i < 3 else "W2",
        )
        for i, (sid, n) in enumerate(ADDRESSES.items())
    }
    units = [
        Unit("p-a", 8, ("s1", "s2"), "W1", False, True, 35, "A"),
        Unit("p-b", 8, ("s3",), "W1", False, True, 12, "B"),
        Unit("p-c", 8, ("s4", "s5", "s6"), "W2", False, True, 55, "C"),
        Unit("u-1", 40, ("s1", "s2", "s3"), "W1", False, True, 47, "U1"),
        Unit("u-2", 40, ("s4", "s5", "s6"), "W2", False, True, 55, "U2"),
    ]
    return Gazetteer(streets=streets, units=units)


def event(street: str, category: str, subject: int, day: int, hour: int, withdrawn: bool) -> SignalAnonymised:
    sensitivity = info(category).sensitivity
    at = T0 + dt.timedelta(days=day)
    if sensitivity is Sensitivity.PLACE:
        at += dt.timedelta(hours=hour)
    return SignalAnonymised(
        event_id=uuid.uuid4(),
        category=category,
        sensitivity=sensitivity,
        action="withdrawn" if withdrawn else "raised",
        street_id=street,
        subject_key=f"{subject:064x}",
        key_version=1,
        occurred_at=at,
        council_id="c",
        source="kafka",
    )


events = st.builds(
    event,
    st.sampled_from(sorted(ADDRESSES)),
    st.sampled_from(CATEGORIES),
    st.integers(0, 60),
    st.integers(0, 100),
    st.integers(0, 23),
    st.sampled_from([False, False, False, True]),
)
streams = st.lists(events, min_size=0, max_size=200)
FAST = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])


def batches(stream: list, cuts: list[int]) -> list[list]:
    bounds = sorted({c % (len(stream) + 1) for c in cuts} | {0, len(stream)})
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


@FAST
@given(streams, st.lists(st.integers(0, 1000), max_size=10), st.randoms(use_true_random=False))
def test_rebuild_in_any_batching_and_order_equals_live(stream, cuts, rnd) -> None:
    live = SignalState()
    for batch in batches(stream, cuts):
        live.apply(batch)
    # A replay may see the events in another batching, another cross-partition order, and with
    # redeliveries after a crash; the fold must not care.
    replay = stream + rnd.sample(stream, k=len(stream) // 3)
    rnd.shuffle(replay)
    rebuilt = SignalState()
    for batch in batches(replay, [rnd.randrange(0, len(replay) + 1) for _ in range(5)]):
        rebuilt.apply(batch)
    assert rebuilt == live
    assert active_subjects(rebuilt.rows(), NOW) == active_subjects(live.rows(), NOW)


def _place_rows(state: SignalState) -> list:
    return [
        (r.street_id, r.category, r.raised_at, r.withdrawn_at)
        for r in state.rows()
        if info(r.category).sensitivity is Sensitivity.PLACE
    ]


# Place signals of few subjects, often withdrawn: batches meet the rows stored before them.
place_streams = st.lists(
    st.builds(
        event,
        st.sampled_from(sorted(ADDRESSES)),
        st.sampled_from([c for c in CATEGORIES if info(c).sensitivity is Sensitivity.PLACE]),
        st.integers(0, 6),
        st.integers(0, 100),
        st.integers(0, 23),
        st.sampled_from([False, False, True]),
    ),
    min_size=1,
    max_size=120,
)


@FAST
@given(place_streams, place_streams, st.integers(-24 * 120, 24 * 30))
def test_a_batch_moves_kept_counts_to_the_folded_states(stored, batch, hours) -> None:
    """What a batch does to its place cells, counted from its own rows as the lock reads them
    (`folded_rows`, `cells_of_rows`), is what a recount of the folded state gives."""
    now = NOW + dt.timedelta(hours=hours)
    state = SignalState()
    state.apply(stored)
    kept = cells_of_rows(_place_rows(state), now, 30)
    delta = reduce_batch(batch)
    place = {c for c in CATEGORIES if info(c).sensitivity is Sensitivity.PLACE}
    # The rows the fold changes or may end (its raises; the rows its withdrawals reach), as stored.
    changed = sorted(
        {k for k in delta.raised if k[1] in place}
        | {k for k in state.raised if k[1] in place and (k[2], k[1]) in delta.withdrawn}
    )
    stored_raised = {k: state.raised[k] for k in changed if k in state.raised}
    stored_withdrawn = {(k[2], k[1]): w for k in changed if (w := state.withdrawn.get((k[2], k[1])))}
    before, after = (
        cells_of_rows(rows, now, 30) for rows in folded_rows(changed, stored_raised, stored_withdrawn, delta)
    )

    state.apply(batch)
    truth = place_stats(state.rows(), now, 30)
    recount = cells_of_rows(_place_rows(state), now, 30)
    for key in {(s, c) for s, c, _ in changed}:
        cell = kept.get(key, Cell()).moved(before.get(key, Cell()), after.get(key, Cell()))
        counts = (cell.open, cell.closed, cell.this_window, cell.last_window)
        expected = tuple(
            m.get(key, 0) for m in (truth.open, truth.closed, truth.this_window, truth.last_window)
        )
        assert counts == expected
        assert cell.holds_at(now)
        # The moved span is within the recounted one (it may be narrower, never wider).
        full = recount.get(key, Cell())
        if full.valid_from is not None:
            assert cell.valid_from is not None and cell.valid_from >= full.valid_from
        if full.valid_until is not None:
            assert cell.valid_until is not None and cell.valid_until <= full.valid_until
    for key, cell in recount.items():
        counts = (cell.open, cell.closed, cell.this_window, cell.last_window)
        assert counts == tuple(
            m.get(key, 0) for m in (truth.open, truth.closed, truth.this_window, truth.last_window)
        )


@FAST
@given(streams)
def test_withdrawn_subjects_leave_the_aggregate_at_once(stream) -> None:
    state = SignalState()
    state.apply(stream)
    withdrawn = {
        (k, c)
        for (k, c), w in state.withdrawn.items()
        if all(at <= w for (_, c2, k2), at in state.raised.items() if (k2, c2) == (k, c))
    }
    for (_, category), subjects in active_subjects(state.rows(), NOW).items():
        assert not {(s, category) for s in subjects} & withdrawn
    areas = Areas(gazetteer(), DisclosurePolicy())
    for period in ("2026-02", "2026-03"):
        assert not set(person_memberships(state.rows(), period, areas.person_unit_of)) & withdrawn


def seeded_sampler(seed: int):
    rnd = random.Random(seed)

    def sample(count: int, epsilon: float) -> int:
        # The difference of two geometric draws is discrete Laplace, like OpenDP's; seeded here.
        return count + int(rnd.expovariate(epsilon)) - int(rnd.expovariate(epsilon))

    return sample


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.lists(events, max_size=300),
    st.integers(0, 2**32),
    st.sampled_from(["2026-02", "2026-03"]),
    st.booleans(),
)
def test_no_person_cell_published_below_thresholds(stream, seed, period, noise) -> None:
    # Many subjects on few streets so that some cells pass the threshold.
    policy = DisclosurePolicy(noise=noise)
    areas = Areas(gazetteer(), policy)
    state = SignalState()
    state.apply(stream)
    members = person_memberships(state.rows(), period, areas.person_unit_of)
    counted = tally(period, members, Ledger(), policy)
    result = compute_person_release(
        period,
        counted.counts,
        areas.person_units,
        policy,
        {},
        now=NOW,
        excluded=counted.excluded,
        sampler=seeded_sampler(seed),
    )
    noisy = {(u, c): n for (_, u, c), n in result.new_draws.items()} if noise else counted.counts
    views = person_views(result, areas)
    for change in diff(views, {}, views, NOW):
        message = change.message
        assert message is not None and message.sensitivity is Sensitivity.PERSON
        assert message.count is None and message.band is not None
        assert message.period == period and message.since == dt.date.fromisoformat(f"{period}-01")
        assert areas.person_units[message.area_id].address_count >= policy.min_unit_addresses
        assert noisy.get((message.area_id, str(message.category)), 0) >= policy.min_subjects
        assert message.published_at.second == 0 and message.published_at.microsecond == 0
        body = message.model_dump_json()
        assert not any(key in body for key, _ in members)


@FAST
@given(streams)
def test_place_needs_never_published_for_a_small_street_alone(stream) -> None:
    policy = DisclosurePolicy()
    areas = Areas(gazetteer(), policy)
    state = SignalState()
    state.apply(stream)
    stats = place_stats(state.rows(), NOW, 30)
    views = place_views(stats, areas)
    for (area_id, category), view in views.items():
        assert info(category).sensitivity is Sensitivity.PLACE
        if view.area.area_kind == "street":
            assert ADDRESSES[area_id] >= policy.min_street_addresses
        # The published count is exactly the open reports of the area's streets.
        expected = sum(stats.open.get((s, category), 0) for s in view.area.street_ids)
        assert view.count == expected > 0
    # Every street with open reports is covered by exactly one published area.
    for (street, category), n in stats.open.items():
        covering = [v for (_, c), v in views.items() if c == category and street in v.area.street_ids]
        assert n == 0 or len(covering) == 1
