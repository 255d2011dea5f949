"""HTTP API: opportunities (public list; each organisation writes its own), the change audit, the
platforms directory, residents' offers of contact, and response impact."""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response

from shared.contracts import Category
from shared.http import Problem

from . import actions
from . import org_repository as org_repo
from . import repository as repo
from .auth import Caller, CurrentOrganisation, council_reader
from .context import Context
from .matching import covers_ward
from .ratelimit import check_offer_rate
from .schemas import (
    ChangeList,
    ImpactOut,
    OfferIn,
    OfferList,
    OfferOut,
    OpportunityChange,
    OpportunityIn,
    OpportunityList,
    OpportunityOut,
    PlatformIn,
    PlatformList,
    PlatformOut,
    PlatformSwitch,
    PromptImpact,
    WardImpact,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1")


def _problem(description: str) -> dict[str, Any]:
    return {"description": description, "content": {"application/problem+json": {}}}


# FastAPI's `responses`: extra statuses a route documents in its OpenAPI.
_Responses = dict[int | str, dict[str, Any]]

_AUTH: _Responses = {401: _problem("No API key, or an unknown one."), 403: _problem("The key was revoked.")}
_COUNCIL: _Responses = {
    401: _problem("No token, or an unknown one."),
    403: _problem("Not the operator or a council admin organisation."),
}
_INVALID: _Responses = {422: _problem("A field is invalid (named in `errors`).")}
_MISSING: _Responses = {
    404: _problem("No such opportunity of yours (another organisation's answers 404 too).")
}
_RETIRED: _Responses = {409: _problem("The opportunity is retired.")}


def _out(row: asyncpg.Record) -> OpportunityOut:
    return OpportunityOut.from_row(row)


@router.post(
    "/opportunities",
    status_code=201,
    response_model=OpportunityOut,
    tags=["opportunities"],
    responses={**_AUTH, **_INVALID},
)
async def register_opportunity(
    body: OpportunityIn, request: Request, ctx: Context, response: Response, org: CurrentOrganisation
) -> OpportunityOut:
    """Register a way to help, owned by the key's organisation. Prompts it is near link to it."""
    row = await actions.create_opportunity(ctx, org, body)
    response.headers["Location"] = f"/v1/opportunities/{row['id']}"
    return _out(row)


@router.put(
    "/opportunities/{opportunity_id}",
    response_model=OpportunityOut,
    tags=["opportunities"],
    responses={**_AUTH, **_MISSING, **_RETIRED, **_INVALID},
)
async def update_opportunity(
    opportunity_id: uuid.UUID,
    body: OpportunityIn,
    request: Request,
    ctx: Context,
    org: CurrentOrganisation,
) -> OpportunityOut:
    """Replace one of your opportunities' details; prompts it was or is now near are re-evaluated."""
    return _out(await actions.update_opportunity(ctx, org, opportunity_id, body))


@router.post(
    "/opportunities/{opportunity_id}/pause",
    response_model=OpportunityOut,
    tags=["opportunities"],
    responses={**_AUTH, **_MISSING, **_RETIRED},
)
async def pause_opportunity(
    opportunity_id: uuid.UUID, request: Request, ctx: Context, org: CurrentOrganisation
) -> OpportunityOut:
    """Pause one of your opportunities: prompts drop the link until it is resumed."""
    return _out(await actions.change_status(ctx, org, opportunity_id, pause=True))


@router.post(
    "/opportunities/{opportunity_id}/resume",
    response_model=OpportunityOut,
    tags=["opportunities"],
    responses={**_AUTH, **_MISSING, **_RETIRED},
)
async def resume_opportunity(
    opportunity_id: uuid.UUID, request: Request, ctx: Context, org: CurrentOrganisation
) -> OpportunityOut:
    """Resume a paused opportunity of yours."""
    return _out(await actions.change_status(ctx, org, opportunity_id, pause=False))


@router.delete(
    "/opportunities/{opportunity_id}",
    status_code=204,
    tags=["opportunities"],
    responses={**_AUTH, **_MISSING},
)
async def retire_opportunity(
    opportunity_id: uuid.UUID, request: Request, ctx: Context, org: CurrentOrganisation
) -> Response:
    """Retire one of your opportunities (repeating it is harmless); prompts drop the link."""
    await actions.retire_opportunity(ctx, org, opportunity_id)
    return Response(status_code=204)


@router.get("/opportunities", response_model=OpportunityList, tags=["opportunities"], responses=_INVALID)
async def list_opportunities(
    ctx: Context,
    ward: str | None = Query(None, max_length=16, description="ONS ward code."),
    category: Category | None = Query(None, description="Category code."),
) -> OpportunityList:
    """Active current and future opportunities (public), optionally in one ward and/or for one category."""
    async with ctx.pool.acquire() as conn:
        rows = await repo.list_opportunities(conn, category, dt.datetime.now(dt.UTC).date())
    places = ctx.places
    if ward is not None:
        rows = [r for r in rows if covers_ward(repo.to_opportunity(r), ward, places)]
    return OpportunityList(opportunities=[_out(r) for r in rows])


@router.get(
    "/opportunities/{opportunity_id}",
    response_model=OpportunityOut,
    tags=["opportunities"],
    responses={404: _problem("No such active opportunity."), **_INVALID},
)
async def get_opportunity(opportunity_id: uuid.UUID, request: Request, ctx: Context) -> OpportunityOut:
    """One active opportunity (public)."""
    async with ctx.pool.acquire() as conn:
        row = await repo.get_opportunity(conn, opportunity_id)
    if row is None or row["status"] != "active":
        raise actions.not_found(opportunity_id)
    return _out(row)


@router.get(
    "/opportunities/{opportunity_id}/changes",
    response_model=ChangeList,
    tags=["opportunities"],
    responses={**_AUTH, **_MISSING},
)
async def opportunity_changes(
    opportunity_id: uuid.UUID, request: Request, ctx: Context, org: CurrentOrganisation
) -> ChangeList:
    """Every change to one of your opportunities (who, when, what), newest first."""
    async with ctx.pool.acquire() as conn:
        await actions.owned(conn, opportunity_id, org)
        rows = await org_repo.changes(conn, opportunity_id=opportunity_id)
    return ChangeList(changes=[OpportunityChange(**r) for r in rows])


# --- your organisation ------------------------------------------------------------------------


@router.get(
    "/organisation/opportunities", response_model=OpportunityList, tags=["organisation"], responses=_AUTH
)
async def my_opportunities(ctx: Context, org: CurrentOrganisation) -> OpportunityList:
    """All your opportunities, active, paused and retired."""
    async with ctx.pool.acquire() as conn:
        rows = await repo.organisation_opportunities(conn, org["id"])
    return OpportunityList(opportunities=[_out(r) for r in rows])


@router.get("/organisation/offers", response_model=OfferList, tags=["organisation"], responses=_AUTH)
async def my_offers(ctx: Context, org: CurrentOrganisation) -> OfferList:
    """Offers of help you received: contact details where residents consented, and the counts."""
    async with ctx.pool.acquire() as conn:
        rows = await org_repo.offers_for(conn, org["id"])
        totals = await org_repo.offer_totals(conn, org["id"])
        responses = await org_repo.responses_for(conn, org["id"])
    offers = [
        OfferOut(
            id=str(r["id"]),
            prompt_id=r["prompt_id"],
            opportunity_id=str(r["opportunity_id"]) if r["opportunity_id"] else None,
            first_name=r["first_name"],
            email=r["email"],
            consent_text=r["consent_text"],
            created_at=r["created_at"],
        )
        for r in rows
    ]
    return OfferList(offers=offers, responses=responses, **totals)


@router.post(
    "/organisation/offers/{offer_id}/handed-over",
    status_code=204,
    tags=["organisation"],
    responses={**_AUTH, 404: _problem("No such offer of yours (or already handed over).")},
)
async def offer_handed_over(
    offer_id: uuid.UUID, request: Request, ctx: Context, org: CurrentOrganisation
) -> Response:
    """You have the resident's details: they are deleted now."""
    if not await actions.hand_over(ctx, org, offer_id):
        raise Problem(404, "No such offer", errors=[{"field": "offer_id", "message": "not found"}])
    return Response(status_code=204)


@router.post(
    "/offers",
    status_code=201,
    tags=["residents"],
    responses={
        404: _problem("The prompt is not live."),
        429: _problem("Too many from this client."),
        **_INVALID,
    },
)
async def offer(body: OfferIn, request: Request, ctx: Context) -> dict[str, str]:
    """A resident leaves a first name and email for ONE organisation the prompt links (with consent)."""
    check_offer_rate(request)
    organisation, _ = await actions.make_offer(ctx, body, dt.datetime.now(dt.UTC))
    return {"organisation": organisation, "status": "stored for that organisation only"}


# --- the council's overview -------------------------------------------------------------------


@router.get("/changes", response_model=ChangeList, tags=["council"], responses=_COUNCIL)
async def all_changes(
    ctx: Context,
    organisation_id: uuid.UUID | None = Query(None, description="Only this organisation's."),
    caller: Caller = Depends(council_reader),
) -> ChangeList:
    """Every organisation's opportunity changes (who, when, what), newest first: for the council."""
    async with ctx.pool.acquire() as conn:
        rows = await org_repo.changes(conn, organisation_id=organisation_id, limit=1000)
    return ChangeList(changes=[OpportunityChange(**r) for r in rows])


def _platform(row: asyncpg.Record) -> PlatformOut:
    return PlatformOut(
        id=row["id"],
        name=row["name"],
        description=row["description"],
        url=row["url"],
        categories=[Category(c) for c in row["categories"]],
        coverage=row["coverage"],
        source=row["source"],
        enabled=row["enabled"],
    )


@router.get("/platforms", response_model=PlatformList, tags=["platforms"])
async def list_platforms(ctx: Context) -> PlatformList:
    """The platforms directory, with which entries the council has switched on (public)."""
    async with ctx.pool.acquire() as conn:
        rows = await org_repo.all_platforms(conn)
    return PlatformList(platforms=[_platform(r) for r in rows])


@router.post(
    "/platforms",
    status_code=201,
    response_model=PlatformOut,
    tags=["platforms"],
    responses={**_COUNCIL, 409: _problem("The id is taken."), **_INVALID},
)
async def add_platform(
    body: PlatformIn, request: Request, ctx: Context, caller: Caller = Depends(council_reader)
) -> PlatformOut:
    """Add the council's own platform to the directory."""
    return _platform(await actions.add_platform(ctx, body))


@router.put(
    "/platforms/{platform_id}",
    response_model=PlatformOut,
    tags=["platforms"],
    responses={
        **_COUNCIL,
        404: _problem("No such platform."),
        409: _problem("It is the last enabled platform of a category."),
        **_INVALID,
    },
)
async def switch_platform(
    platform_id: str,
    body: PlatformSwitch,
    request: Request,
    ctx: Context,
    caller: Caller = Depends(council_reader),
) -> PlatformOut:
    """Switch a platform on or off for this council's prompts."""
    return _platform(await actions.switch_platform(ctx, platform_id, body.enabled))


@router.get("/impact", response_model=ImpactOut, tags=["impact"], responses={**_COUNCIL, **_INVALID})
async def impact(
    ctx: Context,
    ward: str | None = Query(None, max_length=16, description="ONS ward code."),
    caller: Caller = Depends(council_reader),
) -> ImpactOut:
    """'I can help' responses per prompt (since the first one) and per ward, for the council."""
    async with ctx.pool.acquire() as conn:
        prompts, wards = await repo.impact(conn, ward)
    return ImpactOut(
        prompts=[
            PromptImpact(
                prompt_id=r["prompt_id"],
                area_id=r["area_id"],
                category=r["category"],
                ward_code=r["ward_code"],
                title=r["title"],
                status=r["status"],
                responses=r["responses"],
                since=r["since"],
                last_response_on=r["last_on"],
            )
            for r in prompts
        ],
        wards=[
            WardImpact(
                ward_code=r["ward_code"], prompts=r["prompts"], responses=r["responses"], since=r["since"]
            )
            for r in wards
        ],
    )
