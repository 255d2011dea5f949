"""Partner read API: current needs (JSON, GeoJSON, CSV) and their history, cursor-paginated."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
from fastapi import APIRouter, Depends, Query, Request, Response
from fastapi.responses import JSONResponse
from pydantic import AwareDatetime

from shared.contracts import AreaKind, Category
from shared.http import Problem

from . import repository
from .auth import current_partner
from .context import Context, PartnersContext
from .cursor import decode_cursor, encode_cursor
from .render import (
    HISTORY_FIELDS,
    NEED_FIELDS,
    feature,
    feature_collection,
    history_item,
    history_row,
    need_row,
    to_csv,
)

__all__ = ["router"]

router = APIRouter(prefix="/v1", tags=["needs"], dependencies=[Depends(current_partner)])
CSV = "text/csv; charset=utf-8; header=present"
GEOJSON = "application/geo+json"


def _bad(field: str, message: str) -> Problem:
    return Problem(
        422,
        "Request parameters are invalid",
        f"{field}: {message}",
        errors=[{"field": field, "message": message, "type": "value_error"}],
    )


def _bbox(value: str | None) -> tuple[float, float, float, float] | None:
    if value is None:
        return None
    try:
        parts = tuple(float(p) for p in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4:
        raise _bad("bbox", "give min_lon,min_lat,max_lon,max_lat as four numbers")
    min_lon, min_lat, max_lon, max_lat = parts
    if not (-180 <= min_lon <= max_lon <= 180 and -90 <= min_lat <= max_lat <= 90):
        raise _bad("bbox", "longitudes in [-180, 180], latitudes in [-90, 90], min before max")
    return min_lon, min_lat, max_lon, max_lat


def _position(cursor: str | None, kind: type) -> Any:
    if cursor is None:
        return None
    try:
        position = decode_cursor(cursor)
    except ValueError:
        position = None
    if not isinstance(position, kind):
        raise _bad("cursor", "not a cursor this endpoint returned")
    return position


def _limit(context: PartnersContext, limit: int) -> int:
    largest = context.settings.page_size_max
    if limit > largest:
        raise _bad("limit", f"at most {largest}")
    return limit


def _link_next(request: Request, next_cursor: str | None) -> dict[str, str]:
    if next_cursor is None:
        return {}
    url = request.url.include_query_params(cursor=next_cursor)
    return {"Link": f'<{url}>; rel="next"'}


async def _page(
    context: PartnersContext,
    limit: int,
    position: str,
    read: Callable[[asyncpg.Connection, int], Awaitable[list[Any]]],
) -> tuple[list[Any], str | None]:
    """A page of rows `read` fetches and the cursor of the next one (None on the last)."""
    limit = _limit(context, limit)
    async with context.pool.acquire() as conn:
        rows = await read(conn, limit + 1)
    # Fetched limit + 1 rows: the extra one only says whether a next page exists.
    more = len(rows) > limit
    rows = rows[:limit]
    return rows, encode_cursor(rows[-1][position]) if more else None


def _json_page(request: Request, items: list[dict[str, Any]], next_cursor: str | None) -> JSONResponse:
    return JSONResponse(
        {"items": items, "next_cursor": next_cursor}, headers=_link_next(request, next_cursor)
    )


def _csv_page(request: Request, body: str, next_cursor: str | None) -> Response:
    return Response(body, media_type=CSV, headers=_link_next(request, next_cursor))


_ward = Query(None, description="Ward code, e.g. E05013660.")
_category = Query(None, description="Category code.")
_area_kind = Query(None, description="street, unit or ward.")
_bbox_q = Query(None, description="min_lon,min_lat,max_lon,max_lat (WGS84): areas whose extent meets it.")
_cursor = Query(None, description="`next_cursor` of the previous page.")
_limit_q = Query(100, ge=1, description="Page size.")


@dataclass
class NeedsQuery:
    """The query parameters every current-needs format shares (one declaration, the same OpenAPI)."""

    ward: str | None = _ward
    category: Category | None = _category
    area_kind: AreaKind | None = _area_kind
    bbox: str | None = _bbox_q
    cursor: str | None = _cursor
    limit: int = _limit_q


async def _needs_page(context: PartnersContext, query: NeedsQuery) -> tuple[list[dict[str, Any]], str | None]:
    rows, next_cursor = await _page(
        context,
        query.limit,
        "key",
        lambda conn, limit: repository.list_needs(
            conn,
            ward=query.ward,
            category=query.category,
            area_kind=query.area_kind,
            bbox=_bbox(query.bbox),
            after_key=_position(query.cursor, str),
            limit=limit,
        ),
    )
    return [r["payload"] for r in rows], next_cursor


@router.get("/needs", summary="Current publishable needs (JSON)")
async def needs_json(request: Request, context: Context, query: NeedsQuery = Depends()) -> JSONResponse:
    return _json_page(request, *await _needs_page(context, query))


@router.get(
    "/needs.geojson",
    summary="Current publishable needs (GeoJSON FeatureCollection, RFC 7946)",
    response_class=Response,
    responses={200: {"content": {GEOJSON: {}}}},
)
async def needs_geojson(request: Request, context: Context, query: NeedsQuery = Depends()) -> JSONResponse:
    items, next_cursor = await _needs_page(context, query)
    geometry = context.geometry
    features = [feature(n, geometry.geojson(n["area_id"], n["area_kind"], n["street_ids"])) for n in items]
    return JSONResponse(
        feature_collection(features, next_cursor),
        media_type=GEOJSON,
        headers=_link_next(request, next_cursor),
    )


@router.get(
    "/needs.csv",
    summary="Current publishable needs (CSV, RFC 4180)",
    response_class=Response,
    responses={200: {"content": {CSV: {}}}},
)
async def needs_csv(request: Request, context: Context, query: NeedsQuery = Depends()) -> Response:
    items, next_cursor = await _needs_page(context, query)
    return _csv_page(request, to_csv(NEED_FIELDS, (need_row(n) for n in items)), next_cursor)


_since = Query(None, description="Changes at or after this time (ISO 8601 with offset).")
_until = Query(None, description="Changes before this time (ISO 8601 with offset).")
_area = Query(None, description="One area id.")


@dataclass
class HistoryQuery:
    """The query parameters both history formats share."""

    since: AwareDatetime | None = _since
    until: AwareDatetime | None = _until
    area_id: str | None = _area
    category: Category | None = _category
    cursor: str | None = _cursor
    limit: int = _limit_q


async def _history_page(
    context: PartnersContext, query: HistoryQuery
) -> tuple[list[dict[str, Any]], str | None]:
    rows, next_cursor = await _page(
        context,
        query.limit,
        "id",
        lambda conn, limit: repository.list_history(
            conn,
            since=query.since,
            until=query.until,
            area_id=query.area_id,
            category=query.category,
            after_id=_position(query.cursor, int),
            limit=limit,
        ),
    )
    return [history_item(r) for r in rows], next_cursor


@router.get("/needs/history", summary="Every change (and removal) of publishable needs (JSON)")
async def history_json(request: Request, context: Context, query: HistoryQuery = Depends()) -> JSONResponse:
    return _json_page(request, *await _history_page(context, query))


@router.get(
    "/needs/history.csv",
    summary="Every change (and removal) of publishable needs (CSV)",
    response_class=Response,
    responses={200: {"content": {CSV: {}}}},
)
async def history_csv(request: Request, context: Context, query: HistoryQuery = Depends()) -> Response:
    items, next_cursor = await _history_page(context, query)
    return _csv_page(request, to_csv(HISTORY_FIELDS, (history_row(i) for i in items)), next_cursor)
