"""Prompt wording: the documented examples, plain language for every category, never a person count."""

from __future__ import annotations

import datetime as dt
import re
from pathlib import Path

import pytest

from services.prompter.templates import place_phrase, render
from shared.contracts import CATALOGUE, Category, Sensitivity, StreetNeedChanged

DATA = Path(__file__).resolve().parents[2] / "data/prompter"

# Words that alarm, label or talk down to neighbours, and service jargon a 9-year-old would not know.
BANNED = (
    "vulnerable",
    "at risk",
    "risk",
    "elderly",
    "isolated",
    "isolation",
    "overcrowded",
    "overcrowding",
    "deprived",
    "deprivation",
    "victim",
    "suffering",
    "danger",
    "dangerous",
    "urgent",
    "emergency",
    "crisis",
    "alert",
    "warning",
    "flagged",
    "case",
    "client",
    "service user",
    "safeguarding",
    "social care",
    "signal",
    "household",
    "vegetation",
    "street furniture",
    "defect",
    "abandoned",
    "fouling",
)
MAX_SENTENCE_WORDS = 20
MAX_AVERAGE_SENTENCE_WORDS = 14
MAX_LONG_WORD_SHARE = 0.15  # words of 9+ letters


def _need(
    category: Category, *, band="some", count=3, kind="street", name="Camden Road"
) -> StreetNeedChanged:
    person = CATALOGUE[category].sensitivity is Sensitivity.PERSON
    return StreetNeedChanged(
        area_id="a1",
        area_kind=kind,
        area_name=name,
        ward_code="E05000001",
        street_ids=("way/1",),
        category=category,
        sensitivity=CATALOGUE[category].sensitivity,
        band=band if person else None,
        count=None if person else count,
        since=dt.date(2026, 11, 1),
        period="2026-10" if person else "live",
        published_at=dt.datetime(2026, 11, 1, 9, tzinfo=dt.UTC),
        version=1,
    )


def _ward_trend(category: Category, trend: str, name="Belsize") -> StreetNeedChanged:
    return StreetNeedChanged(
        area_id="E05013652",
        area_kind="ward",
        area_name=name,
        ward_code="E05013652",
        street_ids=("way/1", "way/2"),
        category=category,
        sensitivity=Sensitivity.PERSON,
        band=None,
        count=None,
        trend=trend,
        since=dt.date(2026, 7, 1),
        period="2026-Q3",
        published_at=dt.datetime(2026, 10, 1, 9, tzinfo=dt.UTC),
        version=1,
    )


PERSON = [c for c, e in CATALOGUE.items() if e.sensitivity is Sensitivity.PERSON]


def _sentences(text: str) -> list[list[str]]:
    return [re.findall(r"[A-Za-z0-9'’-]+", s) for s in re.split(r"(?<=[.?!])\s+", text) if s.strip()]


def _all_wordings():
    for category, entry in CATALOGUE.items():
        variants = ("some", "several", "many") if entry.sensitivity is Sensitivity.PERSON else (1, 3, 42)
        for variant in variants:
            for n_opps in (0, 1, 3):
                need = (
                    _need(category, band=variant, kind="unit", name="Agar Grove and 3 nearby streets")
                    if entry.sensitivity is Sensitivity.PERSON
                    else _need(category, count=variant)
                )
                yield need, render(need, n_opps)
    for category in PERSON:
        for trend in ("up", "down"):
            for n_opps in (0, 1, 3):
                need = _ward_trend(category, trend, name="Kentish Town")
                yield need, render(need, n_opps)


def test_isolation_example_from_the_brief():
    need = StreetNeedChanged.model_validate_json((DATA / "need_isolation_unit.json").read_text())
    wording = render(need, 1)
    assert wording.title == "Some older neighbours near Agar Grove may be lonely"
    assert (
        "A friendly hello, a cup of tea or a lift to a lunch club can make a real difference." in wording.body
    )
    assert wording.body.endswith("Could you help?")


