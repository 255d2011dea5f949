"""GeoJSON for the residents' map: the gazetteer as an offline basemap, and needs drawn by category.

Place needs are drawn on their street (or unit); person needs only ever as the released band on
the whole published unit or ward they were released for, exactly as the feeds show them.
"""

from __future__ import annotations

import hashlib
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.gazetteer import geojson
from shared.gazetteer.selection import Areas, Selection

from . import repository as repo
from .conditional import cacheable
from .context import ready_context
from .entries import FeedEntry, entry_from_prompt
from .responses import ENDED, GEOJSON_MAP, GeoJSONResponse
from .views import FeedTarget
from .web import _street_target, _subscription_target, _ward_target

__all__ = ["GEOJSON", "router"]

router = APIRouter(tags=["map"])
GEOJSON = "application/geo+json"
# The basemap changes only when the gazetteer is re-imported (and the service restarted).
BASEMAP_MAX_AGE_S = 86_400
# Most needs drawn on one map (a feed shows FEEDS_FEED_MAX_ENTRIES; the council-wide map shows more).
MAP_MAX_NEEDS = 2000


def _basemap(request: Request, name: str) -> Response:
    ctx = ready_context(request)
    areas = ctx.loaded_areas()
    cache = ctx.basemaps
    if name not in cache:
        build = geojson.streets_collection if name == "streets" else geojson.wards_collection
        body = geojson.dumps(build(areas.gazetteer))
        cache[name] = (body, f'"{hashlib.sha256(body).hexdigest()[:20]}"')
    body, etag = cache[name]
    if request.headers.get("if-none-match") == etag:
        return Response(status_code=304, headers={"ETag": etag})
    return Response(
        body,
        media_type=GEOJSON,
        headers={"ETag": etag, "Cache-Control": f"public, max-age={BASEMAP_MAX_AGE_S}"},
    )


@router.get(
    "/map/streets.geojson",
    response_class=GeoJSONResponse,
    summary="Every street of the gazetteer (GeoJSON, simplified)",
    responses=GEOJSON_MAP,
)
async def streets_geojson(request: Request) -> Response:
    return _basemap(request, "streets")


@router.get(
    "/map/areas.geojson",
    response_class=GeoJSONResponse,
    summary="Ward boundaries and the council boundary (GeoJSON)",
    responses=GEOJSON_MAP,
)
async def areas_geojson(request: Request) -> Response:
    return _basemap(request, "areas")


def need_feature(areas: Areas, e: FeedEntry) -> dict[str, Any] | None:
    """A need as a map feature on the area it was released for, or None if that area is unknown."""
    shape = areas.gazetteer.area_shape(e.area_kind, e.area_id, e.street_ids)
    if shape is None:
        return None
    props = {
        "role": "need",
        "title": e.title,
        "category": e.category,
        "category_name": e.category_name,
        "sensitivity": e.sensitivity.value,
        "area": e.area_name,
        "area_kind": e.area_kind,
        "url": e.url,
    }
    return geojson.feature(shape, props, geojson.AREA_TOLERANCE if e.area_kind == "ward" else 0.00002)


async def _needs(request: Request, target: FeedTarget, focus: list[dict[str, Any]]) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    async with ctx.pool.acquire() as conn:
        prompts = await repo.prompts_for(conn, target.selection, MAP_MAX_NEEDS)
        last_modified = await repo.last_modified(conn, target.selection)
    entries = [
        entry_from_prompt(p, base_url=settings.base_url, tag_authority=settings.tag_authority)
        for p in prompts
    ]
    needs = [f for f in (need_feature(areas, e) for e in entries) if f is not None]
    # A foreign member (RFC 7946 §6.1): the deployment's tile layer, if it configured one.
    basemap = {"tiles": settings.map_tile_url, "attribution": settings.map_tile_attribution}
    extra = {"basemap": basemap} if settings.map_tile_url else {}
    body = geojson.dumps(geojson.collection([*focus, *needs], **extra))
    return cacheable(
        request,
        body,
        GEOJSON,
        last_modified=last_modified,
        max_age=settings.feed_cache_max_age_s,
        private=target.private,
    )


def _focus(areas: Areas, sel: Selection) -> list[dict[str, Any]]:
    """The followed streets (or ward) highlighted on the map, so it opens on them."""
    if sel.kind == "ward" and sel.ward_codes:
        ward = next((w for w in areas.gazetteer.wards if w.code == sel.ward_codes[0]), None)
        if ward is not None:
            return [
                geojson.feature(ward.geometry, {"role": "focus", "name": ward.name}, geojson.AREA_TOLERANCE)
            ]
    # A stored subscription's selection carries street ids only (no Street objects).
    streets = areas.gazetteer.streets
    return [geojson.street_feature(streets[i], role="focus") for i in sel.street_ids if i in streets]


@router.get(
    "/map/needs.geojson",
    response_class=GeoJSONResponse,
    summary="Every current need, drawn on its area (GeoJSON)",
    responses=GEOJSON_MAP,
)
async def needs_geojson(request: Request) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    sel = areas.for_all(settings.council_name)
    target = FeedTarget(sel, "/", sel.label, "", "all")
    return await _needs(request, target, [])


@router.get(
    "/streets/{street_id}/map.geojson",
    response_class=GeoJSONResponse,
    summary="A street and its needs (GeoJSON)",
    responses=GEOJSON_MAP,
)
async def street_geojson(request: Request, street_id: str) -> Response:
    areas = ready_context(request).loaded_areas()
    target = _street_target(areas, street_id)
    return await _needs(request, target, _focus(areas, target.selection))


@router.get(
    "/wards/{ward_code}/map.geojson",
    response_class=GeoJSONResponse,
    summary="A ward and its needs (GeoJSON)",
    responses=GEOJSON_MAP,
)
async def ward_geojson(request: Request, ward_code: str) -> Response:
    areas = ready_context(request).loaded_areas()
    target = _ward_target(areas, ward_code)
    return await _needs(request, target, _focus(areas, target.selection))


@router.get(
    "/s/{token}/map.geojson",
    response_class=GeoJSONResponse,
    summary="A subscription's streets and needs (GeoJSON, private)",
    responses={**GEOJSON_MAP, **ENDED},
)
async def subscription_geojson(request: Request, token: str) -> Response:
    areas = ready_context(request).loaded_areas()
    target = await _subscription_target(request, token)
    return await _needs(request, target, _focus(areas, target.selection))
