"""The JSON API (`/v1`): street search, subscriptions, and "I can help" responses."""

from __future__ import annotations

import datetime as dt
from typing import Any, Literal, cast
from uuid import UUID, uuid4

from fastapi import APIRouter, Query, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import OpportunityLink
from shared.gazetteer.model import Street
from shared.ratelimit import RATE_LIMITED, SUBSCRIPTIONS_PER_MINUTE, enforce_rate

from .actions import resolve, respond, subscribe
from .context import ready_context
from .help import HELPER_COOKIE, client_key

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["api"])


class StreetOut(BaseModel):
    id: str
    name: str
    ward_code: str | None
    ward_name: str | None
    url: str = Field(..., description="The street's page; append .atom, .rss, .json or /events.")


class StreetsOut(BaseModel):
    streets: list[StreetOut]


class PlaceStreetOut(StreetOut):
    label: str = Field(..., description="Name, a nearby street when the name is shared, and ward.")


def _street_fields(base_url: str, street: Street) -> dict[str, Any]:
    """What every street in an answer says of itself (`StreetOut`'s fields)."""
    return {
        "id": street.id,
        "name": street.name,
        "ward_code": street.ward_code,
        "ward_name": street.ward_name,
        "url": f"{base_url}/streets/{street.id}",
    }


# What a place search can find (the gazetteer's search says it as a plain str).
PlaceKind = Literal["postcode", "postcodes", "unknown_postcode", "streets", "nothing"]


class PlacesOut(BaseModel):
    kind: PlaceKind = Field(..., description="What the query was taken for.")
    postcode: str | None = Field(None, description="The postcode, in its printed form, if one was given.")
    postcodes: list[str] = Field(..., description="Known postcodes starting with a partial postcode.")
    streets: list[PlaceStreetOut]


class SubscriptionIn(BaseModel):
    """One of: a street, a set of streets, a ward, or a radius around a map point."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["street", "streets", "ward", "area"] | None = Field(
        None, description="Inferred from the fields given when omitted."
    )
    street_id: str | None = Field(None, max_length=64)
    street_ids: list[str] | None = Field(None, max_length=500)
    ward_code: str | None = Field(None, max_length=16)
    lat: float | None = Field(None, ge=-90, le=90)
    lon: float | None = Field(None, ge=-180, le=180)
    radius_m: float | None = Field(None, gt=0, description="At most FEEDS_MAX_RADIUS_M (2000 by default).")


class FeedLinks(BaseModel):
    html: str
    atom: str
    rss: str
    json_feed: str
    events: str


class SubscriptionOut(BaseModel):
    kind: str
    label: str
    street_ids: list[str]
    unit_ids: list[str] = Field(..., description="Fixed publication units for person categories.")
    feed_url: str = Field(..., description="Secret: a capability. Anyone with it can read and unsubscribe.")
    feeds: FeedLinks
    unsubscribe_url: str


class ResponseOut(BaseModel):
    response_id: UUID
    prompt_id: str
    responded_on: dt.date
    responses: int = Field(..., description="How many neighbours have said they can help.")
    opportunities: list[OpportunityLink] = Field(..., description="How to connect: each group's own link.")


@router.get("/streets", response_model=StreetsOut, summary="Search streets by name")
async def search_streets(
    request: Request, q: str = Query(..., min_length=1, max_length=100), limit: int = Query(10, ge=1, le=50)
) -> StreetsOut:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    return StreetsOut(
        streets=[StreetOut(**_street_fields(settings.base_url, s)) for s in areas.search(q, limit=limit)]
    )


@router.get(
    "/places", response_model=PlacesOut, summary="Find a place: a postcode (full or partial) or a street"
)
async def find_place(
    request: Request, q: str = Query(..., min_length=1, max_length=100), limit: int = Query(10, ge=1, le=50)
) -> PlacesOut:
    """As the home page's search box: typos, abbreviations and partial postcodes are understood."""
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    found = areas.find(q, limit=limit)
    return PlacesOut(
        kind=cast(PlaceKind, found.kind),  # one of these five; the model checks it again
        postcode=found.postcode,
        postcodes=found.postcodes,
        streets=[
            PlaceStreetOut(**_street_fields(settings.base_url, s), label=areas.label(s))
            for s in found.streets
        ],
    )


@router.post(
    "/subscriptions",
    response_model=SubscriptionOut,
    status_code=201,
    summary="Subscribe (no account): returns a secret feed URL",
    responses=RATE_LIMITED,
)
async def create_subscription(request: Request, body: SubscriptionIn) -> SubscriptionOut:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    sel = resolve(areas, settings, **body.model_dump())
    enforce_rate(request, "subscriptions", SUBSCRIPTIONS_PER_MINUTE, SUBSCRIPTIONS_PER_MINUTE)
    done = await subscribe(ctx, sel)
    base = f"{settings.base_url}/s/{done.token}"
    return SubscriptionOut(
        kind=sel.kind,
        label=sel.label,
        street_ids=list(sel.street_ids),
        unit_ids=list(sel.unit_ids),
        feed_url=base,
        unsubscribe_url=f"{base}/unsubscribe",
        feeds=FeedLinks(
            html=base,
            atom=f"{base}.atom",
            rss=f"{base}.rss",
            json_feed=f"{base}.json",
            events=f"{base}/events",
        ),
    )


@router.post(
    "/prompts/{prompt_id}/responses",
    response_model=ResponseOut,
    status_code=201,
    summary="Say 'I can help' (anonymous; rate limited)",
    responses={
        404: {"description": "Unknown or retired prompt"},
        429: {"description": "Too many responses from this client"},
    },
)
async def create_response(request: Request, prompt_id: str) -> ResponseOut:
    ctx = ready_context(request)
    # Browsers that clicked on the page send the helper cookie; other clients count per request.
    helper = request.cookies.get(HELPER_COOKIE) or uuid4().hex
    event, prompt, count, _ = await respond(ctx, prompt_id, client_key(request), helper)
    return ResponseOut(
        response_id=event.response_id,
        prompt_id=prompt.prompt_id,
        responded_on=event.responded_on,
        responses=count,
        opportunities=list(prompt.opportunities),
    )
