"""Bounces and complaints from the mail provider: a token-protected JSON webhook that suppresses addresses.

Payload (`POST /v1/bounces`, `Authorization: Bearer <NOTIFIER_WEBHOOK_TOKEN>`):
`{"events": [{"type": "bounce" | "complaint", "email": "...", "permanent": true}]}`. A bounce that is
not permanent (a full mailbox) is ignored; a permanent bounce or any complaint deletes the address's
alerts and keeps only a keyed hash of it, so it is never mailed again.
"""

from __future__ import annotations

import hmac
from typing import Literal

from fastapi import APIRouter, Header, Request
from pydantic import BaseModel, Field

from shared.http import PROBLEM_JSON, Problem

from . import alerts
from .context import notifier_context

__all__ = ["BounceEvent", "Bounces", "router"]

router = APIRouter(tags=["mail provider"])


class BounceEvent(BaseModel):
    type: Literal["bounce", "complaint"]
    email: str = Field(..., min_length=3, max_length=320)
    # strict: true or false only, as the schema says (lax mode would take 0/1 and "yes").
    permanent: bool = Field(True, strict=True)


class Bounces(BaseModel):
    events: list[BounceEvent] = Field(..., max_length=1000)


class Suppressed(BaseModel):
    suppressed: int = Field(..., description="Addresses newly or again suppressed.")
    alerts_deleted: int


@router.post(
    "/v1/bounces",
    response_model=Suppressed,
    summary="Report bounces and complaints (mail provider)",
    responses={
        401: {"description": "No token, or a wrong one.", "content": {PROBLEM_JSON: {}}},
        404: {"description": "The webhook is off (no token is set).", "content": {PROBLEM_JSON: {}}},
    },
)
async def bounces(request: Request, body: Bounces, authorization: str | None = Header(None)) -> Suppressed:
    ctx = notifier_context(request)
    settings = ctx.settings
    if settings.webhook_token is None:
        raise Problem(404, "Not found", "the bounce webhook is off (NOTIFIER_WEBHOOK_TOKEN is not set)")
    expected = f"Bearer {settings.webhook_token.get_secret_value()}"
    if not authorization or not hmac.compare_digest(authorization.encode(), expected.encode()):
        raise Problem(
            401, "Unauthorised", "send Authorization: Bearer <token>", headers={"WWW-Authenticate": "Bearer"}
        )
    # A soft bounce (a full mailbox) is not a reason to stop: only permanent ones and complaints count.
    reports = [(e.email, e.type) for e in body.events if e.type == "complaint" or e.permanent]
    suppressed, deleted = await alerts.suppress(ctx.pool, settings, reports)
    return Suppressed(suppressed=suppressed, alerts_deleted=deleted)
