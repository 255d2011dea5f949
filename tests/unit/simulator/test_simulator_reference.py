"""Reference data: FixMyStreet codes to categories, 2011 LSOAs onto 2021 LSOAs."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest

from shared.contracts import Category
from simulator.reference import fms_category, load_reference

CAMDEN = Path(__file__).resolve().parents[3] / "data" / "camden"


@pytest.fixture(scope="module")
def reference():
    return load_reference(CAMDEN)


def test_shef_b_codes_map_through_the_catalogue():
    assert fms_category("B26") is Category.FLY_TIPPING
    assert fms_category("B14") is Category.GRAFFITI
    assert fms_category("B18") is None  # parking: not a need streetneeds shares


def test_every_mapped_report_lands_on_a_2021_lsoa(reference):
    rows = list(csv.DictReader((CAMDEN / "fixmystreet-reports-lsoa-month.csv").open()))
    mapped = sum(int(r["reports"]) for r in rows if fms_category(r["SHEF_B_CODE"]))
    assert sum(reference.reports.values()) == pytest.approx(mapped)
    assert {lsoa for lsoa, _ in reference.reports} <= set(reference.loneliness)
    assert sum(reference.category_mix().values()) == pytest.approx(1.0)


def test_changed_2011_lsoas_go_to_their_msoa_successors(reference):
    # E01000953 (Camden 022B) has no 2021 code; Camden 022F and 022G are new in 2021.
    rows = [
        r
        for r in csv.DictReader((CAMDEN / "fixmystreet-reports-lsoa-month.csv").open())
        if r["lsoa"] == "E01000953" and r["SHEF_B_CODE"] == "B26"
    ]
    n = sum(int(r["reports"]) for r in rows)
    assert n > 0
    got = {lsoa: v for (lsoa, c), v in reference.reports.items() if c is Category.FLY_TIPPING}
    assert got.get("E01035708", 0) >= n / 2 and got.get("E01035709", 0) >= n / 2
    assert "E01000953" not in {lsoa for lsoa, _ in reference.reports}
