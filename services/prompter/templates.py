"""Plain-language wording of prompts, one template per category (pure: no I/O, no clock).

Written for a reading age of about 9: short sentences, everyday words, no alarm words or jargon.
Person categories are described by band words only (some/several/many) — never a number.

A ward's quarterly trend (a person need with no band, docs/privacy.md rule 5) says only "more" or
"fewer" than last season: up asks for help, down thanks neighbours and still invites helpers.
A steady trend gets no prompt (`render` returns None, and a prompt already out for that ward is
retired): "about the same as last season" asks nothing new, says nothing about how many, and would
otherwise put a prompt in every ward for every person category each quarter, mostly about noise.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass

from shared.contracts import AreaKind, Band, Category, Sensitivity, StreetNeedChanged, Trend, info

__all__ = ["TEMPLATES", "TREND_TEMPLATES", "Wording", "place_phrase", "render", "word_for"]

_BAND_WORDS: dict[Band, str] = {"some": "Some", "several": "Several", "many": "Many"}
# The aggregator names a publication unit after its main street: "Agar Grove and 3 nearby streets".
_UNIT_NAME = re.compile(
    r"^(?P<lead>.+?)\s+(?:and|&)\s+(?:\d+\s+)?(?:other\s+)?nearby streets?$", re.IGNORECASE
)


@dataclass(frozen=True, slots=True)
class Wording:
    title: str
    body: str


def word_for(band: Band) -> str:
    """The capitalised band word a person-category prompt opens with."""
    return _BAND_WORDS[band]


def place_phrase(area_kind: AreaKind, area_name: str) -> str:
    """Where, in words: 'on Camden Road', 'near Agar Grove', 'in Kentish Town'."""
    if area_kind == "ward":
        return f"in {area_name}"
    if area_kind == "unit":
        lead = _UNIT_NAME.match(area_name)
        return f"near {lead['lead'] if lead else area_name}"
    return f"on {area_name}"


def _helpers_line(n_opportunities: int) -> str:
    if n_opportunities == 0:
        return ""
    if n_opportunities == 1:
        return "A local group near you is looking for helpers."
    return "Local groups near you are looking for helpers."


def _join(*sentences: str) -> str:
    return " ".join(s for s in sentences if s)


# --- person categories: band words, never numbers -------------------------------------------


def _isolation(where: str, band: Band, n_opps: int) -> Wording:
    who = f"{word_for(band)} older neighbours {where}"
    return Wording(
        title=f"{who} may be lonely",
        body=_join(
            f"{who} live on their own and may not see many people.",
            "A friendly hello, a cup of tea or a lift to a lunch club can make a real difference.",
            _helpers_line(n_opps),
            "Could you help?",
        ),
    )


def _overcrowding(where: str, band: Band, n_opps: int) -> Wording:
    return Wording(
        title=f"{word_for(band)} children {where} have very little room at home",
        body=_join(
            f"{word_for(band)} children {where} share small homes with lots of people.",
            "They may have no quiet place to read, play or do homework.",
            "A homework club, a play session or spare books and toys can help a lot.",
            _helpers_line(n_opps),
            "Could you help?",
        ),
    )


# --- person categories, a ward's quarterly trend: more or fewer, never how many --------------


def _isolation_trend(where: str, direction: Trend, n_opps: int) -> Wording | None:
    if direction == "up":
        return Wording(
            title=f"More older neighbours {where} may be feeling lonely",
            body=_join(
                f"More older neighbours {where} may be feeling lonely than last season.",
                "Lunch clubs and befriending schemes nearby would welcome help.",
                _helpers_line(n_opps),
                "Could you help?",
            ),
        )
    if direction == "down":
        return Wording(
            title=f"Fewer older neighbours {where} seem lonely than last season",
            body=_join(
                "Thank you to everyone who helped.",
                "Lunch clubs and befriending schemes nearby still welcome new helpers.",
                _helpers_line(n_opps),
                "Could you help?",
            ),
        )
    return None


def _overcrowding_trend(where: str, direction: Trend, n_opps: int) -> Wording | None:
    if direction == "up":
        return Wording(
            title=f"More children {where} may be short of room at home",
            body=_join(
                f"More children {where} may be short of room at home than last season.",
                "A homework club, a play session or spare books and toys can help a lot.",
                _helpers_line(n_opps),
                "Could you help?",
            ),
        )
    if direction == "down":
        return Wording(
            title=f"Fewer children {where} seem short of room at home than last season",
            body=_join(
                "Thank you to everyone who helped.",
                "Homework clubs and play sessions nearby still welcome new helpers.",
                _helpers_line(n_opps),
                "Could you help?",
            ),
        )
    return None


TREND_TEMPLATES: dict[Category, Callable[[str, Trend, int], Wording | None]] = {
    Category.ISOLATION: _isolation_trend,
    Category.OVERCROWDING: _overcrowding_trend,
}


# --- place categories: exact counts allowed ------------------------------------------------


@dataclass(frozen=True, slots=True)
class _Place:
    noun: str  # what the reports are of: "3 reports of {noun}"
    ask: tuple[str, ...]  # what neighbours could do, one short sentence each


_PLACES: dict[Category, _Place] = {
    Category.FLY_TIPPING: _Place(
        "fly-tipping",
        (
            "Neighbours could organise a clean-up together.",
            "You can also tell the council when you see new dumping.",
        ),
    ),
    Category.DUMPED_RUBBISH: _Place(
        "rubbish left out", ("Neighbours could share the bin days and help each other put bags out on time.",)
    ),
    Category.GRAFFITI: _Place(
        "graffiti",
        (
            "Neighbours could team up to paint over it.",
            "Some streets turn a blank wall into a mural everyone likes.",
        ),
    ),
    Category.LITTER: _Place(
        "litter",
        ("A litter pick with neighbours takes about an hour.", "It makes the street feel cared for."),
    ),
    Category.OVERGROWN_VEGETATION: _Place(
        "overgrown plants", ("Neighbours could get together to cut plants back and clear the path.",)
    ),
    Category.HARD_TO_MANAGE_SPACE: _Place(
        "a neglected space",
        (
            "A messy corner could become a small garden or a place to meet.",
            "Neighbours could plan it together.",
        ),
    ),
    Category.DOG_FOULING: _Place(
        "dog mess", ("Neighbours could put up friendly signs and carry spare bags to share.",)
    ),
    Category.ABANDONED_VEHICLE: _Place(
        "a car that seems to be left",
        ("Neighbours can help by telling the council how long it has been there.",),
    ),
    Category.STREET_FURNITURE: _Place(
        "broken benches, bins or signs",
        ("Neighbours could tell the council and help look after what is left.",),
    ),
    Category.PAVEMENT_DEFECT: _Place(
        "broken pavement",
        (
            "Please take care when you walk here.",
            "Neighbours could help people with buggies or walking sticks find a good way round.",
        ),
    ),
    Category.DRAINAGE: _Place(
        "blocked drains", ("Neighbours could clear leaves from the drains near their homes.",)
    ),
    Category.STREET_LIGHTING: _Place(
        "street lights not working", ("Neighbours could walk home together after dark until it is fixed.",)
    ),
}


def _when(category: Category) -> str:
    # The count covers open reports over the category's lifetime: say "this month" only when true.
    return "this month" if info(category).lifetime_days <= 31 else "lately"


def _place(category: Category) -> Callable[[str, int, int], Wording]:
    spec = _PLACES[category]

    def render(where: str, count: int, n_opps: int) -> Wording:
        reports = "1 report" if count == 1 else f"{count} reports"
        return Wording(
            title=f"{reports} of {spec.noun} {where} {_when(category)}",
            body=_join(*spec.ask, _helpers_line(n_opps), "Could you help?"),
        )

    return render


TEMPLATES: dict[Category, Callable[..., Wording]] = {
    Category.ISOLATION: _isolation,
    Category.OVERCROWDING: _overcrowding,
    **{c: _place(c) for c in _PLACES},
}


def render(need: StreetNeedChanged, n_opportunities: int) -> Wording | None:
    """The title and body for a need, given how many opportunities will be linked to it.

    None when the need calls for no prompt: a ward whose quarterly trend is steady.
    """
    where = place_phrase(need.area_kind, need.area_name)
    if need.sensitivity is Sensitivity.PERSON:
        if need.band is not None:
            return TEMPLATES[need.category](where, need.band, n_opportunities)
        # The contract allows a person need without a band only as a ward's quarterly trend;
        # guard anyway so that a number can never slip in.
        if need.area_kind != "ward" or need.trend is None:
            raise ValueError("a person-category need must carry a band or be a ward trend")
        return TREND_TEMPLATES[need.category](where, need.trend, n_opportunities)
    if need.count is None:
        raise ValueError("a place-category need must carry a count")
    return TEMPLATES[need.category](where, need.count, n_opportunities)


def _check_catalogue() -> None:
    # Every category has a template, and person categories use band templates: fail at import.
    missing = [c for c in Category if c not in TEMPLATES]
    if missing:
        raise RuntimeError(f"no prompt template for {missing}")
    for c in _PLACES:
        if info(c).sensitivity is not Sensitivity.PLACE:
            raise RuntimeError(f"{c} is a person category but has a count template")
    untrended = [
        c for c in Category if info(c).sensitivity is Sensitivity.PERSON and c not in TREND_TEMPLATES
    ]
    if untrended:
        raise RuntimeError(f"no ward trend template for {untrended}")


_check_catalogue()
