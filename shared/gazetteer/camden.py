"""The Camden reference data shipped in `data/camden/`: the default gazetteer for the demo and tests."""

from __future__ import annotations

from pathlib import Path
from typing import TypedDict

from .build import ImportReport, build_gazetteer
from .model import Gazetteer

__all__ = ["DATA", "build_camden", "import_options"]

DATA = Path(__file__).resolve().parents[2] / "data" / "camden"


class ImportOptions(TypedDict):
    wards: Path
    lsoas: Path
    boundary: Path


def import_options() -> ImportOptions:
    """The boundary files that go with Camden's OpenStreetMap extract."""
    return {
        "wards": DATA / "wards-2022.geojson",
        "lsoas": DATA / "lsoa-2021.geojson",
        "boundary": DATA / "boundary.geojson",
    }


def build_camden() -> tuple[Gazetteer, ImportReport]:
    return build_gazetteer(DATA / "camden.osm.pbf", **import_options())
