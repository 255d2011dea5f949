"""HTTP wire models of the JSON API (responses and documented request shapes), apart from Kafka contracts."""

from __future__ import annotations

import uuid
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Category, CouncilSignal, Sensitivity

__all__ = [
    "EVERYWHERE_EVENT_ID_MAX",
    "EVERYWHERE_SUFFIX",
    "BatchResult",
    "CategoryOut",
    "ItemResult",
    "PlacedOn",
    "ProblemOut",
    "SignalBatch",
    "WithdrawEverywhere",
    "WithdrawnEverywhere",
    "problem_responses",
]


class SignalBatch(BaseModel):
    """A batch of signals. The body may also be a bare JSON array, or one signal object."""

    items: list[CouncilSignal] = Field(..., description="Up to INGEST_MAX_BATCH signals (default 5,000).")


class PlacedOn(BaseModel):
    """Where an item was placed: its street and, for place categories, where it will be shown."""

    street_id: str
    street_name: str
    shown_as: str | None = Field(
        None,
        description="Place categories: the area name the street's reports are published under (the "
        "street itself, or the place unit of a street under 8 addresses); null when not published.",
    )


EVERYWHERE_SUFFIX = "#everywhere:"  # + category: the event id of each category's withdrawal
# Room for the suffix within CouncilSignal's 200-character event ids.
EVERYWHERE_EVENT_ID_MAX = 200 - len(EVERYWHERE_SUFFIX) - max(len(c.value) for c in Category)


class WithdrawEverywhere(BaseModel):
    """Withdraw one subject from every category this system may send (docs/privacy.md rule 9), as of now.

    A withdrawal dated in the past stays possible per category (a `withdrawn` signal): here there
    is no date to get wrong, so a valid body is always accepted.
    """

    model_config = ConfigDict(extra="ignore")

    event_id: str = Field(
        ...,
        min_length=1,
        max_length=EVERYWHERE_EVENT_ID_MAX,
        description="Idempotency key: sending it again has no second effect.",
    )
    subject_ref: str = Field(..., min_length=1, max_length=200, description="Pseudonymised at the door.")


class WithdrawnEverywhere(BaseModel):
    categories: list[Category] = Field(..., description="Every category the subject was withdrawn from.")
    accepted: int = Field(..., description="Withdrawals recorded now (0 when this event_id was sent before).")


class ItemResult(BaseModel):
    index: int = Field(..., description="Position in the batch.")
    event_id: str | None = Field(None, description="The council's own event_id, when it could be read.")
    id: uuid.UUID | None = Field(None, description="The anonymised event's deterministic id.")
    outcome: Literal["accepted", "duplicate", "rejected"]
    errors: list[str] = Field(
        default_factory=list,
        description="One per bad field, e.g. `items[3].location: too far from any street (212 m)`.",
    )
    placed_on: PlacedOn | None = Field(
        None, description="Accepted or duplicate items: the street the location resolved to."
    )


class BatchResult(BaseModel):
    accepted: int
    duplicate: int
    rejected: int
    items: list[ItemResult]


class CategoryOut(BaseModel):
    code: Category
    name: str
    description: str
    sensitivity: Sensitivity
    lifetime_days: int = Field(..., description="A signal with no withdrawal stops counting after this.")


class ProblemOut(BaseModel):
    """RFC 9457 problem details (`application/problem+json`)."""

    type: str = "about:blank"
    title: str
    status: int
    detail: str | None = None
    errors: list[dict[str, Any]] | None = Field(None, description="One entry per bad field.")


def problem_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """OpenAPI `responses` entries documenting problem+json errors."""
    text = {
        400: "Bad request",
        401: "Missing or unknown API key",
        403: "Category not allowed for this key",
        413: "Batch too large",
        422: "Nothing valid in the body",
        429: "Rate limit exceeded",
        503: "Could not hand the signals on; nothing was recorded, retry",
    }
    schema = ProblemOut.model_json_schema()
    return {
        s: {"description": text.get(s, "Error"), "content": {"application/problem+json": {"schema": schema}}}
        for s in statuses
    }
