"""The privacy policy's numbers, in one place (docs/privacy.md states each rule).

Every service reads its thresholds from here: the aggregator's settings take their defaults from
these constants, the gazetteer builds its publication units with them, and the feeds resolve person
units with them. Changing a rule means changing it here, and nowhere else.
"""

from __future__ import annotations

__all__ = [
    "ANNUAL_EPSILON_CAP",
    "EPSILON_PER_RELEASE",
    "MANY_FROM",
    "MIN_STREET_ADDRESSES",
    "MIN_SUBJECTS",
    "MIN_UNIT_ADDRESSES",
    "ROUNDING_BASE",
    "SEVERAL_FROM",
]

MIN_STREET_ADDRESSES = 8  # rule 2: a street publishes place needs alone (data.police.uk catchment)
MIN_UNIT_ADDRESSES = 40  # rule 3: every person publication unit covers this many (ONS output areas)
MIN_SUBJECTS = 8  # rule 4: a person cell shows only when its noisy count reaches this
ROUNDING_BASE = 5  # rule 4: internal counts are rounded to a multiple of this
SEVERAL_FROM = 15  # rule 4: "some" is MIN_SUBJECTS..SEVERAL_FROM-1
MANY_FROM = 30  # rule 4: "several" is SEVERAL_FROM..MANY_FROM-1, "many" from here
EPSILON_PER_RELEASE = 0.5  # rule 6: per subject per monthly release, across person categories
ANNUAL_EPSILON_CAP = 6.0  # rule 6: per subject per calendar year (the ledger)
