"""Quarterly ward trends (rule 5): stored monthly ward totals summed per quarter, compared with noise in mind.

A trend is post-processing of the stored noisy counts (no new epsilon), and only its direction
(up, down, steady) ever leaves the aggregator, never a total. A ward gets a trend for a quarter
only when both that quarter and the one before have a safe total in all three months (no partial
quarters; a month whose total secondary suppression removed counts as missing, rule 7).

Tolerance: the difference of two quarter sums carries the noise of every unit draw summed into
its six monthly totals plus their six roundings. `trend_tolerance` is the half-width of that
noise's 95% range (normal approximation: 1.96 standard deviations; the sum of many discrete
Laplace draws is close to normal, and for few draws this is within a few percent of the exact
quantile). A change smaller than that is "steady", so noise alone turns a trend up or down in
about one ward and category in twenty, and a real change must clear the noise to show.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from collections.abc import Iterable, Mapping, Set
from dataclasses import dataclass
from typing import Literal

from shared.contracts import Trend

from .bands import trend
from .periods import parse_period
from .policy import DisclosurePolicy

__all__ = [
    "TREND_Z",
    "QuarterResult",
    "TrendWithheld",
    "TrendWithholdReason",
    "WardTotal",
    "WardTrend",
    "compute_ward_trends",
    "draw_variance",
    "period_start",
    "previous_quarter",
    "quarter_months",
    "quarter_of",
    "trend_tolerance",
]

TREND_Z = 1.96  # 95% two-sided: noise alone flips about 1 trend in 20
_QUARTER = re.compile(r"^(\d{4})-Q([1-4])$")

TrendWithholdReason = Literal[
    "quarter_incomplete",  # a month of this or the previous quarter has no release with ward totals
    "secondary_suppression",  # in some month of the two quarters the ward had no safe total (rule 7)
]


@dataclass(frozen=True, slots=True)
class WardTotal:
    """One month's stored ward total: internal only, never published as a number."""

    total: int  # rounded sum of the ward's noisy unit counts
    cells: int  # how many noisy unit counts it sums (for the noise it carries)


@dataclass(frozen=True, slots=True)
class WardTrend:
    """A published ward trend: only the direction leaves the aggregator."""

    ward_code: str
    category: str
    trend: Trend


@dataclass(frozen=True, slots=True)
class TrendWithheld:
    """A ward trend not published, and why (rule 8)."""

    ward_code: str
    category: str
    reason: TrendWithholdReason


@dataclass(frozen=True, slots=True)
class QuarterResult:
    quarter: str
    trends: tuple[WardTrend, ...]
    withheld: tuple[TrendWithheld, ...]


def _parse_quarter(quarter: str) -> tuple[int, int]:
    match = _QUARTER.match(quarter)
    if match is None:
        raise ValueError(f"quarter must be YYYY-Qn, got {quarter!r}")
    return int(match[1]), int(match[2])


def quarter_of(period: str) -> str:
    """The quarter (`YYYY-Qn`) a calendar month (`YYYY-MM`) belongs to."""
    year, month = parse_period(period)
    return f"{year:04d}-Q{(month - 1) // 3 + 1}"


def quarter_months(quarter: str) -> tuple[str, str, str]:
    """The three `YYYY-MM` months of a quarter, in order."""
    year, q = _parse_quarter(quarter)
    first = 3 * q - 2
    return (f"{year:04d}-{first:02d}", f"{year:04d}-{first + 1:02d}", f"{year:04d}-{first + 2:02d}")


def previous_quarter(quarter: str) -> str:
    year, q = _parse_quarter(quarter)
    return f"{year - 1:04d}-Q4" if q == 1 else f"{year:04d}-Q{q - 1}"


def period_start(period: str) -> dt.date:
    """First day of a `YYYY-MM` month or a `YYYY-Qn` quarter."""
    if _QUARTER.match(period):
        return dt.date.fromisoformat(f"{quarter_months(period)[0]}-01")
    year, month = parse_period(period)
    return dt.date(year, month, 1)


def draw_variance(policy: DisclosurePolicy) -> float:
    """Variance of one unit's noise draw: discrete Laplace of scale 1/epsilon_per_cell."""
    if not policy.noise:
        return 0.0
    alpha = math.exp(-policy.epsilon_per_cell)
    return 2 * alpha / (1 - alpha) ** 2


def trend_tolerance(cells: int, totals: int, policy: DisclosurePolicy) -> int:
    """Half-width of the 95% range of noise in a difference of quarter sums.

    `cells`: noisy unit counts summed into the two quarters' totals; `totals`: how many rounded
    monthly totals (each off by up to half the rounding base, taken as uniform).
    """
    variance = cells * draw_variance(policy) + totals * policy.rounding_base**2 / 12
    return math.ceil(TREND_Z * math.sqrt(variance))


def compute_ward_trends(
    quarter: str,
    released: Set[str],
    totals: Mapping[tuple[str, str, str], WardTotal],
    wards: Iterable[str],
    policy: DisclosurePolicy,
) -> QuarterResult:
    """Trends per (ward, person category) of `quarter` against the quarter before.

    `released`: the months released with their ward totals kept; `totals`: stored totals by
    (month, ward_code, category), only where they were safe; `wards`: the wards to decide on, those
    that can be named (units outside any ward have no ward to publish). Each of these wards gets, per
    person category, either a trend or a withheld row.
    """
    this, last = quarter_months(quarter), quarter_months(previous_quarter(quarter))
    months = (*this, *last)
    complete = all(m in released for m in months)
    ward_codes = sorted({w for w in wards if w})
    trends, withheld = [], []
    for ward in ward_codes:
        for category in policy.person_categories:
            if not complete:
                withheld.append(TrendWithheld(ward, category, "quarter_incomplete"))
                continue
            found = [t for m in months if (t := totals.get((m, ward, category))) is not None]
            if len(found) != len(months):
                withheld.append(TrendWithheld(ward, category, "secondary_suppression"))
                continue
            tolerance = trend_tolerance(sum(t.cells for t in found), len(found), policy)
            now_sum, then_sum = (sum(t.total for t in part) for part in (found[:3], found[3:]))
            trends.append(WardTrend(ward, category, trend(now_sum, then_sum, tolerance)))
    return QuarterResult(quarter, tuple(trends), tuple(withheld))
