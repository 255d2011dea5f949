"""CSV exports cannot carry spreadsheet formulas (issue 11, Low 13): OSM names are editable by anyone."""

from __future__ import annotations

import csv
import io

import pytest

from services.partners.render import to_csv
from shared.csvsafe import safe_cell


@pytest.mark.parametrize(
    "name", ['=HYPERLINK("http://x","y")', "+1+2", "-2+3+cmd|' /C calc'!A0", "@SUM(A1)", "\tx", "\rx"]
)
def test_formula_like_cells_are_neutralised(name: str) -> None:
    text = to_csv(["area_name", "count"], [[name, "3"]])
    (row,) = list(csv.DictReader(io.StringIO(text)))
    assert row["area_name"] == "'" + name
    assert row["count"] == "3"


@pytest.mark.parametrize("value", ["-1", "-0.25", "+3", "1e-3", "Agar Grove", "", None, 7, -2.5])
def test_numbers_and_plain_text_are_untouched(value: object) -> None:
    assert safe_cell(value) == value
