"""Statistical disclosure control for the aggregator (docs/privacy.md), pure and broker-free.

Where each rule is enforced: `DisclosurePolicy` holds every threshold. `tally` counts each
subject once per category in one fixed unit and leaves out subjects at the annual cap (rule 6).
`compute_person_release` refuses a month that has not ended (rule 5), withholds units under 40
addresses or not publishable (rule 3), adds noise to every cell of every publishable unit, zeros
included, shows a cell only if its noisy count is >= 8 and then only as a band (rule 4), applies
secondary suppression per ward (rule 7) and lists every hold-back with its reason (rule 8).
`place_counts` publishes exact place counts per street or, for streets under 8 addresses, per
indivisible place unit (rule 2).

Epsilon accounting: a monthly release costs each subject `epsilon_per_release` (0.5). Units are
disjoint, so within a category a subject touches one count (parallel composition); the 0.5 is
split evenly over the policy's person categories (0.25 each by default), so a subject in every
category still spends 0.5 (sequential composition). The ledger charges every admitted subject
0.5 per period, keyed (subject, period) so re-runs are free, and admits no one past 6.0 a year.
Ward totals and quarterly trends are sums of the stored noisy counts: post-processing, no spend.
`compute_ward_trends` publishes only a direction per ward and person category, for full quarters
whose every monthly ward total survived secondary suppression, steady unless the change clears
the noise's 95% range (rule 5).

Noise: discrete Laplace from OpenDP, scale 1/epsilon_per_cell, drawn once per (period, unit,
category). The result carries `new_draws` (noisy counts) for the caller to persist before it
publishes; later runs pass them back as `noise_store` and they are reused as they are, so a
month's output never changes and repeated requests cannot average the noise away.
"""

from .bands import band_for, round_to_base, trend
from .ledger import Ledger, LedgerKey, Tally, release_spend, tally
from .noise import Sampler, draw_noise
from .periods import ReleaseNotDue, parse_period, period_end, release_due
from .place import PlaceArea, StreetInfo, place_area, place_counts
from .policy import DEFAULT_PERSON_CATEGORIES, DisclosurePolicy
from .quarters import (
    TREND_Z,
    QuarterResult,
    TrendWithheld,
    TrendWithholdReason,
    WardTotal,
    WardTrend,
    compute_ward_trends,
    period_start,
    previous_quarter,
    quarter_months,
    quarter_of,
    trend_tolerance,
)
from .release import (
    Cell,
    DrawKey,
    ReleaseResult,
    UnitInfo,
    Withheld,
    WithholdReason,
    compute_person_release,
)
from .suppression import CellId, WardKey, secondary_suppression

__all__ = [
    "DEFAULT_PERSON_CATEGORIES",
    "TREND_Z",
    "Cell",
    "CellId",
    "DisclosurePolicy",
    "DrawKey",
    "Ledger",
    "LedgerKey",
    "PlaceArea",
    "QuarterResult",
    "ReleaseNotDue",
    "ReleaseResult",
    "Sampler",
    "StreetInfo",
    "Tally",
    "TrendWithheld",
    "TrendWithholdReason",
    "UnitInfo",
    "WardKey",
    "WardTotal",
    "WardTrend",
    "Withheld",
    "WithholdReason",
    "band_for",
    "compute_person_release",
    "compute_ward_trends",
    "draw_noise",
    "parse_period",
    "period_end",
    "period_start",
    "place_area",
    "place_counts",
    "previous_quarter",
    "quarter_months",
    "quarter_of",
    "release_due",
    "release_spend",
    "round_to_base",
    "secondary_suppression",
    "tally",
    "trend",
    "trend_tolerance",
]
