"""The JSON API for council systems: `POST /v1/signals` (one or a batch) and `GET /v1/categories`."""

from __future__ import annotations

import datetime as dt
import json
from typing import Any

from fastapi import APIRouter, Request

from shared.contracts import CATALOGUE, Category, CouncilSignal, Sensitivity
from shared.gazetteer.model import Gazetteer
from shared.http import Problem

from .access import identify
from .auth import RateLimiter
from .context import Context, IngestContext
from .pipeline import OutOfScope, Pipeline, ProduceFailed
from .places import place_area
from .repository import System
from .schemas import (
    EVERYWHERE_SUFFIX,
    BatchResult,
    CategoryOut,
    ItemResult,
    PlacedOn,
    SignalBatch,
    WithdrawEverywhere,
    WithdrawnEverywhere,
    problem_responses,
)

__all__ = ["openapi_models", "router"]

router = APIRouter(prefix="/v1", tags=["signals"])
_CHALLENGE = {"WWW-Authenticate": 'Bearer realm="streetneeds-ingest"'}


def _api_key(request: Request) -> str | None:
    auth = request.headers.get("authorization", "")
    scheme, _, token = auth.partition(" ")
    if scheme.lower() == "bearer" and token.strip():
        return token.strip()
    return request.headers.get("x-api-key") or None


async def _system(request: Request, ctx: IngestContext) -> System:
    key = _api_key(request)
    if key is None:
        raise Problem(
            401,
            "API key required",
            "Send `Authorization: Bearer <key>` or `X-API-Key: <key>`.",
            headers=_CHALLENGE,
        )
    caller = await identify(ctx, key)
    if caller.system is None:
        raise Problem(
            401,
            "Unknown or revoked API key",
            headers={
                **_CHALLENGE,
                "WWW-Authenticate": _CHALLENGE["WWW-Authenticate"] + ', error="invalid_token"',
            },
        )
    if caller.wait_s > 0:
        raise Problem(
            429,
            "Rate limit exceeded",
            "This system sent more requests a minute than it may.",
            headers={"Retry-After": RateLimiter.retry_after(caller.wait_s)},
        )
    return caller.system


def _items(body: bytes) -> list[Any]:
    """The batch's items from a body that is one signal, a JSON array, or `{"items": [...]}`."""
    try:
        data = json.loads(body)
    except (ValueError, UnicodeDecodeError) as exc:
        raise Problem(
            422, "Body is not valid JSON", str(exc), errors=[{"field": "(body)", "message": "not valid JSON"}]
        ) from None
    if isinstance(data, dict) and "items" in data:
        data = data["items"]
    elif isinstance(data, dict):
        data = [data]
    if not isinstance(data, list) or not data:
        raise Problem(
            422,
            "Nothing to accept",
            'Send one signal, a non-empty JSON array of signals, or {"items": [...]}.',
            errors=[{"field": "items", "message": "must be a non-empty list"}],
        )
    return data


def _placed_on(ctx: IngestContext, street_id: str | None, item: Any) -> PlacedOn | None:
    """The street an item went to (never its coordinates); for place needs, where it is shown."""
    gazetteer: Gazetteer = ctx.gazetteer
    street = gazetteer.streets.get(street_id) if street_id else None
    if street is None:
        return None
    category = item.get("category") if isinstance(item, dict) else None
    shown = None
    if category in CATALOGUE and CATALOGUE[Category(category)].sensitivity is Sensitivity.PLACE:
        area = place_area(gazetteer, street.id)
        shown = area.name if area is not None else None
    return PlacedOn(street_id=street.id, street_name=street.name, shown_as=shown)


def _field_error(index: int, error: str) -> dict[str, str]:
    field, _, message = error.partition(": ")
    where = f"items[{index}].{field}" if field != "(body)" else f"items[{index}]"
    return {"field": where, "message": message}


