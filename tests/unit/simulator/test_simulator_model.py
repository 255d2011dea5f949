"""The generation model against the real Camden data: where signals land, their mix, their lifecycle."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from itertools import islice
from pathlib import Path

import numpy as np
import pytest
import shapely

from shared.contracts import Category, CouncilSignal, Sensitivity, info
from simulator.model import SignalModel
from simulator.reference import load_reference

CAMDEN = Path(__file__).resolve().parents[3] / "data" / "camden"
START = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@pytest.fixture(scope="module")
def gazetteer(camden_gazetteer):
    return camden_gazetteer


@pytest.fixture(scope="module")
def reference():
    return load_reference(CAMDEN)


def spearman(a, b) -> float:
    def ranks(x):
        x = np.asarray(x, dtype=float)
        order = np.argsort(x, kind="stable")
        r = np.empty(len(x))
        r[order] = np.arange(len(x))
        for v in np.unique(x):  # ties share their average rank
            r[x == v] = r[x == v].mean()
        return r

    return float(np.corrcoef(ranks(a), ranks(b))[0, 1])


def test_isolation_flags_follow_loneliness_rates(gazetteer, reference):
    model = SignalModel(gazetteer, reference, seed=11, categories=[Category.ISOLATION])
    counts = Counter(
        s.lsoa for s in islice(model.simulate(START, warm=False), 30_000) if s.signal.action == "raised"
    )
    lsoas = sorted({s.lsoa_code for s in gazetteer.streets.values()})
    rho = spearman([counts[x] for x in lsoas], [reference.loneliness[x] for x in lsoas])
    assert rho > 0.5, rho


def test_environmental_reports_follow_the_fixmystreet_mix(gazetteer, reference):
    place = [c for c in Category if info(c).sensitivity is Sensitivity.PLACE]
    model = SignalModel(gazetteer, reference, seed=5, categories=place)
    raised = [s for s in islice(model.simulate(START, warm=False), 40_000) if s.signal.action == "raised"]
    mix = Counter(s.signal.category for s in raised)
    expected = reference.category_mix()
    assert set(mix) == set(expected)
    for category, share in expected.items():
        assert mix[category] / len(raised) == pytest.approx(share, abs=0.015), category
    by_lsoa = Counter(s.lsoa for s in raised)
    fms = Counter()
    for (lsoa, _), n in reference.reports.items():
        fms[lsoa] += n
    lsoas = sorted(by_lsoa)
    assert spearman([by_lsoa[x] for x in lsoas], [fms[x] for x in lsoas]) > 0.8


def test_every_signal_is_valid_and_on_a_street_of_its_lsoa(gazetteer, reference):
    model = SignalModel(gazetteer, reference, seed=3)
    proj = gazetteer.projector
    hows = Counter()
    for sim in islice(model.simulate(START), 3_000):
        signal = CouncilSignal.model_validate_json(sim.signal.model_dump_json())
        assert signal == sim.signal
        street = gazetteer.streets[sim.street_id]
        assert street.lsoa_code == sim.lsoa
        loc = signal.location
        if loc.street_id is not None:
            hows["street_id"] += 1
            assert loc.street_id == sim.street_id
        elif loc.address is not None:
            hows["address"] += 1
            assert gazetteer.match_address(loc.address) is street
        else:
            hows["point"] += 1
            assert gazetteer.contains(loc.lon, loc.lat)  # ingest rejects points outside the borough
            x, y = proj.xy([loc.lon], [loc.lat])
            assert shapely.distance(proj.to_metric(street.geometry), shapely.points(x[0], y[0])) < 25
    assert min(hows.values()) > 50, hows


def test_withdrawals_reuse_an_earlier_subject_and_place(gazetteer, reference):
    model = SignalModel(gazetteer, reference, seed=9)
    end = START + dt.timedelta(days=60)
    raised: dict[str, CouncilSignal] = {}
    withdrawn = 0
    last = None
    for s in model.signals(START, end):
        assert last is None or s.occurred_at >= last or s.occurred_at < START
        last = max(last or s.occurred_at, s.occurred_at)
        assert s.occurred_at <= end
        if s.action == "raised":
            assert s.subject_ref not in raised
            raised[s.subject_ref] = s
        else:
            withdrawn += 1
            first = raised.pop(s.subject_ref)  # raises KeyError if never raised, or withdrawn twice
            assert (first.category, first.location) == (s.category, s.location)
            assert s.occurred_at >= first.occurred_at
    assert withdrawn > 1_000
    assert raised  # some are never closed: they expire in the aggregator


def test_the_open_register_comes_first_and_is_within_lifetimes(gazetteer, reference):
    model = SignalModel(gazetteer, reference, seed=4)
    end = START + dt.timedelta(days=10)
    signals = list(model.signals(START, end))
    before = [s for s in signals if s.occurred_at < START]
    assert before and all(s.action == "raised" for s in before)
    assert all(START - s.occurred_at <= dt.timedelta(days=info(s.category).lifetime_days) for s in before)
    persons = Counter(s.category for s in before)
    assert persons[Category.ISOLATION] > 1_000 and persons[Category.OVERCROWDING] > 1_000
    assert len(signals) == pytest.approx(model.expected_events(10), rel=0.1)
    assert sum(1 for _ in model.signals(START, end, warm=False)) == pytest.approx(
        model.expected_events(10, warm=False), rel=0.1
    )


def test_same_seed_same_signals_and_scale_scales(gazetteer, reference):
    def first(seed, scale=1.0):
        return list(islice(SignalModel(gazetteer, reference, seed=seed, scale=scale).signals(START), 200))

    assert first(1) == first(1)
    assert first(1) != first(2)
    end = START + dt.timedelta(days=5)
    small = sum(1 for _ in SignalModel(gazetteer, reference, seed=1).signals(START, end, warm=False))
    big = sum(1 for _ in SignalModel(gazetteer, reference, seed=1, scale=4).signals(START, end, warm=False))
    assert big == pytest.approx(4 * small, rel=0.1)
