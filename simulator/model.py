"""The pure generation model: a seeded stream of realistic council signals for one borough.

Raised signals arrive as a Poisson process in simulated time. Each category's share of arrivals is
fixed by BASELINE_PER_DAY (times `scale`); where in the borough it lands follows the real data:
- isolation flags: LSOAs weighted by their loneliness rate (`perc`; LSOAs are built to hold
  similar populations, so a rate is proportional to a count), then a street of that LSOA weighted
  by its address count (people live at addresses);
- overcrowding flags: LSOAs weighted by their address count (no per-LSOA data is public);
- environmental reports: (LSOA, category) cells weighted by the real FixMyStreet report counts,
  then a street of that LSOA weighted by its length (reports are made along streets).
Each raised signal draws a lifetime: with probability CLOSE_PROBABILITY it is withdrawn/closed
after an exponential time (mean LIFETIME_FACTOR x the category's lifetime), reusing its
subject_ref and location; the rest are never closed (councils forget) and expire in the aggregator.
"""

from __future__ import annotations

import datetime as dt
import heapq
import math
import random
from bisect import bisect_right
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from itertools import accumulate

import numpy as np
import shapely

from shared.contracts import Category, CouncilSignal, Location, Sensitivity, info
from shared.gazetteer.model import Gazetteer

from .reference import Reference

__all__ = [
    "BASELINE_PER_DAY",
    "CLOSE_PROBABILITY",
    "LIFETIME_FACTOR",
    "LocationMix",
    "SignalModel",
    "Simulated",
]

# Camden at scale 1, raised signals per day. Assumptions, not data: about 3,000 isolation flags and
# 4,000 overcrowding flags open at once (of ~9,000 older people living alone and ~100k households),
# and ~44,000 street environment reports a year (FixMyStreet's share of them, in the CSV, is small).
BASELINE_PER_DAY: dict[str, float] = {"isolation": 20.0, "overcrowding": 12.0, "place": 120.0}
CLOSE_PROBABILITY = {Sensitivity.PERSON: 0.6, Sensitivity.PLACE: 0.85}
LIFETIME_FACTOR = {Sensitivity.PERSON: 1.0, Sensitivity.PLACE: 0.4}
JITTER_M = 6.0  # a geocoded point is rarely exactly on the centre line
POINT_TRIES = 5  # points on a boundary street may fall outside the borough: try another spot
_DAY_S = 86_400.0


@dataclass(frozen=True)
class LocationMix:
    """How often a signal is located by a point, a gazetteer street id, or a postal address."""

    point: float = 0.8
    street_id: float = 0.1
    address: float = 0.1


@dataclass(frozen=True)
class Simulated:
    """A generated signal with the ground truth tests need: the street and LSOA it was put on."""

    signal: CouncilSignal
    street_id: str
    lsoa: str


@dataclass(frozen=True)
class _Open:
    category: Category
    subject_ref: str
    location: Location
    street_id: str
    lsoa: str


class _Picker:
    """random.choices with precomputed cumulative weights (fast for repeated draws)."""

    def __init__(self, items: list, weights: Iterable[float]) -> None:
        self.items, self.cum = items, list(accumulate(weights))
        if not items or self.cum[-1] <= 0:
            raise ValueError("nothing to pick from")

    def __call__(self, rng: random.Random):
        return self.items[bisect_right(self.cum, rng.random() * self.cum[-1])]