@router.post(
    "/signals",
    status_code=202,
    response_model=BatchResult,
    summary="Send one signal or a batch",
    description="Authenticated per council system (`Authorization: Bearer <key>` or `X-API-Key`). "
    "Each item is anonymised at the door and handed on; the council's `event_id` is the idempotency "
    "key, so a retried batch has no second effect. The answer gives each item's outcome.",
    responses=problem_responses(401, 403, 413, 422, 429, 503),
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {
                "application/json": {
                    "schema": {
                        "oneOf": [
                            {"$ref": "#/components/schemas/SignalBatch"},
                            {"type": "array", "items": {"$ref": "#/components/schemas/CouncilSignal"}},
                            {"$ref": "#/components/schemas/CouncilSignal"},
                        ]
                    }
                }
            },
        }
    },
)
async def post_signals(request: Request, ctx: Context) -> BatchResult:
    system = await _system(request, ctx)
    items = _items(await request.body())
    limit = ctx.settings.max_batch
    if len(items) > limit:
        raise Problem(
            413,
            "Batch too large",
            f"{len(items)} items; at most {limit} per request.",
            errors=[{"field": "items", "message": f"at most {limit} items"}],
        )
    pipeline: Pipeline = ctx.pipeline
    try:
        outcomes = await pipeline.accept(items, system, "http")
    except OutOfScope as exc:
        raise Problem(
            403,
            "Category not allowed for this API key",
            str(exc),
            errors=[
                {"field": f"items[{i}].category", "message": f"this system may not send {c}"}
                for i, c in exc.items
            ],
        ) from None
    except ProduceFailed:
        raise Problem(
            503,
            "Signals could not be handed on",
            "Nothing was recorded; retry the same batch.",
            headers={"Retry-After": "5"},
        ) from None
    results = [
        ItemResult(
            index=o.index,
            event_id=o.event_id,
            id=o.id,
            outcome=o.outcome,
            errors=[f"items[{o.index}].{e}" for e in o.errors],
            placed_on=_placed_on(ctx, o.street_id, items[o.index]),
        )
        for o in outcomes
    ]
    if all(o.outcome == "rejected" for o in outcomes):
        raise Problem(
            422,
            "No valid signal in the body",
            "; ".join(e for r in results for e in r.errors),
            errors=[_field_error(o.index, e) for o in outcomes for e in o.errors],
        )
    count = {k: sum(o.outcome == k for o in outcomes) for k in ("accepted", "duplicate", "rejected")}
    return BatchResult(items=results, **count)


@router.post(
    "/withdrawals",
    status_code=202,
    response_model=WithdrawnEverywhere,
    summary="Withdraw a subject from everything",
    description="Consent withdrawn, moved away, died: one `withdrawn` signal for every category this "
    "system may send, through the same door as any signal (the reference is pseudonymised, nothing "
    "is stored in clear). The subject leaves every count at once. `event_id` makes retries safe.",
    responses=problem_responses(401, 422, 429, 503),
)
async def withdraw_everywhere(
    request: Request, ctx: Context, body: WithdrawEverywhere
) -> WithdrawnEverywhere:
    system = await _system(request, ctx)
    gazetteer: Gazetteer = ctx.gazetteer
    categories = sorted(system.categories)
    at = dt.datetime.now(dt.UTC).isoformat()
    # The aggregator ends a withdrawn subject on every street: the street here only carries the event.
    carrier = min(gazetteer.streets)
    items = [
        {
            "event_id": f"{body.event_id}{EVERYWHERE_SUFFIX}{category}",
            "category": category,
            "action": "withdrawn",
            "subject_ref": body.subject_ref,
            "occurred_at": at,
            "location": {"street_id": carrier},
        }
        for category in categories
    ]
    pipeline: Pipeline = ctx.pipeline
    try:
        outcomes = await pipeline.accept(items, system, "http")
    except ProduceFailed:
        raise Problem(
            503,
            "Withdrawal could not be handed on",
            "Nothing was recorded; retry.",
            headers={"Retry-After": "5"},
        ) from None
    if bad := [o for o in outcomes if o.outcome == "rejected"]:
        raise Problem(
            422,
            "Withdrawal rejected",
            errors=[
                {"field": e.partition(": ")[0], "message": e.partition(": ")[2]}
                for o in bad
                for e in o.errors
            ],
        )
    return WithdrawnEverywhere(
        categories=[Category(c) for c in categories],
        accepted=sum(o.outcome == "accepted" for o in outcomes),
    )


@router.get(
    "/categories",
    response_model=list[CategoryOut],
    summary="The catalogue of categories",
    description="Every category a council system may send, its privacy class and lifetime.",
)
async def categories() -> list[CategoryOut]:
    return [
        CategoryOut(
            code=c.code,
            name=c.name,
            description=c.description,
            sensitivity=c.sensitivity,
            lifetime_days=c.lifetime_days,
        )
        for c in CATALOGUE.values()
    ]


def openapi_models() -> list[type]:
    """Request models documented only in OpenAPI (the body is parsed by hand for per-item outcomes)."""
    return [SignalBatch, CouncilSignal]
