"""Operators' API (the console): council systems and their keys, volumes, rejects, withdrawals, key versions.

Bearer INGEST_OPERATOR_TOKEN. Keys are shown once in the answer that creates or rotates them; only
their hash is stored. A withdrawal by council reference goes through the same pipeline as any
signal, so the reference is pseudonymised at the door and never stored in clear.
"""

from __future__ import annotations

import datetime as dt
import uuid
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from pydantic import BaseModel, ConfigDict, Field

from shared.contracts import Category
from shared.http import Problem, operator_token

from . import metrics, repository, systems
from .context import Context
from .pipeline import OutOfScope, ProduceFailed
from .repository import System

__all__ = ["router"]

COUNCIL_PATTERN = r"^[a-z0-9][a-z0-9-]{0,62}$"


# Bearer token from INGEST_OPERATOR_TOKEN; everyone is refused while it is unset.
operator = operator_token("operator_token", realm="ingest-operators")


router = APIRouter(prefix="/v1/admin", tags=["operators"], dependencies=[Depends(operator)])


class SystemOut(BaseModel):
    id: uuid.UUID
    name: str
    council_id: str
    categories: list[str]
    rate_per_minute: int | None
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class SystemCreated(BaseModel):
    system: SystemOut
    key: str = Field(..., description="The API key, shown once; only its hash is stored.")


class SystemIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    council_id: str = Field(..., pattern=COUNCIL_PATTERN)
    categories: list[Category] = Field(..., min_length=1)
    rate_per_minute: int | None = Field(None, ge=1, le=100_000)


class SystemUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    categories: list[Category] = Field(..., min_length=1)
    rate_per_minute: int | None = Field(None, ge=1, le=100_000)


class WithdrawalIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    system_id: uuid.UUID
    subject_ref: str = Field(..., min_length=1, max_length=200)
    categories: list[Category] | None = Field(None, description="Default: every category of the system.")


def _out(system: System) -> SystemOut:
    return SystemOut(
        id=system.id,
        name=system.name,
        council_id=system.council_id,
        categories=sorted(system.categories),
        rate_per_minute=system.rate_per_minute,
        created_at=system.created_at,
        revoked_at=system.revoked_at,
    )


@router.get("/systems", response_model=list[SystemOut], summary="Council systems (never their keys)")
async def list_systems(ctx: Context) -> list[SystemOut]:
    async with ctx.pool.acquire() as conn:
        return [_out(s) for s in await repository.list_systems(conn)]


@router.post("/systems", response_model=SystemCreated, status_code=201, summary="Register a council system")
async def create_system(ctx: Context, body: SystemIn) -> SystemCreated:
    system, key = await systems.create(
        ctx,
        name=body.name,
        council_id=body.council_id,
        categories=[c.value for c in body.categories],
        rate_per_minute=body.rate_per_minute,
    )
    return SystemCreated(system=_out(system), key=key)


@router.post("/systems/{system_id}/rotate", response_model=SystemCreated, summary="Replace a system's key")
async def rotate_system(ctx: Context, system_id: uuid.UUID) -> SystemCreated:
    """The old key stops working at once; the new one is shown once."""
    system, key = await systems.rotate(ctx, system_id)
    return SystemCreated(system=_out(system), key=key)


@router.post("/systems/{system_id}/revoke", response_model=SystemOut, summary="Revoke a system's key")
async def revoke_system(ctx: Context, system_id: uuid.UUID) -> SystemOut:
    return _out(await systems.revoke(ctx, system_id))


@router.put("/systems/{system_id}", response_model=SystemOut, summary="Set categories and rate limit")
async def update_system(ctx: Context, system_id: uuid.UUID, body: SystemUpdate) -> SystemOut:
    system = await systems.update(ctx, system_id, [c.value for c in body.categories], body.rate_per_minute)
    return _out(system)


