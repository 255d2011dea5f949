"""The platforms directory: ways to help that already exist, matched to categories (pure but for loading).

The reviewed list lives in `data/platforms.csv` (sources in `data/README.md`). A prompt links its
local opportunities first, then the closest-covering platforms for its category, so no prompt is
ever without a way to help: `check_every_category` guards the shipped file, and the council cannot
switch off the last enabled platform of a category (the API answers 409).
"""

from __future__ import annotations

import csv
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

from shared.contracts import Category, OpportunityLink

__all__ = [
    "COVERAGES",
    "DIRECTORY",
    "MAX_PLATFORMS",
    "Platform",
    "check_every_category",
    "load_directory",
    "platform_links",
    "uncovered",
]

DIRECTORY = Path(__file__).parent / "data" / "platforms.csv"
MAX_PLATFORMS = 3  # after the local ones: enough to choose from, short enough to read
COVERAGES = ("borough", "london", "national")  # most local first


@dataclass(frozen=True, slots=True)
class Platform:
    id: str
    name: str
    description: str
    url: str
    categories: frozenset[Category]
    coverage: str
    enabled: bool = True

    def link(self) -> OpportunityLink:
        return OpportunityLink(
            opportunity_id=f"platform:{self.id}",
            title=self.name,
            organisation=self.name,
            url=self.url,
            kind="platform",
            description=self.description,
        )


def load_directory(path: Path = DIRECTORY) -> list[Platform]:
    """Read the shipped directory; a bad row fails loudly (it is reviewed data, not user input)."""
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    platforms = []
    for n, row in enumerate(rows, start=2):
        try:
            categories = frozenset(Category(c.strip()) for c in row["categories"].split(";") if c.strip())
        except ValueError as exc:
            raise ValueError(f"{path.name} line {n}: {exc}") from exc
        if row["coverage"] not in COVERAGES or not categories or not row["url"].startswith("https://"):
            raise ValueError(f"{path.name} line {n}: coverage, categories or https URL missing")
        platforms.append(
            Platform(
                id=row["id"].strip(),
                name=row["name"].strip(),
                description=row["description"].strip(),
                url=row["url"].strip(),
                categories=categories,
                coverage=row["coverage"],
            )
        )
    return platforms


def uncovered(platforms: Iterable[Platform]) -> set[Category]:
    """Categories no enabled platform matches."""
    covered = {c for p in platforms if p.enabled for c in p.categories}
    return set(Category) - covered


def check_every_category(platforms: Iterable[Platform]) -> None:
    missing = uncovered(platforms)
    if missing:
        raise RuntimeError(f"no platform in the directory for {sorted(missing)}")


def platform_links(
    category: Category, platforms: Iterable[Platform], limit: int = MAX_PLATFORMS
) -> tuple[OpportunityLink, ...]:
    """The enabled platforms for a category, most local coverage first, then by name (deterministic)."""
    matching = [p for p in platforms if p.enabled and category in p.categories]
    matching.sort(key=lambda p: (COVERAGES.index(p.coverage), p.name.casefold(), p.id))
    return tuple(p.link() for p in matching[:limit])
