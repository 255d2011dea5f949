"""Fixtures for ingest's unit tests: a small synthetic gazetteer and pseudonymisation secrets."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from shapely.geometry import shape

from shared.gazetteer.model import Gazetteer, Street
from shared.gazetteer.names import name_key

DATA = Path(__file__).resolve().parents[2] / "data/ingest/gazetteer.geojson"


def load_test_gazetteer() -> Gazetteer:
    features = json.loads(DATA.read_text())["features"]
    streets = {
        f["properties"]["id"]: Street(
            id=f["properties"]["id"],
            name=f["properties"]["name"],
            norm_name=name_key(f["properties"]["name"]),
            geometry=shape(f["geometry"]),
            segment_ids=(f["properties"]["id"],),
            address_count=f["properties"]["addresses"],
        )
        for f in features
        if f["properties"]["kind"] == "street"
    }
    boundary = next(shape(f["geometry"]) for f in features if f["properties"]["kind"] == "boundary")
    return Gazetteer(streets=streets, boundary=boundary)


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    return load_test_gazetteer()
