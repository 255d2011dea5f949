"""Real Camden reference data the simulator draws from: loneliness rates and FixMyStreet report mix.

- `loneliness-lsoa-2021.csv`: the share of adults at risk of loneliness per 2021 LSOA (`perc`).
- `fixmystreet-reports-lsoa-month.csv`: FixMyStreet reports per 2011 LSOA, SHEF_B category and
  month. SHEF_B codes map to our categories through `fixmystreet_codes` in the catalogue; codes no
  category claims (parking, road safety, "other", ...) are left out.

2011 -> 2021 LSOAs: most codes are unchanged. A 2011 LSOA that was split or merged has no 2021
code of its own; its reports go to the 2021 LSOAs of the same MSOA (the "Camden 026" in
"Camden 026C"), preferring those created in 2021 (the successors of the changed ones), split
evenly; a name with no MSOA in 2021 goes to every Camden LSOA evenly. This keeps each area's
volume close to where it was reported, without boundary files for 2011.
"""

from __future__ import annotations

import csv
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

from shared.contracts import CATALOGUE, Category

__all__ = ["CAMDEN_DIR", "Reference", "fms_category", "load_reference"]

CAMDEN_DIR = Path(__file__).resolve().parents[1] / "data" / "camden"

_FMS_TO_CATEGORY: dict[str, Category] = {
    code: c.code for c in CATALOGUE.values() for code in c.fixmystreet_codes
}


def fms_category(shef_b_code: str) -> Category | None:
    """Our category for a FixMyStreet SHEF_B code, or None when no category claims it."""
    return _FMS_TO_CATEGORY.get(shef_b_code)


@dataclass(frozen=True)
class Reference:
    """Per-LSOA (2021 codes) loneliness rates, wards and environmental report volumes."""

    loneliness: dict[str, float]  # lsoa21 -> perc
    ward_of: dict[str, str]  # lsoa21 -> ward code
    reports: dict[tuple[str, Category], float]  # (lsoa21, category) -> reports in the data
    months: int  # how many months the report data spans

    @property
    def lsoas(self) -> list[str]:
        return sorted(self.loneliness)

    def category_mix(self) -> dict[Category, float]:
        """Share of each place category across all reports."""
        totals: dict[Category, float] = defaultdict(float)
        for (_, category), n in self.reports.items():
            totals[category] += n
        whole = sum(totals.values())
        return {c: n / whole for c, n in totals.items()}


def _msoa(lsoa_name: str) -> str:
    return lsoa_name.rstrip("ABCDEFGHIJKLMNOPQRSTUVWXYZ")


def load_reference(directory: Path = CAMDEN_DIR) -> Reference:
    """Read both CSVs and map the report data onto 2021 LSOAs (see the module docstring)."""
    loneliness: dict[str, float] = {}
    ward_of: dict[str, str] = {}
    msoa_members: dict[str, list[str]] = defaultdict(list)
    with (directory / "loneliness-lsoa-2021.csv").open(newline="") as f:
        for row in csv.DictReader(f):
            loneliness[row["lsoa21_code"]] = float(row["perc"])
            ward_of[row["lsoa21_code"]] = row["ward24_code"]
            msoa_members[_msoa(row["lsoa21_name"])].append(row["lsoa21_code"])

    rows = list(csv.DictReader((directory / "fixmystreet-reports-lsoa-month.csv").open(newline="")))
    codes_2011 = {r["lsoa"] for r in rows}
    reports: dict[tuple[str, Category], float] = defaultdict(float)
    for row in rows:
        category = fms_category(row["SHEF_B_CODE"])
        if category is None:
            continue
        for lsoa, share in _successors(row["lsoa"], row["lsoa11_name"], loneliness, msoa_members, codes_2011):
            reports[(lsoa, category)] += int(row["reports"]) * share
    months = len({r["month"] for r in rows})
    return Reference(loneliness, ward_of, dict(reports), months)


def _successors(code, name, loneliness, msoa_members, codes_2011) -> list[tuple[str, float]]:
    if code in loneliness:
        return [(code, 1.0)]
    members = msoa_members.get(_msoa(name)) or sorted(loneliness)
    new = [m for m in members if m not in codes_2011]
    targets = new or members
    return [(t, 1.0 / len(targets)) for t in targets]
