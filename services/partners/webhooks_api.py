"""Partner webhook endpoints: register (secret shown once), read, delete, deliveries, replay."""

from __future__ import annotations

import asyncio
import datetime as dt
from typing import Any, Literal
from uuid import UUID

from fastapi import APIRouter, Depends, Query, Response
from pydantic import AwareDatetime, BaseModel, Field

from shared.contracts import Category
from shared.http import PROBLEM_JSON, Problem
from shared.ratelimit import TokenBucket

from . import accounts, repository
from .auth import current_partner
from .context import Context
from .cursor import decode_cursor, encode_cursor
from .signing import new_secret
from .urls import UnsafeUrl, check_webhook_url

__all__ = ["router"]

router = APIRouter(prefix="/v1/webhooks", tags=["webhooks"])


class WebhookIn(BaseModel):
    url: str = Field(..., max_length=2000, description="Where to POST deliveries (http or https).")
    categories: list[Category] = Field(default_factory=list, description="Empty: every category.")
    wards: list[str] = Field(default_factory=list, description="Ward codes; empty: every ward.")


class WebhookOut(BaseModel):
    id: UUID
    url: str
    categories: list[str]
    wards: list[str]
    created_at: dt.datetime


class WebhookCreated(WebhookOut):
    secret: str = Field(..., description="`whsec_…`: shown only now. Verify each delivery with it.")


class Delivery(BaseModel):
    id: int
    history_id: int
    message_id: str = Field(..., description="The `webhook-id` header: the same on every retry.")
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: dt.datetime
    last_status: int | None
    last_error: str | None
    replay: bool
    created_at: dt.datetime
    finished_at: dt.datetime | None


class DeliveryPage(BaseModel):
    items: list[Delivery]
    next_cursor: str | None


class Replayed(BaseModel):
    queued: int = Field(..., description="How many changes were queued again.")


def _public(row: dict[str, Any]) -> WebhookOut:
    return WebhookOut(**{k: row[k] for k in WebhookOut.model_fields})


async def _own_webhook(context: Context, partner: dict[str, Any], webhook_id: UUID) -> dict[str, Any]:
    async with context.pool.acquire() as conn:
        webhook = await repository.get_webhook(conn, partner["id"], webhook_id)
    if webhook is None:  # another partner's webhook is "not found" too: ids reveal nothing
        raise Problem(404, "Webhook not found")
    return webhook


@router.post("", status_code=201, response_model=WebhookCreated, summary="Register a webhook")
async def create_webhook(
    body: WebhookIn, context: Context, partner: dict[str, Any] = Depends(current_partner)
) -> WebhookCreated:
    settings = context.settings
    try:
        url = await asyncio.to_thread(
            check_webhook_url,
            body.url,
            allow_loopback=settings.webhook_allow_loopback,
            require_https=settings.webhook_require_https,
        )
    except UnsafeUrl as exc:
        raise Problem(
            422,
            "Webhook URL not accepted",
            f"url: {exc}",
            errors=[{"field": "url", "message": str(exc), "type": "value_error"}],
        ) from exc
    secret = new_secret()
    async with context.pool.acquire() as conn:
        row = await repository.create_webhook(
            conn, partner["id"], url, [str(c) for c in body.categories], body.wards, secret
        )
    return WebhookCreated(**_public(row).model_dump(), secret=secret)


@router.get("", response_model=list[WebhookOut], summary="This partner's webhooks")
async def list_webhooks(
    context: Context, partner: dict[str, Any] = Depends(current_partner)
) -> list[WebhookOut]:
    async with context.pool.acquire() as conn:
        return [_public(r) for r in await repository.list_webhooks(conn, partner["id"])]


@router.get("/{webhook_id}", response_model=WebhookOut, summary="One webhook (without its secret)")
async def get_webhook(
    webhook_id: UUID, context: Context, partner: dict[str, Any] = Depends(current_partner)
) -> WebhookOut:
    return _public(await _own_webhook(context, partner, webhook_id))


@router.delete("/{webhook_id}", status_code=204, summary="Delete a webhook; pending deliveries stop")
async def delete_webhook(
    webhook_id: UUID, context: Context, partner: dict[str, Any] = Depends(current_partner)
) -> Response:
    if not await accounts.delete_webhook(context.pool, partner["id"], webhook_id):
        raise Problem(404, "Webhook not found")
    return Response(status_code=204)


@router.get(
    "/{webhook_id}/deliveries",
    response_model=DeliveryPage,
    summary="Deliveries of a webhook, oldest first (status `dead` after the last retry)",
)
async def list_deliveries(
    webhook_id: UUID,
    context: Context,
    partner: dict[str, Any] = Depends(current_partner),
    status: Literal["pending", "delivered", "dead"] | None = None,
    cursor: str | None = None,
    limit: int = Query(100, ge=1, le=1000),
) -> DeliveryPage:
    await _own_webhook(context, partner, webhook_id)
    after = None
    if cursor is not None:
        try:
            after = decode_cursor(cursor)
        except ValueError:
            after = None
        if not isinstance(after, int):
            raise Problem(
                422,
                "Request parameters are invalid",
                "cursor: not a cursor this endpoint returned",
                errors=[{"field": "cursor", "message": "invalid cursor", "type": "value_error"}],
            )
    async with context.pool.acquire() as conn:
        rows = await repository.list_deliveries(
            conn, webhook_id, status=status, after_id=after, limit=limit + 1
        )
    more = len(rows) > limit
    rows = rows[:limit]
    return DeliveryPage(
        items=[Delivery(**r) for r in rows], next_cursor=encode_cursor(rows[-1]["id"]) if more else None
    )


@router.post(
    "/{webhook_id}/replay",
    status_code=202,
    response_model=Replayed,
    summary="Send the history since a time to this webhook again",
    description="Within the last `PARTNERS_WEBHOOK_REPLAY_MAX_DAYS` days, at most "
    "`PARTNERS_WEBHOOK_REPLAY_MAX_ROWS` changes per replay and `PARTNERS_WEBHOOK_REPLAY_PER_HOUR` "
    "replays per hour per partner.",
    responses={
        429: {
            "description": "Too many replays; retry after the Retry-After seconds",
            "content": {PROBLEM_JSON: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        }
    },
)
async def replay(
    webhook_id: UUID,
    context: Context,
    since: AwareDatetime,
    until: AwareDatetime | None = None,
    partner: dict[str, Any] = Depends(current_partner),
) -> Replayed:
    webhook = await _own_webhook(context, partner, webhook_id)
    settings = context.settings
    now = dt.datetime.now(dt.UTC)
    earliest = now - dt.timedelta(days=settings.webhook_replay_max_days)
    if since < earliest or (until is not None and until <= since):
        raise Problem(
            422,
            "Replay window out of bounds",
            f"since must be within the last {settings.webhook_replay_max_days} days and before until",
            errors=[{"field": "since", "message": f"at most {settings.webhook_replay_max_days} days ago"}],
        )
    if wait := context.replay_limiter.take(str(partner["id"])):
        raise Problem(
            429,
            "Too many replays",
            f"at most {settings.webhook_replay_per_hour:g} replays per hour",
            headers={"Retry-After": TokenBucket.retry_after(wait)},
        )
    queued = await accounts.replay(context.pool, webhook, since, until, settings.webhook_replay_max_rows)
    if queued < 0:
        raise Problem(
            422,
            "Replay too large",
            f"more than {settings.webhook_replay_max_rows} changes in this window: give a later since "
            "or an earlier until",
            errors=[{"field": "until", "message": "narrow the window"}],
        )
    return Replayed(queued=queued)