def test_ward_trend_examples_from_the_brief():
    up = render(_ward_trend(Category.ISOLATION, "up"), 0)
    assert up.title == "More older neighbours in Belsize may be feeling lonely"
    assert up.body.startswith(
        "More older neighbours in Belsize may be feeling lonely than last season. "
        "Lunch clubs and befriending schemes nearby would welcome help."
    )
    down = render(_ward_trend(Category.ISOLATION, "down"), 0)
    assert down.title == "Fewer older neighbours in Belsize seem lonely than last season"
    assert down.body.startswith("Thank you to everyone who helped.")
    crowded = render(_ward_trend(Category.OVERCROWDING, "up"), 1)
    assert crowded.title == "More children in Belsize may be short of room at home"


def test_a_steady_ward_trend_gets_no_prompt():
    for category in PERSON:
        assert render(_ward_trend(category, "steady"), 2) is None


def test_a_person_need_without_band_or_ward_trend_is_refused():
    need = _ward_trend(Category.ISOLATION, "up").model_copy(update={"trend": None})
    with pytest.raises(ValueError, match="band or be a ward trend"):
        render(need, 0)


def test_fly_tipping_example_from_the_brief():
    need = StreetNeedChanged.model_validate_json((DATA / "need_fly_tipping_street.json").read_text())
    wording = render(need, 0)
    assert wording.title == "3 reports of fly-tipping on Camden Road this month"
    assert wording.body.startswith("Neighbours could organise a clean-up")


def test_one_report_is_singular():
    assert render(_need(Category.LITTER, count=1), 0).title == "1 report of litter on Camden Road this month"


def test_long_lived_categories_do_not_claim_this_month():
    # Hard-to-manage spaces count reports over 90 days: "this month" would be untrue.
    assert render(_need(Category.HARD_TO_MANAGE_SPACE), 0).title.endswith("lately")


@pytest.mark.parametrize(
    ("kind", "name", "expected"),
    [
        ("street", "Camden Road", "on Camden Road"),
        ("unit", "Agar Grove and 3 nearby streets", "near Agar Grove"),
        ("unit", "Agar Grove and 1 nearby street", "near Agar Grove"),
        ("unit", "Agar Grove & nearby streets", "near Agar Grove"),
        ("unit", "Agar Grove", "near Agar Grove"),
        ("ward", "Kentish Town", "in Kentish Town"),
    ],
)
def test_place_phrase(kind, name, expected):
    assert place_phrase(kind, name) == expected


def test_every_wording_is_plain_short_and_calm():
    for need, wording in _all_wordings():
        text = f"{wording.title}. {wording.body}"
        sentences = _sentences(text)
        lengths = [len(s) for s in sentences]
        assert max(lengths) <= MAX_SENTENCE_WORDS, (need.category, text)
        assert sum(lengths) / len(lengths) <= MAX_AVERAGE_SENTENCE_WORDS, (need.category, text)
        words = [w for s in sentences for w in s]
        long_words = [w for w in words if len(w) >= 9]
        assert len(long_words) / len(words) <= MAX_LONG_WORD_SHARE, (need.category, long_words)
        lowered = f" {text.lower()} "
        for banned in BANNED:
            assert not re.search(rf"\b{re.escape(banned)}\b", lowered), (need.category, banned, text)
        assert len(wording.title) <= 200 and len(wording.body) <= 2000
        assert wording.body.endswith("Could you help?")


def test_person_categories_never_carry_a_number():
    for need, wording in _all_wordings():
        if need.sensitivity is Sensitivity.PERSON:
            text = f"{wording.title} {wording.body}"
            assert not re.search(r"\d", text), text
            first = wording.title.split()[0]
            assert first in (("More", "Fewer") if need.band is None else ("Some", "Several", "Many")), text


def test_the_banned_word_check_can_fail():
    assert re.search(r"\bvulnerable\b", " some vulnerable people ")
