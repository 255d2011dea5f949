"""The disclosure policy: every threshold of docs/privacy.md as a documented, validated setting."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared import privacy
from shared.contracts import CATALOGUE, Sensitivity

__all__ = ["DEFAULT_PERSON_CATEGORIES", "DisclosurePolicy"]

DEFAULT_PERSON_CATEGORIES: tuple[str, ...] = tuple(
    sorted(str(c.code) for c in CATALOGUE.values() if c.sensitivity is Sensitivity.PERSON)
)


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    """Statistical disclosure control settings; defaults are docs/privacy.md's.

    Hysteresis (rule 5, "a band change must hold for the whole month") needs no setting: a person
    release counts the distinct subjects active in one whole calendar month, is computed once after
    that month ends and is never recomputed (its noisy counts are stored), so a published band is a
    single value for the whole month and cannot flicker within it.
    """

    min_subjects: int = privacy.MIN_SUBJECTS  # rule 4
    min_unit_addresses: int = privacy.MIN_UNIT_ADDRESSES  # rule 3
    min_street_addresses: int = privacy.MIN_STREET_ADDRESSES  # rule 2
    rounding_base: int = privacy.ROUNDING_BASE  # rule 4
    several_from: int = privacy.SEVERAL_FROM  # rule 4
    many_from: int = privacy.MANY_FROM  # rule 4
    epsilon_per_release: float = privacy.EPSILON_PER_RELEASE  # rule 6
    annual_epsilon_cap: float = privacy.ANNUAL_EPSILON_CAP  # rule 6
    noise: bool = True  # rule 6: off only for tests and demonstrations, never in production
    # The categories that share one release's epsilon. Fixed in advance: the split must not
    # depend on which categories happen to have data.
    person_categories: tuple[str, ...] = field(default=DEFAULT_PERSON_CATEGORIES)
    # Secondary suppression (rule 7) is needed only when ward aggregates of unit counts are kept
    # for publication (rule 5's quarterly ward trends); unit bands alone never overlap.
    ward_aggregates: bool = True
    release_delay_days: int = 0  # a month is released this many days after it ends, at the earliest

    def __post_init__(self) -> None:
        if not 0 < self.min_subjects < self.several_from < self.many_from:
            raise ValueError("need 0 < min_subjects < several_from < many_from")
        if min(self.min_unit_addresses, self.min_street_addresses, self.rounding_base) < 1:
            raise ValueError("address floors and rounding_base must be at least 1")
        if not 0 < self.epsilon_per_release <= self.annual_epsilon_cap:
            raise ValueError("need 0 < epsilon_per_release <= annual_epsilon_cap")
        if not self.person_categories or len(set(self.person_categories)) != len(self.person_categories):
            raise ValueError("person_categories must be non-empty and distinct")
        if self.release_delay_days < 0:
            raise ValueError("release_delay_days must not be negative")

    @property
    def epsilon_per_cell(self) -> float:
        """Epsilon of one unit/category count: the release's budget split across categories.

        A subject is counted in at most one unit per category (units are disjoint), so by parallel
        composition across units and sequential composition across categories a release costs
        each subject at most `epsilon_per_release`.
        """
        return self.epsilon_per_release / len(self.person_categories)
