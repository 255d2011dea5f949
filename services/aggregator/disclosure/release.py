"""The monthly person-category release: fixed units, stored noise, thresholds, bands, audit."""

from __future__ import annotations

import datetime as dt
from collections import Counter
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Literal

from shared.contracts import Band

from .bands import band_for, round_to_base
from .noise import Sampler, draw_noise
from .periods import release_due
from .policy import DisclosurePolicy
from .suppression import CellId, WardKey, secondary_suppression

__all__ = [
    "Cell",
    "DrawKey",
    "ReleaseResult",
    "UnitInfo",
    "Withheld",
    "WithholdReason",
    "compute_person_release",
]

DrawKey = tuple[str, str, str]  # (period, unit_id, category)
WithholdReason = Literal[
    "below_threshold",
    "unit_too_small",
    "secondary_suppression",
    "budget_exhausted",
    "unit_not_publishable",
]


@dataclass(frozen=True, slots=True)
class UnitInfo:
    """A fixed person publication unit, from the gazetteer alone (rule 3)."""

    address_count: int
    ward_code: str
    publishable: bool = True


@dataclass(frozen=True, slots=True)
class Cell:
    """A published unit/category: only `band` may leave the aggregator."""

    unit_id: str
    category: str
    band: Band
    rounded_count: int  # noisy count rounded to the base: internal (operators) only, never public


@dataclass(frozen=True, slots=True)
class Withheld:
    """A held-back unit/category and why, for the operators' audit (rule 8)."""

    unit_id: str
    category: str
    reason: WithholdReason


@dataclass(frozen=True, slots=True)
class ReleaseResult:
    period: str
    published: tuple[Cell, ...]
    withheld: tuple[Withheld, ...]
    # Rounded sums of noisy unit counts per (ward, category), only where safe (rule 7). Internal:
    # for quarterly ward trends, never published as numbers.
    ward_totals: Mapping[WardKey, int]
    # Noisy counts drawn by this call, which the caller must persist before publishing anything.
    new_draws: Mapping[DrawKey, int] = field(default_factory=dict)
    # How many noisy unit counts each ward total sums: the noise it carries (quarterly trends).
    ward_cells: Mapping[WardKey, int] = field(default_factory=dict)


def _unit_reason(info: UnitInfo | None, policy: DisclosurePolicy) -> WithholdReason | None:
    if info is None or not info.publishable:
        return "unit_not_publishable"
    if info.address_count < policy.min_unit_addresses:
        return "unit_too_small"
    return None


def compute_person_release(
    period: str,
    counts: Mapping[CellId, int],
    units: Mapping[str, UnitInfo],
    policy: DisclosurePolicy,
    noise_store: Mapping[DrawKey, int] | None = None,
    *,
    now: dt.datetime,
    excluded: Mapping[CellId, int] | None = None,
    sampler: Sampler = draw_noise,
) -> ReleaseResult:
    """Release one ended calendar month of person-category counts.

    `counts`: distinct subjects active in the month per (unit_id, category), each subject in at
    most one unit per category (see `tally`). `noise_store`: noisy counts already drawn for this
    period; they are reused as they are, so a period's output never changes once drawn, whatever
    the counts are now. `excluded`: subjects left out per cell because their annual budget is
    spent. Every publishable unit gets noise in every person category, zeros included: otherwise
    whether a cell could appear at all would reveal whether anyone is in it.
    """
    release_due(period, now, policy.release_delay_days)
    unknown = {category for _, category in counts} - set(policy.person_categories)
    if unknown:
        raise ValueError(f"not person categories of this policy: {sorted(unknown)}")
    if any(n < 0 for n in counts.values()):
        raise ValueError("counts must not be negative")
    store = noise_store or {}
    excluded = excluded or {}
    epsilon = policy.epsilon_per_cell
    noisy: dict[CellId, int] = {}
    new_draws: dict[DrawKey, int] = {}
    withheld: list[Withheld] = []
    cells = {(u, c) for u in units for c in policy.person_categories} | set(counts)
    for unit_id, category in sorted(cells):
        cell = (unit_id, category)
        held_back = counts.get(cell, 0) > 0 or excluded.get(cell, 0) > 0
        reason = _unit_reason(units.get(unit_id), policy)
        if reason is not None:
            if held_back:
                withheld.append(Withheld(unit_id, category, reason))
            continue
        key = (period, unit_id, category)
        if key in store:
            noisy[cell] = store[key]
        elif policy.noise:
            noisy[cell] = new_draws[key] = sampler(counts.get(cell, 0), epsilon)
        else:
            noisy[cell] = counts.get(cell, 0)
        if noisy[cell] < policy.min_subjects and held_back:
            why: WithholdReason = "budget_exhausted" if excluded.get(cell, 0) else "below_threshold"
            withheld.append(Withheld(unit_id, category, why))
    shown = {cell for cell, n in noisy.items() if n >= policy.min_subjects}
    ward_totals: dict[WardKey, int] = {}
    ward_cells: Counter[WardKey] = Counter()
    if policy.ward_aggregates:
        ward_of = {unit_id: units[unit_id].ward_code for unit_id, _ in noisy}
        extra, ward_totals = secondary_suppression(noisy, shown, ward_of, policy.rounding_base)
        ward_cells.update(wk for u, c in noisy if (wk := (ward_of[u], c)) in ward_totals)
        shown -= extra
        withheld.extend(Withheld(u, c, "secondary_suppression") for u, c in sorted(extra))
    published = tuple(
        Cell(u, c, band, round_to_base(noisy[(u, c)], policy.rounding_base))
        for u, c in sorted(shown)
        if (band := band_for(noisy[(u, c)], policy)) is not None
    )
    return ReleaseResult(period, published, tuple(withheld), ward_totals, new_draws, dict(ward_cells))
