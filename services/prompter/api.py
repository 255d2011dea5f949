"""HTTP API: opportunities (public list; partner/council writes) and response impact (partners)."""

from __future__ import annotations

import datetime as dt
import hmac
import logging
import uuid

from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.contracts import Category
from shared.http import Problem
from shared.service import Runtime

from . import repository as repo
from .matching import NO_PLACES, Places, covers_ward
from .places import GazetteerPlaces
from .publisher import PromptPublisher
from .schemas import ImpactOut, OpportunityIn, OpportunityList, OpportunityOut, PromptImpact, WardImpact

__all__ = ["router"]

log = logging.getLogger(__name__)
router = APIRouter(prefix="/v1")
_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="partnerToken",
    description="The council/partner token (PROMPTER_ADMIN_TOKEN).",
)


def _runtime(request: Request) -> Runtime:
    return request.app.state.runtime


def require_partner(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> None:
    """401 without a Bearer token, 403 with a wrong one (or when no token is configured)."""
    if credentials is None or credentials.scheme.lower() != "bearer" or not credentials.credentials:
        raise Problem(
            401,
            "Authentication required",
            "Send `Authorization: Bearer <token>`.",
            headers={"WWW-Authenticate": 'Bearer realm="prompter"'},
        )
    expected = _runtime(request).settings.admin_token
    if expected is None or not hmac.compare_digest(
        credentials.credentials.encode(), expected.get_secret_value().encode()
    ):
        raise Problem(403, "Not allowed", "This token may not change opportunities or read impact.")


def _places(runtime: Runtime) -> Places:
    return runtime.state.get("places", NO_PLACES)


def _check_area(body: OpportunityIn, places: Places) -> None:
    """Unknown street ids are a 422 naming each one (only checkable once a gazetteer is loaded)."""
    if not isinstance(places, GazetteerPlaces):
        return
    errors = [
        {"field": f"area.street_ids.{i}", "message": "unknown street id", "type": "value_error"}
        for i, sid in enumerate(body.area.street_ids)
        if not places.has_street(sid)
    ]
    if errors:
        raise Problem(
            422,
            "Request body or parameters are invalid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )


def _not_found(opp_id: uuid.UUID) -> Problem:
    return Problem(
        404,
        "No such opportunity",
        f"No opportunity has id {opp_id}.",
        errors=[{"field": "opportunity_id", "message": "not found", "type": "not_found"}],
    )


async def _reevaluate(runtime: Runtime, before, after) -> None:
    publisher: PromptPublisher = runtime.state["publisher"]
    try:
        await publisher.opportunity_changed(before, after)
    except Exception:
        # The opportunity is stored; failing the request now would invite a duplicate registration.
        # The periodic reconcile re-evaluates every prompt, so the change still reaches them.
        log.exception("re-evaluating prompts failed; the reconcile loop will catch up")


@router.post(
    "/opportunities",
    status_code=201,
    response_model=OpportunityOut,
    dependencies=[Depends(require_partner)],
    tags=["opportunities"],
)
async def register_opportunity(body: OpportunityIn, request: Request, response: Response) -> OpportunityOut:
    """Register a way to help. Prompts it is near are republished with a link to it."""
    runtime = _runtime(request)
    _check_area(body, _places(runtime))
    async with runtime.pool.acquire() as conn:
        row = await repo.insert_opportunity(conn, body.columns())
    await _reevaluate(runtime, None, repo.to_opportunity(row))
    response.headers["Location"] = f"/v1/opportunities/{row['id']}"
    return OpportunityOut.from_row(row)


@router.put(
    "/opportunities/{opportunity_id}",
    response_model=OpportunityOut,
    dependencies=[Depends(require_partner)],
    tags=["opportunities"],
)
async def update_opportunity(
    opportunity_id: uuid.UUID, body: OpportunityIn, request: Request
) -> OpportunityOut:
    """Replace an opportunity's details; prompts it was or is now near are re-evaluated."""
    runtime = _runtime(request)
    _check_area(body, _places(runtime))
    async with runtime.pool.acquire() as conn, conn.transaction():
        before = await repo.get_opportunity(conn, opportunity_id, for_update=True)
        row = await repo.update_opportunity(conn, opportunity_id, body.columns()) if before else None
    if row is None:
        raise _not_found(opportunity_id)
    await _reevaluate(runtime, repo.to_opportunity(before), repo.to_opportunity(row))
    return OpportunityOut.from_row(row)


@router.delete(
    "/opportunities/{opportunity_id}",
    status_code=204,
    dependencies=[Depends(require_partner)],
    tags=["opportunities"],
)
async def retire_opportunity(opportunity_id: uuid.UUID, request: Request) -> Response:
    """Retire an opportunity (repeating it is harmless); prompts drop the link."""
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn:
        row = await repo.retire_opportunity(conn, opportunity_id)
    if row is None:
        raise _not_found(opportunity_id)
    await _reevaluate(runtime, repo.to_opportunity(row), None)
    return Response(status_code=204)


@router.get("/opportunities", response_model=OpportunityList, tags=["opportunities"])
async def list_opportunities(
    request: Request,
    ward: str | None = Query(None, max_length=16, description="ONS ward code."),
    category: Category | None = Query(None, description="Category code."),
) -> OpportunityList:
    """Current and future opportunities (public), optionally in one ward and/or for one category."""
    runtime = _runtime(request)
    async with runtime.pool.acquire() as conn:
        rows = await repo.list_opportunities(conn, category, dt.datetime.now(dt.UTC).date())
    places = _places(runtime)
    if ward is not None:
        rows = [r for r in rows if covers_ward(repo.to_opportunity(r), ward, places)]
    return OpportunityList(opportunities=[OpportunityOut.from_row(r) for r in rows])


@router.get("/opportunities/{opportunity_id}", response_model=OpportunityOut, tags=["opportunities"])
async def get_opportunity(opportunity_id: uuid.UUID, request: Request) -> OpportunityOut:
    async with _runtime(request).pool.acquire() as conn:
        row = await repo.get_opportunity(conn, opportunity_id)
    if row is None or row["retired_at"] is not None:
        raise _not_found(opportunity_id)
    return OpportunityOut.from_row(row)


@router.get("/impact", response_model=ImpactOut, dependencies=[Depends(require_partner)], tags=["impact"])
async def impact(
    request: Request, ward: str | None = Query(None, max_length=16, description="ONS ward code.")
) -> ImpactOut:
    """'I can help' responses per prompt (since the first one) and per ward, for partners and operators."""
    async with _runtime(request).pool.acquire() as conn:
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
