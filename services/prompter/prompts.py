"""A need plus nearby opportunities becomes prompt content; its hash decides whether to republish."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterable
from dataclasses import dataclass

import msgspec

from shared.contracts import Category, OpportunityLink, PromptPublished, PromptRetired, StreetNeedChanged

from .matching import Opportunity, Places, nearby
from .platforms import Platform, platform_links
from .templates import render

__all__ = ["Draft", "compose", "published", "retired"]

# The canonical form hashed: keys sorted, no spaces, UTF-8 as is. Byte for byte what
# `json.dumps(sort_keys=True, separators=(",", ":"), ensure_ascii=False)` gave, so stored hashes
# still match (tests/unit/prompter/test_prompter_prompts.py), at a fraction of the cost.
_canonical = msgspec.json.Encoder(order="sorted")


@dataclass(frozen=True, slots=True)
class Draft:
    """What readers see of a prompt. Only this decides whether a new revision is published."""

    title: str
    body: str
    opportunities: tuple[OpportunityLink, ...]

    @property
    def content_hash(self) -> str:
        content = {
            "title": self.title,
            "body": self.body,
            "opportunities": [o.model_dump(mode="json") for o in self.opportunities],
        }
        return hashlib.sha256(_canonical.encode(content)).hexdigest()


def compose(
    need: StreetNeedChanged,
    candidates: Iterable[Opportunity],
    places: Places,
    today: dt.date,
    platforms: Iterable[Platform] = (),
) -> Draft | None:
    """The prompt for a need, or None when it calls for none (a ward's steady quarterly trend).

    Local opportunities come first (the wording counts only them), then the category's platforms.
    """
    local = nearby(need, candidates, places, today)
    wording = render(need, len(local))
    links = local + platform_links(need.category, platforms)
    return None if wording is None else Draft(wording.title, wording.body, links)


def _minute(at: dt.datetime) -> dt.datetime:
    return at.astimezone(dt.UTC).replace(second=0, microsecond=0)


def published(need: StreetNeedChanged, draft: Draft, revision: int, at: dt.datetime) -> PromptPublished:
    return PromptPublished(
        prompt_id=need.key,
        revision=revision,
        area_id=need.area_id,
        area_kind=need.area_kind,
        area_name=need.area_name,
        ward_code=need.ward_code,
        street_ids=need.street_ids,
        category=need.category,
        sensitivity=need.sensitivity,
        title=draft.title,
        body=draft.body,
        opportunities=draft.opportunities,
        published_at=_minute(at),
    )


def retired(prompt_id: str, at: dt.datetime) -> PromptRetired:
    area_id, _, category = prompt_id.rpartition(":")
    return PromptRetired(
        prompt_id=prompt_id, area_id=area_id, category=Category(category), retired_at=_minute(at)
    )
