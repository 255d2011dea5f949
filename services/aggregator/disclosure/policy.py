"""The disclosure policy: every threshold of PRIVACY.md as a documented, validated setting."""

from __future__ import annotations

from dataclasses import dataclass, field

from shared.contracts import CATALOGUE, Sensitivity

__all__ = ["DEFAULT_PERSON_CATEGORIES", "DisclosurePolicy"]

DEFAULT_PERSON_CATEGORIES: tuple[str, ...] = tuple(
    sorted(str(c.code) for c in CATALOGUE.values() if c.sensitivity is Sensitivity.PERSON)
)


@dataclass(frozen=True, slots=True)
class DisclosurePolicy:
    """Statistical disclosure control settings; defaults are PRIVACY.md's.

    Hysteresis (rule 5, "a band change must hold for the whole month") needs no setting: a person
    release counts the distinct subjects active in one whole calendar month, is computed once after
    that month ends and is never recomputed (its noisy counts are stored), so a published band is a
    single value for the whole month and cannot flicker within it.
    """

    min_subjects: int = 8  # rule 4: a cell shows only if its noisy count is at least this
    min_unit_addresses: int = 40  # rule 3: a person publication unit covers at least this many
    min_street_addresses: int = 8  # rule 2: smaller streets publish place needs at their place unit
    rounding_base: int = 5  # rule 4: internal counts are rounded to the nearest multiple of this
    several_from: int = 15  # rule 4: "some" is min_subjects..several_from-1
    many_from: int = 30  # rule 4: "several" is several_from..many_from-1, "many" from here
    epsilon_per_release: float = 0.5  # rule 6: per subject per monthly release, all categories
    annual_epsilon_cap: float = 6.0  # rule 6: per subject per calendar year, kept in the ledger
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
        if not self.person_categories or len(set(self.person_categories)) != len(
            self.person_categories
        ):
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
