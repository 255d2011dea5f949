"""The category catalogue: every need streetneeds knows, its privacy class and default lifetime.

This is the one place categories are defined. Ingest validates against it, Open311 lists its place
categories as services, the aggregator takes lifetimes and privacy class from it, the prompter picks
templates by its codes.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

__all__ = ["CATALOGUE", "Category", "CategoryInfo", "Sensitivity", "info"]


class Sensitivity(StrEnum):
    """Which disclosure rules apply (see PRIVACY policy in the README)."""

    PLACE = "place"  # about a place: near real time, exact counts per street allowed
    PERSON = "person"  # about people: fixed units, thresholds, bands, monthly release, noise


class Category(StrEnum):
    ISOLATION = "isolation"
    OVERCROWDING = "overcrowding"
    FLY_TIPPING = "fly_tipping"
    DUMPED_RUBBISH = "dumped_rubbish"
    GRAFFITI = "graffiti"
    LITTER = "litter"
    OVERGROWN_VEGETATION = "overgrown_vegetation"
    HARD_TO_MANAGE_SPACE = "hard_to_manage_space"
    DOG_FOULING = "dog_fouling"
    ABANDONED_VEHICLE = "abandoned_vehicle"
    STREET_FURNITURE = "street_furniture"
    PAVEMENT_DEFECT = "pavement_defect"
    DRAINAGE = "drainage"
    STREET_LIGHTING = "street_lighting"


@dataclass(frozen=True, slots=True)
class CategoryInfo:
    code: Category
    name: str
    description: str
    sensitivity: Sensitivity
    lifetime_days: int  # a signal with no withdrawal/closure stops counting after this
    group: str  # Open311 `group`
    keywords: tuple[str, ...] = ()
    fixmystreet_codes: tuple[str, ...] = ()  # SHEF_B codes in mySociety's FixMyStreet data


def _c(
    code: str,
    name: str,
    description: str,
    sensitivity: Sensitivity,
    lifetime_days: int,
    group: str,
    keywords: tuple[str, ...] = (),
    fms: tuple[str, ...] = (),
) -> CategoryInfo:
    return CategoryInfo(Category(code), name, description, sensitivity, lifetime_days, group, keywords, fms)


_P, _S = Sensitivity.PLACE, Sensitivity.PERSON
CATALOGUE: dict[Category, CategoryInfo] = {
    c.code: c
    for c in (
        _c(
            "isolation",
            "Isolated older neighbours",
            "An older resident living alone and flagged by adult social care as isolated.",
            _S,
            180,
            "people",
        ),
        _c(
            "overcrowding",
            "Children in overcrowded homes",
            "A household with children flagged by housing as overcrowded.",
            _S,
            365,
            "people",
        ),
        _c(
            "fly_tipping",
            "Fly-tipping",
            "Waste dumped illegally on the street or land.",
            _P,
            14,
            "street cleansing",
            ("rubbish", "waste", "dumping"),
            ("B26",),
        ),
        _c(
            "dumped_rubbish",
            "Dumped rubbish",
            "Bags or loose rubbish left out of collection.",
            _P,
            7,
            "street cleansing",
            ("rubbish", "bags"),
        ),
        _c(
            "graffiti",
            "Graffiti",
            "Graffiti or fly-posting on walls, shutters or street furniture.",
            _P,
            30,
            "street cleansing",
            ("graffiti", "fly-posting"),
            ("B14",),
        ),
        _c(
            "litter",
            "Litter",
            "Litter building up on a street or green space.",
            _P,
            7,
            "street cleansing",
            ("litter",),
        ),
        _c(
            "overgrown_vegetation",
            "Overgrown vegetation",
            "Overgrown or fallen vegetation and trees blocking pavements or alleys.",
            _P,
            60,
            "green spaces",
            ("trees", "hedges", "weeds"),
            ("B17",),
        ),
        _c(
            "hard_to_manage_space",
            "Hard-to-manage space",
            "A neglected or difficult-to-manage corner, alley or open space.",
            _P,
            90,
            "green spaces",
            ("alley", "open space"),
            ("B15", "B23"),
        ),
        _c(
            "dog_fouling",
            "Dog fouling",
            "Dog mess on pavements or in parks.",
            _P,
            7,
            "street cleansing",
            ("dog",),
            ("B6",),
        ),
        _c(
            "abandoned_vehicle",
            "Abandoned vehicle",
            "A vehicle that appears to be abandoned.",
            _P,
            30,
            "highways",
            ("car", "vehicle"),
            ("B1",),
        ),
        _c(
            "street_furniture",
            "Damaged street furniture",
            "Broken benches, bins, signs or bollards.",
            _P,
            30,
            "highways",
            ("bench", "bin", "sign"),
            ("B27", "B4"),
        ),
        _c(
            "pavement_defect",
            "Pavement or road defect",
            "Potholes, broken paving or trip hazards.",
            _P,
            30,
            "highways",
            ("pothole", "paving"),
            ("B19", "B25", "B24", "B13"),
        ),
        _c(
            "drainage",
            "Blocked drain",
            "Blocked gullies or flooding on the street.",
            _P,
            14,
            "highways",
            ("drain", "flooding"),
            ("B7",),
        ),
        _c(
            "street_lighting",
            "Street lighting fault",
            "A street light out or flickering.",
            _P,
            14,
            "highways",
            ("light",),
            ("B28",),
        ),
    )
}


def info(category: Category | str) -> CategoryInfo:
    """Catalogue entry for a category code (raises KeyError for an unknown code)."""
    return CATALOGUE[Category(category)]
