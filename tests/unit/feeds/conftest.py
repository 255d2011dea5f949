"""A tiny hand-made gazetteer (three streets in Camden, two wards, person units) and prompt factories."""

from __future__ import annotations

import datetime as dt

import pytest
from shapely.geometry import LineString, box

from shared.contracts import OpportunityLink, PromptPublished
from shared.gazetteer.model import Gazetteer, Street, Unit, Ward

AGAR_GROVE, AGAR_PLACE, FAR_ROAD = "s-agargrove01", "s-agarplace01", "s-farroad0001"


def _street(id_, name, coords, ward, ward_name, addresses):
    return Street(id_, name, name.lower(), LineString(coords), (f"way/{id_}",), addresses, ward, ward_name)


@pytest.fixture(scope="session")
def gazetteer() -> Gazetteer:
    streets = {
        s.id: s
        for s in (
            _street(
                AGAR_GROVE, "Agar Grove", [(-0.1335, 51.5440), (-0.1290, 51.5445)], "W1", "Camden Square", 30
            ),
            _street(
                AGAR_PLACE, "Agar Place", [(-0.1300, 51.5440), (-0.1300, 51.5420)], "W1", "Camden Square", 20
            ),
            _street(FAR_ROAD, "Far Road", [(-0.1500, 51.5300), (-0.1490, 51.5300)], "W2", "Faraway", 50),
        )
    }
    units = [
        Unit("u40-w1", 40, (AGAR_GROVE, AGAR_PLACE), "W1", False, True, 50, "Agar Grove area"),
        Unit("u40-w2", 40, (FAR_ROAD,), "W2", False, True, 50, "Far Road"),
    ]
    wards = [
        Ward("W1", "Camden Square", box(-0.14, 51.54, -0.12, 51.55)),
        Ward("W2", "Faraway", box(-0.16, 51.52, -0.14, 51.535)),
    ]
    return Gazetteer(streets=streets, units=units, wards=wards)


def make_prompt(**overrides) -> PromptPublished:
    fields = dict(
        prompt_id=f"{AGAR_GROVE}:graffiti",
        revision=1,
        area_id=AGAR_GROVE,
        area_kind="street",
        area_name="Agar Grove",
        ward_code="W1",
        street_ids=(AGAR_GROVE,),
        category="graffiti",
        sensitivity="place",
        title="Graffiti on Agar Grove",
        body="Walls on Agar Grove need <paint> & care.",
        opportunities=(
            OpportunityLink(
                opportunity_id="o1",
                title="Saturday paint-out",
                organisation="Camden Clean & Green",
                url="https://example.org/paint?a=1&b=2",
                when="Saturdays 10am-12pm, meet at the library",
            ),
        ),
        published_at=dt.datetime(2026, 5, 2, 14, 37, 21, 123000, tzinfo=dt.UTC),
    )
    fields.update(overrides)
    return PromptPublished(**fields)


def make_person_prompt(**overrides) -> PromptPublished:
    fields = dict(
        prompt_id="u40-w1:isolation",
        area_id="u40-w1",
        area_kind="unit",
        area_name="Agar Grove area",
        street_ids=(AGAR_GROVE, AGAR_PLACE),
        category="isolation",
        sensitivity="person",
        title="Some older neighbours may be lonely",
        body="Could you host at the Tuesday lunch club?",
        published_at=dt.datetime(2026, 5, 1, 6, 12, 5, tzinfo=dt.UTC),
    )
    fields.update(overrides)
    return make_prompt(**fields)


@pytest.fixture
def prompt() -> PromptPublished:
    return make_prompt()


@pytest.fixture
def person_prompt() -> PromptPublished:
    return make_person_prompt()


@pytest.fixture
def make():
    return make_prompt


@pytest.fixture
def make_person():
    return make_person_prompt


@pytest.fixture
def ids() -> dict[str, str]:
    return {"agar_grove": AGAR_GROVE, "agar_place": AGAR_PLACE, "far_road": FAR_ROAD}
