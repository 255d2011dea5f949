"""What a feed shows of a prompt: a privacy-coarsened entry, identical in every format."""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Any
from urllib.parse import quote

from shared.contracts import OpportunityLink, PromptPublished, Sensitivity, info

__all__ = ["FeedEntry", "entry_from_prompt", "entry_updated", "prompt_path", "tag_uri"]


@dataclass(frozen=True)
class FeedEntry:
    prompt_id: str
    revision: int
    title: str
    body: str
    area_id: str
    area_kind: str
    area_name: str
    ward_code: str | None
    street_ids: tuple[str, ...]
    category: str
    category_name: str
    sensitivity: Sensitivity
    opportunities: tuple[OpportunityLink, ...]
    updated: dt.datetime  # day precision (midnight UTC) for person categories
    id: str  # stable tag: URI
    url: str  # the prompt's own page (with "I can help")

    @property
    def is_person(self) -> bool:
        return self.sensitivity is Sensitivity.PERSON

    def as_json(self) -> dict[str, Any]:
        """The entry as SSE data / JSON API item (no field a feed does not show)."""
        return {
            "id": self.id,
            "prompt_id": self.prompt_id,
            "revision": self.revision,
            "title": self.title,
            "body": self.body,
            "area_name": self.area_name,
            "area_kind": self.area_kind,
            "ward_code": self.ward_code,
            "street_ids": list(self.street_ids),
            "category": self.category,
            "category_name": self.category_name,
            "sensitivity": str(self.sensitivity),
            "opportunities": [o.model_dump(mode="json") for o in self.opportunities],
            "updated": iso(self.updated, day_only=self.is_person),
            "url": self.url,
        }


def iso(value: dt.datetime, *, day_only: bool = False) -> str:
    """RFC 3339 in UTC with an explicit offset; person categories show the date only."""
    if day_only:
        return value.astimezone(dt.UTC).date().isoformat()
    return value.astimezone(dt.UTC).replace(microsecond=0).isoformat()


def entry_updated(prompt: PromptPublished) -> dt.datetime:
    """When the entry last changed, as a feed may show it.

    Person categories are released monthly; a finer time than the release day could hint at when
    a flag was raised, so they show midnight UTC of the release date.
    """
    at = prompt.published_at.astimezone(dt.UTC)
    if prompt.sensitivity is Sensitivity.PERSON:
        return dt.datetime.combine(at.date(), dt.time(), tzinfo=dt.UTC)
    return at.replace(microsecond=0)


def prompt_path(prompt_id: str) -> str:
    return f"/prompts/{quote(prompt_id, safe='')}"


def tag_uri(tag_authority: str, kind: str, key: str) -> str:
    """RFC 4151 tag URI, stable for the life of the thing it names."""
    return f"tag:{tag_authority}:{kind}/{quote(key, safe='')}"


def entry_from_prompt(prompt: PromptPublished, *, base_url: str, tag_authority: str) -> FeedEntry:
    return FeedEntry(
        prompt_id=prompt.prompt_id,
        revision=prompt.revision,
        title=prompt.title,
        body=prompt.body,
        area_id=prompt.area_id,
        area_kind=prompt.area_kind,
        area_name=prompt.area_name,
        ward_code=prompt.ward_code,
        street_ids=prompt.street_ids,
        category=str(prompt.category),
        category_name=info(prompt.category).name,
        sensitivity=prompt.sensitivity,
        opportunities=prompt.opportunities,
        updated=entry_updated(prompt),
        id=tag_uri(tag_authority, "prompt", prompt.prompt_id),
        url=f"{base_url}{prompt_path(prompt.prompt_id)}",
    )