@router.get("/volumes", summary="Signals accepted per system, category and day")
async def volumes(ctx: Context, days: Annotated[int, Query(ge=1, le=366)] = 30) -> list[dict[str, Any]]:
    """Accepted signals per system, category and day (category null: accepted before it was kept)."""
    async with ctx.pool.acquire() as conn:
        rows = await repository.accepted_per_day(conn, days)
    return [
        {
            "system_id": str(r["system_id"]),
            "system": r["name"],
            "category": r["category"],
            "day": r["day"].isoformat(),
            "signals": r["signals"],
        }
        for r in rows
    ]


@router.get("/open311-volumes", summary="Open311 requests per service code and day")
async def open311_volumes(
    ctx: Context, days: Annotated[int, Query(ge=1, le=366)] = 30
) -> list[dict[str, Any]]:
    async with ctx.pool.acquire() as conn:
        rows = await repository.open311_per_day(conn, days)
    return [
        {"category": r["service_code"], "day": r["day"].isoformat(), "requests": r["requests"]} for r in rows
    ]


@router.get("/rejects", summary="Rejected signals by source and reason since this replica started")
async def rejects() -> list[dict[str, Any]]:
    found = []
    for family in metrics.REJECTED.collect():
        for sample in family.samples:
            if sample.name.endswith("_total") and sample.value:
                found.append({**sample.labels, "count": int(sample.value)})
    return sorted(found, key=lambda r: (-r["count"], r["source"], r["reason"]))


@router.get("/pseudonym-keys", summary="Pseudonymisation secret versions (never the secrets)")
async def pseudonym_keys(ctx: Context) -> dict[str, Any]:
    settings = ctx.settings
    return {
        "versions": sorted(settings.pseudonym_keys_by_version),
        "in_use": settings.pseudonym_key_version,
    }


@router.post("/withdrawals", status_code=202, summary="Withdraw a subject by council reference")
async def withdraw(ctx: Context, body: WithdrawalIn) -> dict[str, Any]:
    """A `withdrawn` signal per category through the ordinary pipeline: the reference is pseudonymised
    at the door like any other, and the aggregator ends the subject on every street at once."""
    async with ctx.pool.acquire() as conn:
        row = await conn.fetchrow("SELECT key_hash FROM ingest.council_systems WHERE id = $1", body.system_id)
        system = await repository.find_system(conn, row["key_hash"]) if row else None
    if system is None:
        raise Problem(404, "No such active council system", f"no active council system {body.system_id}")
    categories = sorted({c.value for c in body.categories} if body.categories else system.categories)
    if unknown := [c for c in categories if c not in system.categories]:
        raise Problem(
            409,  # the request is well-formed; the system's own scope forbids it
            "Category not allowed for this system",
            errors=[{"field": "categories", "message": f"not allowed: {', '.join(unknown)}"}],
        )
    gazetteer = ctx.gazetteer
    # The aggregator ends a withdrawn subject on every street; the street named here is only a carrier.
    street_id = next(iter(gazetteer.streets))
    now = dt.datetime.now(dt.UTC)
    batch = uuid.uuid4().hex
    items = [
        {
            "event_id": f"console-withdrawal:{batch}:{category}",
            "category": category,
            "action": "withdrawn",
            "subject_ref": body.subject_ref,
            "occurred_at": now.isoformat(),
            "location": {"street_id": street_id},
        }
        for category in categories
    ]
    try:
        outcomes = await ctx.pipeline.accept(items, system, "http")
    except OutOfScope as exc:
        raise Problem(409, "Category not allowed for this system", str(exc)) from exc
    except ProduceFailed as exc:
        raise Problem(503, "Kafka unavailable", "nothing was recorded; try again") from exc
    bad = [o for o in outcomes if o.outcome == "rejected"]
    if bad:
        raise Problem(422, "Withdrawal rejected", "; ".join(e for o in bad for e in o.errors))
    return {"categories": categories, "accepted": sum(o.outcome == "accepted" for o in outcomes)}
