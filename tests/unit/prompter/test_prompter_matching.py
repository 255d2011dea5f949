"""Matching opportunities to needs: category, area (streets, wards, radius), dates, order, limit."""

from __future__ import annotations

import datetime as dt
from typing import ClassVar

from services.prompter.matching import MAX_LINKED, Area, Opportunity, covers_ward, nearby
from shared.contracts import Category, StreetNeedChanged

TODAY = dt.date(2026, 11, 20)


class FakePlaces:
    """Two wards; street 'far' is 2 km from the test point, 'near' 100 m."""

    wards: ClassVar = {"way/near": "W1", "way/far": "W2", "way/other": "W1"}
    distances: ClassVar = {"way/near": 100.0, "way/far": 2000.0}

    def ward_of(self, street_id):
        return self.wards.get(street_id)

    def ward_of_point(self, lat, lon):
        return "W1"

    def distance_m(self, lat, lon, street_ids):
        known = [self.distances[s] for s in street_ids if s in self.distances]
        return min(known) if known else None


PLACES = FakePlaces()


def _need(*street_ids: str, category=Category.FLY_TIPPING, ward=None) -> StreetNeedChanged:
    return StreetNeedChanged(
        area_id=street_ids[0],
        area_kind="street",
        area_name="X Road",
        ward_code=ward,
        street_ids=street_ids,
        category=category,
        sensitivity="place",
        count=2,
        since=TODAY,
        period="live",
        published_at=dt.datetime(2026, 11, 20, tzinfo=dt.UTC),
        version=1,
    )


def _opp(id_: str, area: Area, *, categories=(Category.FLY_TIPPING,), title=None, **kw) -> Opportunity:
    return Opportunity(
        id=id_,
        title=title or f"Clean-up {id_}",
        organisation="Friends of X",
        categories=frozenset(categories),
        area=area,
        **kw,
    )


def _ids(links) -> list[str]:
    return [link.opportunity_id for link in links]


def test_listed_street_matches():
    opp = _opp("a", Area(street_ids=("way/near",)))
    assert _ids(nearby(_need("way/near"), [opp], PLACES, TODAY)) == ["a"]


def test_other_category_does_not_match():
    opp = _opp("a", Area(street_ids=("way/near",)), categories=(Category.GRAFFITI,))
    assert nearby(_need("way/near"), [opp], PLACES, TODAY) == ()


def test_ward_of_a_need_street_matches_and_other_wards_do_not():
    need = _need("way/far", "way/near")
    assert _ids(nearby(need, [_opp("w1", Area(ward_codes=("W1",)))], PLACES, TODAY)) == ["w1"]
    assert nearby(_need("way/far"), [_opp("w1", Area(ward_codes=("W1",)))], PLACES, TODAY) == ()


def test_need_ward_code_matches_without_a_gazetteer():
    need = _need("way/unknown", ward="W9")
    assert _ids(nearby(need, [_opp("w9", Area(ward_codes=("W9",)))], PLACES, TODAY)) == ["w9"]


def test_radius_reaches_streets_within_it_only():
    circle = Area(lat=51.5, lon=-0.13, radius_m=500)
    assert _ids(nearby(_need("way/near"), [_opp("c", circle)], PLACES, TODAY)) == ["c"]
    assert nearby(_need("way/far"), [_opp("c", circle)], PLACES, TODAY) == ()


def test_dates_and_retirement():
    area = Area(street_ids=("way/near",))
    opps = [
        _opp("future", area, starts_on=TODAY + dt.timedelta(days=1)),
        _opp("ended", area, ends_on=TODAY - dt.timedelta(days=1)),
        _opp("retired", area, retired=True),
        _opp("today", area, starts_on=TODAY, ends_on=TODAY),
    ]
    assert _ids(nearby(_need("way/near"), opps, PLACES, TODAY)) == ["today"]


def test_closest_first_then_title_and_at_most_a_few():
    opps = [
        _opp("ward", Area(ward_codes=("W1",)), title="A ward-wide group"),
        _opp("circle", Area(lat=51.5, lon=-0.13, radius_m=500), title="B circle"),
        _opp("street2", Area(street_ids=("way/near",)), title="D street"),
        _opp("street1", Area(street_ids=("way/near",)), title="C street"),
    ]
    links = nearby(_need("way/near"), opps, PLACES, TODAY)
    assert _ids(links) == ["street1", "street2", "circle"][:MAX_LINKED]
    assert _ids(nearby(_need("way/near"), list(reversed(opps)), PLACES, TODAY)) == _ids(links)


def test_link_carries_public_fields_only():
    opp = _opp(
        "a",
        Area(street_ids=("way/near",)),
        url="https://example.org",
        times="Tuesdays 12-2pm",
        what="Bring gloves.",
        contact_email="group@example.org",
        organisation_id="org-1",
    )
    (link,) = nearby(_need("way/near"), [opp], PLACES, TODAY)
    assert link.model_dump() == {
        "opportunity_id": "a",
        "title": "Clean-up a",
        "organisation": "Friends of X",
        "url": "https://example.org",
        "when": "Tuesdays 12-2pm",
        "kind": "local",
        "description": None,
        "what": "Bring gloves.",
        "time_needed": None,
        "dbs_needed": False,
        "contact_email": "group@example.org",
        "contact_phone": None,
        "organisation_id": "org-1",
    }


def test_a_paused_opportunity_is_not_linked():
    opp = _opp("a", Area(street_ids=("way/near",)), paused=True)
    assert nearby(_need("way/near"), [opp], PLACES, TODAY) == ()


def test_covers_ward_by_code_street_or_point():
    assert covers_ward(_opp("a", Area(ward_codes=("W5",))), "W5", PLACES)
    assert covers_ward(_opp("b", Area(street_ids=("way/far",))), "W2", PLACES)
    assert covers_ward(_opp("c", Area(lat=51.5, lon=-0.1, radius_m=10)), "W1", PLACES)
    assert not covers_ward(_opp("d", Area(street_ids=("way/far",))), "W1", PLACES)