class SignalModel:
    """Generates CouncilSignals for one council from its gazetteer and reference data."""

    def __init__(
        self,
        gazetteer: Gazetteer,
        reference: Reference,
        *,
        council: str = "camden",
        seed: int | None = None,
        scale: float = 1.0,
        categories: Iterable[Category] | None = None,
        location_mix: LocationMix = LocationMix(),
        personal_fields: float = 0.5,
    ) -> None:
        if scale <= 0:
            raise ValueError("scale must be positive")
        self.seed = random.SystemRandom().randrange(2**32) if seed is None else seed
        self.council, self.scale, self.personal_fields = council, scale, personal_fields
        self._gaz, self._proj = gazetteer, gazetteer.projector
        self._mix = _Picker(
            ["point", "street_id", "address"],
            [location_mix.point, location_mix.street_id, location_mix.address],
        )
        self._index_streets(gazetteer)
        rates = self._category_rates(reference, categories)
        self.per_day = sum(rates.values()) * scale
        self._category = _Picker(list(rates), rates.values())
        self._lsoa = self._lsoa_pickers(reference, rates)

    # --- set-up -----------------------------------------------------------------------------

    def _index_streets(self, gazetteer: Gazetteer) -> None:
        by_lsoa: dict[str, list[str]] = defaultdict(list)
        for sid, street in sorted(gazetteer.streets.items()):
            if street.lsoa_code:
                by_lsoa[street.lsoa_code].append(sid)
        if not by_lsoa:
            raise ValueError("the gazetteer's streets have no LSOA codes")
        ids = [sid for sids in by_lsoa.values() for sid in sids]
        metric = self._proj.to_metric(np.asarray([gazetteer.streets[i].geometry for i in ids], dtype=object))
        self._metric = dict(zip(ids, metric, strict=True))
        self._length = dict(zip(ids, shapely.length(metric).tolist(), strict=True))
        self._by_length = {
            lsoa: _Picker(sids, [self._length[s] for s in sids]) for lsoa, sids in by_lsoa.items()
        }
        self._by_address = {}
        for lsoa, sids in by_lsoa.items():
            counts = [gazetteer.streets[s].address_count for s in sids]
            self._by_address[lsoa] = _Picker(sids, counts) if sum(counts) else self._by_length[lsoa]
        self._lsoa_addresses = {
            lsoa: sum(gazetteer.streets[s].address_count for s in sids) or len(sids)
            for lsoa, sids in by_lsoa.items()
        }
        keys = defaultdict(list)
        for s in gazetteer.streets.values():
            keys[s.norm_name].append(s.id)
        self._unique_name = {sids[0] for sids in keys.values() if len(sids) == 1}

    def _category_rates(self, reference, categories) -> dict[Category, float]:
        rates = {
            Category.ISOLATION: BASELINE_PER_DAY["isolation"],
            Category.OVERCROWDING: BASELINE_PER_DAY["overcrowding"],
        }
        for category, share in reference.category_mix().items():
            rates[category] = BASELINE_PER_DAY["place"] * share
        if categories is not None:
            wanted = set(categories)
            rates = {c: r for c, r in rates.items() if c in wanted}
        if not rates:
            raise ValueError("no category left to simulate")
        return rates

    def _lsoa_pickers(self, reference: Reference, rates) -> dict[Category, _Picker]:
        known = sorted(set(self._by_length))
        pickers = {}
        for category in rates:
            if category is Category.ISOLATION:
                weights = [reference.loneliness.get(lsoa, 0.0) for lsoa in known]
            elif category is Category.OVERCROWDING:
                weights = [self._lsoa_addresses[lsoa] for lsoa in known]
            else:
                weights = [reference.reports.get((lsoa, category), 0.0) for lsoa in known]
            pickers[category] = _Picker(known, weights)
        return pickers

    # --- expectations (used to choose a scale or a window) ---------------------------------

    def _shares(self) -> Iterator[tuple[Category, float]]:
        cum = [0.0, *self._category.cum]
        for i, category in enumerate(self._category.items):
            yield category, (cum[i + 1] - cum[i]) / cum[-1]

    def expected_events(self, window_days: float, *, warm: bool = True) -> float:
        """Expected signals `simulate` yields for a window of this length (at this model's scale):
        the open register at its start and its withdrawals (when `warm`), then raises and the
        withdrawals within the window."""
        total = 0.0
        for category, share in self._shares():
            (mean, p), life = self._lifetime(category), info(category).lifetime_days
            x = window_days / mean
            in_window = window_days * (1 + p * (1 - (1 - math.exp(-x)) / x))
            closers = p * mean * (1 - math.exp(-life / mean))  # exponential lifetimes: memoryless
            register = (1 - p) * life + closers * (2 - math.exp(-x)) if warm else 0.0
            total += share * (in_window + register)
        return self.per_day * total

    @staticmethod
    def _lifetime(category: Category) -> tuple[float, float]:
        c = info(category)
        return c.lifetime_days * LIFETIME_FACTOR[c.sensitivity], CLOSE_PROBABILITY[c.sensitivity]

    @property
    def warm_up_days(self) -> int:
        return max(info(c).lifetime_days for c in self._category.items)

    # --- generation ------------------------------------------------------------------------

    def signals(
        self, start: dt.datetime, end: dt.datetime | None = None, *, warm: bool = True
    ) -> Iterator[CouncilSignal]:
        """Signals in time order; see `simulate`."""
        return (s.signal for s in self.simulate(start, end, warm=warm))

    def simulate(
        self, start: dt.datetime, end: dt.datetime | None = None, *, warm: bool = True
    ) -> Iterator[Simulated]:
        """Signals from `start` (to `end`, or endless), in time order, each with its true street.

        When `warm`, the run begins with the register a council already holds at `start`: the
        signals raised before it (within their category's lifetime) that are still open, with
        their real, earlier occurred_at. Withdrawals of signals never yielded are not yielded.
        """
        if start.tzinfo is None:
            raise ValueError("start must be timezone-aware")
        limit = None if end is None else (end - start).total_seconds()
        rng = random.Random(self.seed)
        pending: list[tuple[float, int, _Open]] = []
        t, seq = (-self.warm_up_days * _DAY_S if warm else 0.0), 0
        while True:
            t_raise = t + rng.expovariate(self.per_day / _DAY_S)
            if pending and pending[0][0] <= t_raise:
                t, number, opened = heapq.heappop(pending)
                action = "withdrawn"
            else:
                t, seq, action = t_raise, seq + 1, "raised"
                number = seq
                category = self._category(rng)
                (mean, p_close), life = self._lifetime(category), info(category).lifetime_days
                closes_at = t + rng.expovariate(1 / mean) * _DAY_S if rng.random() < p_close else None
                if t < 0 and (t < -life * _DAY_S or (closes_at is not None and closes_at < 0)):
                    continue  # closed or expired before the run starts: not in the register
                opened = self._open(rng, seq, category)
                if closes_at is not None:
                    heapq.heappush(pending, (closes_at, seq, opened))
            if limit is not None and t > limit:
                return
            yield self._signal(rng, number, opened, action, start + dt.timedelta(seconds=t))

    def _open(self, rng: random.Random, seq: int, category: Category) -> _Open:
        lsoa = self._lsoa[category](rng)
        person = info(category).sensitivity is Sensitivity.PERSON
        street_id = (self._by_address if person else self._by_length)[lsoa](rng)
        prefix = {Category.ISOLATION: "ASC", Category.OVERCROWDING: "HSG"}.get(category, "RPT")
        ref = f"{prefix}-{self.seed}-{seq:07d}"
        return _Open(category, ref, self._locate(rng, street_id), street_id, lsoa)

    def _locate(self, rng: random.Random, street_id: str) -> Location:
        how = self._mix(rng)
        if how == "address" and street_id in self._unique_name:
            return Location(address=f"{rng.randint(1, 120)} {self._gaz.streets[street_id].name}, London")
        if how == "street_id":
            return Location(street_id=street_id)
        line = self._metric[street_id]
        for _ in range(POINT_TRIES):
            p = shapely.line_interpolate_point(line, rng.random() * self._length[street_id])
            jittered = shapely.points(p.x + rng.gauss(0, JITTER_M / 2), p.y + rng.gauss(0, JITTER_M / 2))
            wgs84 = self._proj.to_wgs84(jittered)
            lat, lon = round(wgs84.y, 6), round(wgs84.x, 6)
            if self._gaz.contains(lon, lat):
                return Location(lat=lat, lon=lon)
        # A street that runs along the borough boundary: a council system would send the street.
        return Location(street_id=street_id)

    def _signal(self, rng, number: int, opened: _Open, action, occurred_at) -> Simulated:
        personal = {}
        if rng.random() < self.personal_fields:
            n = number % 1000
            personal = {
                "name": f"Test Resident {n}",
                "email": f"test.resident.{n}@example.invalid",
                "phone": f"07700 900{n:03d}",  # Ofcom's drama range: never a real line
                "notes": f"Synthetic test record {number} ({opened.category}, {action}).",
            }
        signal = CouncilSignal(
            event_id=f"sim-{self.council}-{self.seed}-{number:08d}-{action[0]}",
            category=opened.category,
            action=action,
            subject_ref=opened.subject_ref,
            occurred_at=occurred_at,
            location=opened.location,
            **personal,
        )
        return Simulated(signal, opened.street_id, opened.lsoa)
