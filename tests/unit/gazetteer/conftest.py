"""Gazetteers built once per session: real Camden data and a real extract from Germany."""

from __future__ import annotations

from pathlib import Path

import pytest

from shared.gazetteer import Gazetteer, ImportReport, build_gazetteer

ROOT = Path(__file__).resolve().parents[3]
KIRCHBERG = ROOT / "tests" / "data" / "osm" / "kirchberg-an-der-iller.osm"


@pytest.fixture(scope="session")
def camden(camden_gazetteer) -> Gazetteer:
    return camden_gazetteer


@pytest.fixture(scope="session")
def kirchberg_build() -> tuple[Gazetteer, ImportReport]:
    return build_gazetteer(KIRCHBERG)


@pytest.fixture(scope="session")
def kirchberg(kirchberg_build) -> Gazetteer:
    return kirchberg_build[0]


def by_name(gazetteer: Gazetteer, name: str):
    return [s for s in gazetteer.streets.values() if s.name == name]
