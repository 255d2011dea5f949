"""The platforms directory: every category has a way to help, local groups come first, links are safe."""

from __future__ import annotations

import datetime as dt
from dataclasses import replace

import pytest

from services.prompter.matching import NO_PLACES, Area, Opportunity
from services.prompter.platforms import MAX_PLATFORMS, load_directory, platform_links, uncovered
from services.prompter.prompts import compose
from services.prompter.templates import render
from shared.contracts import Category, Sensitivity, StreetNeedChanged, info
from shared.urls import UnsafeUrl, check_link_url

DIRECTORY = load_directory()
TODAY = dt.date(2026, 11, 20)


def _need(category: Category) -> StreetNeedChanged:
    person = info(category).sensitivity is Sensitivity.PERSON
    return StreetNeedChanged(
        area_id="way/1",
        area_kind="unit" if person else "street",
        area_name="Camden Road",
        ward_code="E05013652",
        street_ids=("way/1",),
        category=category,
        sensitivity=info(category).sensitivity,
        band="some" if person else None,
        count=None if person else 2,
        since=TODAY,
        period="2026-10" if person else "live",
        published_at=dt.datetime(2026, 11, 1, tzinfo=dt.UTC),
        version=1,
    )


def test_the_shipped_directory_covers_every_category_with_https_links():
    assert uncovered(DIRECTORY) == set()
    assert len({p.id for p in DIRECTORY}) == len(DIRECTORY)
    for p in DIRECTORY:
        assert check_link_url(p.url) == p.url and p.url.startswith("https://")
        assert p.description.endswith(".") and len(p.description) <= 300


@pytest.mark.parametrize("category", list(Category))
def test_no_prompt_is_ever_without_a_way_to_help(category):
    draft = compose(_need(category), [], NO_PLACES, TODAY, DIRECTORY)
    assert draft is not None and 1 <= len(draft.opportunities) <= MAX_PLATFORMS
    assert all(o.kind == "platform" and o.url for o in draft.opportunities)
    # The wording counts local groups only: with none, it promises none.
    assert "local group" not in draft.body.lower()


def test_local_opportunities_come_first_then_platforms():
    local = Opportunity(
        id="o1",
        title="Tea on Tuesdays",
        organisation="Kentish Town Friends",
        categories=frozenset({Category.ISOLATION}),
        area=Area(street_ids=("way/1",)),
        contact_email="hi@example.org",
        organisation_id="org-1",
    )
    draft = compose(_need(Category.ISOLATION), [local], NO_PLACES, TODAY, DIRECTORY)
    assert [o.kind for o in draft.opportunities][:2] == ["local", "platform"]
    assert draft.opportunities[0].contact_email == "hi@example.org"
    assert draft.body == render(_need(Category.ISOLATION), 1).body  # "A local group ... is looking"


def test_switched_off_platforms_are_not_linked_and_borough_ones_come_first():
    links = platform_links(Category.ISOLATION, DIRECTORY)
    assert links[0].title == "Age UK Camden"  # borough coverage before national
    off = [replace(p, enabled=False) if p.id == "age-uk-camden" else p for p in DIRECTORY]
    assert "Age UK Camden" not in [o.title for o in platform_links(Category.ISOLATION, off)]
    assert uncovered([replace(p, enabled=False) if p.id == "fixmystreet" else p for p in DIRECTORY]) == {
        Category.ABANDONED_VEHICLE,
        Category.PAVEMENT_DEFECT,
    }


@pytest.mark.parametrize(
    "url",
    [
        "ftp://example.org/",
        "https://user:secret@example.org/",
        "http://localhost:8000/",
        "http://127.0.0.1/",
        "http://10.0.0.5/",
        "http://[::1]/",
        "http://intranet/",
        "http://printer.local/",
        "javascript:alert(1)",
    ],
)
def test_unsafe_opportunity_links_are_refused(url):
    with pytest.raises(UnsafeUrl):
        check_link_url(url)


def test_public_links_pass_without_a_dns_lookup():
    assert check_link_url("https://www.goodgym.org/areas/camden") == "https://www.goodgym.org/areas/camden"
