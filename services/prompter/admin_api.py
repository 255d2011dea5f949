"""Operators' API (the console): moderate organisations' opportunities, edit platforms, organisation keys.

Bearer PROMPTER_ADMIN_TOKEN (the operator); everyone else is refused. Adding and switching platforms
stay on /v1/platforms (the operator may use them); this adds what only the operator may do.
"""

from __future__ import annotations

import hmac
import uuid
from typing import Any, Literal

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field, HttpUrl, field_validator

from shared.contracts import Category
from shared.http import Problem
from shared.keys import hash_key, new_key

from . import actions
from . import org_repository as org_repo
from .context import Context, prompter_context
from .schemas import _check_url

__all__ = ["router"]

ORG_KEY_PREFIX = "sno_"  # as `streetneeds prompter create-organisation` makes them


def operator(request: Request) -> None:
    expected = prompter_context(request).settings.admin_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if (
        expected is None
        or scheme.lower() != "bearer"
        or not hmac.compare_digest(given.encode(), expected.get_secret_value().encode())
    ):
        raise Problem(
            401,
            "Operator token required",
            "send Authorization: Bearer <operator token>",
            headers={"WWW-Authenticate": 'Bearer realm="prompter-operators"'},
        )


router = APIRouter(prefix="/v1/admin", tags=["operators"], dependencies=[Depends(operator)])


class PlatformEdit(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=120)
    description: str = Field(..., min_length=1, max_length=300)
    url: HttpUrl
    categories: list[Category] = Field(..., min_length=1)
    coverage: Literal["national", "london", "borough"] = "borough"

    @field_validator("url")
    @classmethod
    def _safe_url(cls, value: HttpUrl) -> HttpUrl | None:
        return _check_url(value)


class OrganisationIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)
    kind: Literal["vcs", "council"] = "vcs"


def _opportunity(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "title": row["title"],
        "organisation": row["organisation"],
        "organisation_id": str(row["organisation_id"]) if row["organisation_id"] else None,
        "categories": list(row["categories"]),
        "status": "retired" if row["retired_at"] is not None else row["status"],
        "updated_at": row["updated_at"].isoformat(),
    }


def _organisation(row: Any) -> dict[str, Any]:
    return {
        "id": str(row["id"]),
        "name": row["name"],
        "kind": row["kind"],
        "council_admin": row["council_admin"],
        "created_at": row["created_at"].isoformat(),
        "revoked_at": row["revoked_at"].isoformat() if row["revoked_at"] else None,
    }


@router.get("/opportunities", summary="Every opportunity, whatever its status or owner")
async def list_all_opportunities(ctx: Context) -> list[dict[str, Any]]:
    rows = await ctx.pool.fetch(
        "SELECT * FROM prompter.opportunities ORDER BY retired_at NULLS FIRST, organisation, title, id"
    )
    return [_opportunity(r) for r in rows]


@router.post("/opportunities/{opportunity_id}/{change}", summary="Switch an opportunity off or on")
async def moderate(
    ctx: Context, opportunity_id: uuid.UUID, change: Literal["pause", "resume"]
) -> dict[str, Any]:
    """The operator pauses (prompts drop the link) or resumes any organisation's opportunity."""
    return _opportunity(await actions.change_status(ctx, None, opportunity_id, pause=change == "pause"))


@router.put("/platforms/{platform_id}", summary="Edit a platform's entry in the directory")
async def edit_platform(ctx: Context, platform_id: str, body: PlatformEdit) -> dict[str, Any]:
    row = await actions.edit_platform(ctx, platform_id, body.model_dump(mode="json"))
    return {k: row[k] for k in ("id", "name", "description", "url", "coverage", "source", "enabled")} | {
        "categories": list(row["categories"])
    }


@router.get("/organisations", summary="Organisations (never their keys)")
async def list_organisations(ctx: Context) -> list[dict[str, Any]]:
    async with ctx.pool.acquire() as conn:
        return [_organisation(r) for r in await org_repo.list_organisations(conn)]


@router.post("/organisations", status_code=201, summary="Add an organisation; its key is shown once")
async def create_organisation(ctx: Context, body: OrganisationIn) -> dict[str, Any]:
    key = new_key(ORG_KEY_PREFIX)
    async with ctx.pool.acquire() as conn:
        row = await org_repo.create_organisation(conn, body.name, body.kind, hash_key(key))
    return {"organisation": _organisation(row), "key": key}


@router.post("/organisations/{organisation_id}/rotate", summary="Replace an organisation's key")
async def rotate_organisation(ctx: Context, organisation_id: uuid.UUID) -> dict[str, Any]:
    key = new_key(ORG_KEY_PREFIX)
    row = await actions.rotate_organisation(ctx, organisation_id, hash_key(key))
    return {"organisation": _organisation(row), "key": key}


@router.post("/organisations/{organisation_id}/revoke", summary="Revoke an organisation's key")
async def revoke_organisation(ctx: Context, organisation_id: uuid.UUID) -> dict[str, Any]:
    return _organisation(await actions.revoke_organisation(ctx, organisation_id))
