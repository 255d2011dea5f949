"""HTTP read API over the published state: needs (JSON, GeoJSON), areas; audit and releases for operators."""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query
from fastapi.responses import JSONResponse
from pydantic import BaseModel, Field

from shared.contracts import Category, StreetNeedChanged
from shared.gazetteer.geojson import shape_json
from shared.http import Problem, operator_token

from . import repository as repo
from .context import AggregatorContext, Context

__all__ = ["router"]

router = APIRouter(prefix="/v1")
GEOJSON = "application/geo+json"


class NeedsPage(BaseModel):
    needs: list[StreetNeedChanged] = Field(..., description="Publishable needs, one per area and category.")


class AreaNeeds(BaseModel):
    area_id: str
    area_kind: str
    area_name: str
    ward_code: str | None
    street_ids: list[str]
    needs: list[StreetNeedChanged]


class WithheldCount(BaseModel):
    """How many cells were held back, per period, category and reason (never which: rule 8)."""

    period: str = Field(
        ..., description="`YYYY-MM` (person release), `YYYY-Qn` (ward trend) or `live` (place)."
    )
    category: str
    reason: str
    cells: int = Field(..., ge=1, description="Held-back cells (unit, ward or street) with this reason.")
    recorded_at: str


class Release(BaseModel):
    period: str
    released_at: str
    published_cells: int
    withheld_cells: int
    subjects: int


def _bbox(value: str) -> tuple[float, float, float, float]:
    try:
        parts = tuple(float(v) for v in value.split(","))
    except ValueError:
        parts = ()
    if len(parts) != 4 or not (-180 <= parts[0] <= parts[2] <= 180 and -90 <= parts[1] <= parts[3] <= 90):
        raise Problem(
            422,
            "Request parameters are invalid",
            "bbox must be minlon,minlat,maxlon,maxlat in WGS84",
            errors=[{"field": "bbox", "message": "expected minlon,minlat,maxlon,maxlat"}],
        )
    return parts


async def _needs(
    context: AggregatorContext,
    street: str | None,
    ward: str | None,
    bbox: str | None,
    category: Category | None,
) -> list[dict[str, Any]]:
    given = [n for n, v in (("street", street), ("ward", ward), ("bbox", bbox)) if v is not None]
    if len(given) != 1:
        raise Problem(
            422,
            "Request parameters are invalid",
            "give exactly one of street, ward or bbox",
            errors=[
                {"field": f, "message": "give exactly one of street, ward or bbox"}
                for f in (given or ["street", "ward", "bbox"])
            ],
        )
    async with context.pool.acquire() as conn:
        rows = await repo.needs(
            conn,
            street=street,
            area_ids=[a.area_id for a in context.areas.areas_of_street(street)] if street else None,
            ward=ward,
            bbox=_bbox(bbox) if bbox else None,
            category=str(category) if category else None,
        )
    return [json.loads(r["payload"]) for r in rows]


Street = Annotated[str | None, Query(max_length=64, description="A gazetteer street id.")]
Ward = Annotated[str | None, Query(max_length=16, description="A ward code, e.g. E05013652.")]
Bbox = Annotated[
    str | None,
    Query(
        max_length=200,
        pattern=r"^$|^[-+]?\d{1,3}(\.\d{0,15})?(,[-+]?\d{1,3}(\.\d{0,15})?){3}$",
        description="minlon,minlat,maxlon,maxlat (WGS84); empty: no box.",
    ),
]
Cat = Annotated[Category | None, Query(description="Only this category.")]


@router.get("/needs", response_model=NeedsPage, summary="Publishable needs by street, ward or bounding box")
async def get_needs(
    context: Context, street: Street = None, ward: Ward = None, bbox: Bbox = None, category: Cat = None
) -> dict[str, Any]:
    return {"needs": await _needs(context, street, ward, bbox, category)}


@router.get(
    "/needs.geojson",
    summary="Publishable needs as an RFC 7946 FeatureCollection",
    response_class=JSONResponse,
    responses={200: {"content": {GEOJSON: {}}}},
)
async def get_needs_geojson(
    context: Context, street: Street = None, ward: Ward = None, bbox: Bbox = None, category: Cat = None
) -> JSONResponse:
    areas = context.areas
    features = []
    for need in await _needs(context, street, ward, bbox, category):
        area = areas.area(need["area_id"])
        geometry = areas.geometry(area) if area else None
        features.append(
            {
                "type": "Feature",
                "id": f"{need['area_id']}:{need['category']}",
                # As the residents' maps draw it: simplified by ~2 m and rounded to ~1 m, not every
                # OpenStreetMap vertex to the centimetre (smaller, and no finer than a need needs).
                "geometry": shape_json(geometry) if geometry is not None else None,
                "properties": need,
            }
        )
    return JSONResponse({"type": "FeatureCollection", "features": features}, media_type=GEOJSON)


@router.get("/areas/{area_id}", response_model=AreaNeeds, summary="One area and its publishable needs")
async def get_area(context: Context, area_id: str) -> dict[str, Any]:
    area = context.areas.area(area_id)
    async with context.pool.acquire() as conn:
        rows = await repo.needs(conn, area_ids=[area_id])
    needs = [json.loads(r["payload"]) for r in rows]
    if area is None and not needs:
        raise Problem(404, "No such area", f"area {area_id!r} is not a street or publication unit")
    if area is None:
        first = needs[0]
        return {
            **{k: first[k] for k in ("area_id", "area_kind", "area_name", "ward_code", "street_ids")},
            "needs": needs,
        }
    return {
        "area_id": area.area_id,
        "area_kind": area.area_kind,
        "area_name": area.name,
        "ward_code": area.ward_code,
        "street_ids": list(area.street_ids),
        "needs": needs,
    }


# Bearer token from AGGREGATOR_OPERATOR_TOKEN; everyone is refused while it is unset.
operator = operator_token("operator_token", realm="aggregator-operators")


@router.get(
    "/audit/withheld",
    response_model=list[WithheldCount],
    dependencies=[Depends(operator)],
    summary="Operators: how many cells were held back, and why",
    description="Counts per period, category and reason (docs/privacy.md rule 8). Which units were held "
    "back is not shown: that would say where a few residents are flagged.",
)
async def get_withheld(
    context: Context,
    period: Annotated[str | None, Query(max_length=7, pattern=r"^(\d{4}-(\d{2}|Q[1-4])|live)$")] = None,
) -> list[dict[str, Any]]:
    async with context.pool.acquire() as conn:
        rows = await repo.withheld_summary(conn, period)
    return [{**dict(r), "recorded_at": r["recorded_at"].isoformat()} for r in rows]


@router.get(
    "/releases",
    response_model=list[Release],
    dependencies=[Depends(operator)],
    summary="Operators: monthly person-category releases",
)
async def get_releases(context: Context) -> list[dict[str, Any]]:
    async with context.pool.acquire() as conn:
        rows = await repo.list_releases(conn)
    return [{**dict(r), "released_at": r["released_at"].isoformat()} for r in rows]
