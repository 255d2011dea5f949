"""Operators' API (the console): partner organisations and their keys (create, rotate, revoke; shown once).

Bearer PARTNERS_OPERATOR_TOKEN; everyone is refused while it is unset. Only key hashes are stored.
"""

from __future__ import annotations

import datetime as dt
import secrets
import uuid
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, ConfigDict, Field

from shared.http import Problem

from . import accounts, repository
from .context import Context
from .keys import hash_key, new_key

__all__ = ["router"]


def operator(request: Request, context: Context) -> None:
    token = context.settings.operator_token
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if (
        token is None
        or scheme.lower() != "bearer"
        or not secrets.compare_digest(given.encode(), token.get_secret_value().encode())
    ):
        raise Problem(
            401,
            "Operator token required",
            "send Authorization: Bearer <operator token>",
            headers={"WWW-Authenticate": 'Bearer realm="partners-operators"'},
        )


router = APIRouter(prefix="/v1/admin", tags=["operators"], dependencies=[Depends(operator)])


class PartnerOut(BaseModel):
    id: uuid.UUID
    name: str
    created_at: dt.datetime
    revoked_at: dt.datetime | None


class PartnerCreated(BaseModel):
    partner: PartnerOut
    key: str = Field(..., description="The API key, shown once; only its hash is stored.")


class PartnerIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(..., min_length=1, max_length=200)


@router.get("/partners", response_model=list[PartnerOut], summary="Partner organisations (never keys)")
async def list_partners(context: Context) -> list[dict[str, Any]]:
    async with context.pool.acquire() as conn:
        return await repository.list_partners(conn)


@router.post("/partners", response_model=PartnerCreated, status_code=201, summary="Add a partner")
async def create_partner(context: Context, body: PartnerIn) -> dict[str, Any]:
    key = new_key()
    async with context.pool.acquire() as conn:
        partner = await repository.create_partner(conn, body.name, hash_key(key))
    return {"partner": partner, "key": key}


@router.post("/partners/{partner_id}/rotate", response_model=PartnerCreated, summary="Replace a key")
async def rotate_partner(context: Context, partner_id: uuid.UUID) -> dict[str, Any]:
    """The old key stops working at once; the new one is shown once."""
    partner, key = await accounts.rotate(context.pool, partner_id)
    return {"partner": partner, "key": key}


@router.post("/partners/{partner_id}/revoke", response_model=PartnerOut, summary="Revoke a partner's key")
async def revoke_partner(context: Context, partner_id: uuid.UUID) -> dict[str, Any]:
    return await accounts.revoke(context.pool, partner_id)
