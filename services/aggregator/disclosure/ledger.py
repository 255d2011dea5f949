"""The privacy ledger (rule 6): epsilon spent per subject per calendar year, capped."""

from __future__ import annotations

from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from types import MappingProxyType

from .periods import parse_period
from .policy import DisclosurePolicy
from .suppression import CellId

__all__ = ["Ledger", "LedgerKey", "Tally", "release_spend", "tally"]

LedgerKey = tuple[str, str]  # (subject_key, period)
_SLACK = 1e-9  # float sums of e.g. 0.1 must not wrongly exclude a subject exactly at the cap


class Ledger:
    """Epsilon charged per (subject_key, period); a subject's year is the sum over its periods.

    Keyed by period so that charging a release again (a retried or repeated run, which reuses
    the stored noise and so spends nothing new) is a no-op rather than a second charge.
    """

    def __init__(self, entries: Mapping[LedgerKey, float] | None = None) -> None:
        self._entries: dict[LedgerKey, float] = {}
        self._annual: defaultdict[tuple[str, int], float] = defaultdict(float)
        self.record(entries or {})

    @property
    def entries(self) -> Mapping[LedgerKey, float]:
        return MappingProxyType(self._entries)

    def spent(self, subject_key: str, year: int) -> float:
        return self._annual.get((subject_key, year), 0.0)

    def admits(self, subject_key: str, period: str, policy: DisclosurePolicy) -> bool:
        """Whether the subject may be counted in this period's release without passing the cap."""
        if (subject_key, period) in self._entries:
            return True
        year = parse_period(period)[0]
        spend = self.spent(subject_key, year) + policy.epsilon_per_release
        return spend <= policy.annual_epsilon_cap + _SLACK

    def record(self, charges: Mapping[LedgerKey, float]) -> None:
        """Add charges; a (subject, period) already charged keeps its first charge."""
        for (subject_key, period), epsilon in charges.items():
            if (subject_key, period) not in self._entries:
                self._entries[(subject_key, period)] = epsilon
                self._annual[(subject_key, parse_period(period)[0])] += epsilon


def release_spend(subjects: Iterable[str], period: str, policy: DisclosurePolicy) -> dict[LedgerKey, float]:
    """What a release costs: the whole per-release epsilon for every subject counted in it."""
    return {(subject, period): policy.epsilon_per_release for subject in subjects}


@dataclass(frozen=True, slots=True)
class Tally:
    counts: Mapping[CellId, int]  # distinct admitted subjects per (unit_id, category)
    excluded: Mapping[CellId, int]  # subjects left out because their annual budget is spent
    charges: Mapping[LedgerKey, float]  # new ledger rows, persisted with the release


def tally(
    period: str,
    memberships: Mapping[tuple[str, str], str],
    ledger: Ledger,
    policy: DisclosurePolicy,
) -> Tally:
    """Count one month's subjects per cell, leaving out anyone the release would push past the cap.

    `memberships` maps (subject_key, category) to the one unit the subject counts in that month
    (the caller picks, e.g. the unit of the latest signal): one unit per category keeps each
    cell's sensitivity at 1. Leaving a capped subject out of every count is an individual
    privacy filter: their loss stops growing, and nothing published depends on them any more.
    """
    counts: Counter[CellId] = Counter()
    excluded: Counter[CellId] = Counter()
    admitted: dict[str, bool] = {}
    for (subject, category), unit_id in memberships.items():
        if category not in policy.person_categories:
            raise ValueError(f"{category!r} is not a person category of this policy")
        if subject not in admitted:
            admitted[subject] = ledger.admits(subject, period, policy)
        (counts if admitted[subject] else excluded)[(unit_id, category)] += 1
    new = (s for s, ok in admitted.items() if ok and (s, period) not in ledger.entries)
    return Tally(dict(counts), dict(excluded), release_spend(new, period, policy))
