"""Public impact pages: the borough (`/impact`) and each ward (`/impact/wards/{ward_code}`).

Plain sentences first, then SVG charts with text alternatives and the same numbers in tables. Every
figure comes from `impact.summarise`, which keeps to the disclosure rules (see its docstring).
"""

from __future__ import annotations

import datetime as dt
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.contracts import CATALOGUE, Category, Sensitivity
from shared.http import Problem
from shared.privacy import MIN_UNIT_ADDRESSES

from . import impact_repository as impact_repo
from . import repository as repo
from .charts import Series, bar_chart
from .context import Context, prompter_context
from .impact import BANDS, before_after, month_of, summarise
from .matching import covers_ward
from .pages import render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
_MONTHS = 12


def _last_months(today: dt.date, n: int = _MONTHS) -> list[dt.date]:
    months, m = [], month_of(today)
    for _ in range(n):
        months.append(m)
        m = (m - dt.timedelta(days=1)).replace(day=1)
    return months[::-1]


def _ward_names(request: Request) -> dict[str, str]:
    places = prompter_context(request).places
    return places.ward_names() if hasattr(places, "ward_names") else {}


def _per_month(cells: dict[dt.date, Any], months: list[dt.date], attr: str) -> list[int]:
    return [getattr(cells[m], attr) if m in cells else 0 for m in months]


async def _figures(request: Request, ward_code: str | None) -> dict[str, Any]:
    ctx = prompter_context(request)
    today = dt.datetime.now(dt.UTC).date()
    months = _last_months(today)
    async with ctx.pool.acquire() as conn:
        rows = await impact_repo.history(conn, ward_code)
        offers = await impact_repo.offers_per_month(conn, ward_code, months[0])
        started = await impact_repo.prompts_started(conn, ward_code)
        opportunities = await repo.list_opportunities(conn, None, today)
    places = ctx.places
    if ward_code is not None:
        opportunities = [r for r in opportunities if covers_ward(repo.to_opportunity(r), ward_code, places)]
    summary = summarise(rows)
    labels = [m.strftime("%b %y") for m in months]
    offer_values = [offers.get(m, 0) for m in months]
    raised = [sum(c[m].raised for c in summary.place.values() if m in c) for m in months]
    resolved = [sum(c[m].resolved for c in summary.place.values() if m in c) for m in months]
    before, after = before_after(summary.place, started, today)
    place_rows = [
        {
            "name": CATALOGUE[Category(cat)].name,
            "raised": _per_month(cells, months, "raised"),
            "resolved": _per_month(cells, months, "resolved"),
            "open": summary.open_reports.get(cat, 0),
        }
        for cat, cells in sorted(summary.place.items())
    ]
    person_rows = []
    for cat, cells in sorted(summary.person.items()):
        for m in months:
            if m in cells:
                cell = cells[m]
                person_rows.append(
                    {
                        "name": CATALOGUE[Category(cat)].name,
                        "month": m.strftime("%B %Y"),
                        "bands": [(b, cell.areas_by_band.get(b, 0)) for b in BANDS],
                        "raised": cell.areas_raised,
                        "resolved": cell.areas_resolved,
                        "trend": cell.trend,
                    }
                )
    return {
        "labels": labels,
        "offers_total": sum(offer_values),
        "offers_this_month": offer_values[-1],
        "opportunities": len(opportunities),
        "started": started,
        "before": before,
        "after": after,
        "open_reports": sum(summary.open_reports.values()),
        "offers_chart": bar_chart(
            "offers",
            "Offers of help each month",
            f"{sum(offer_values)} offers of help in the last {_MONTHS} months; "
            + ", ".join(f"{lab}: {v}" for lab, v in zip(labels, offer_values, strict=True) if v),
            labels,
            [Series("Offers of help", offer_values, "#00703c")],
        ),
        "reports_chart": bar_chart(
            "reports",
            "Street problems reported and sorted each month",
            f"{sum(raised)} reports raised and {sum(resolved)} resolved in the last {_MONTHS} months.",
            labels,
            [Series("Reported", raised, "#b3261e"), Series("Sorted", resolved, "#0b4f9c")],
        ),
        "offer_values": offer_values,
        "raised": raised,
        "resolved": resolved,
        "place_rows": place_rows,
        "person_rows": person_rows,
        "min_unit": MIN_UNIT_ADDRESSES,
        "person_categories": [i.name for i in CATALOGUE.values() if i.sensitivity is Sensitivity.PERSON],
    }


def _page(request: Request, title: str, **context: Any) -> Response:
    settings = prompter_context(request).settings
    body = render("impact.html", base_url=settings.feeds_url, title=title, **context)
    return Response(
        body, media_type="text/html; charset=utf-8", headers={"Cache-Control": "public, max-age=300"}
    )


@router.get("/impact")
async def borough(request: Request, ctx: Context) -> Response:
    names = _ward_names(request)
    async with ctx.pool.acquire() as conn:
        seen = await impact_repo.wards_seen(conn)
    wards = sorted({*names, *seen}, key=lambda c: names.get(c, c))
    return _page(
        request,
        "What neighbours did across the borough",
        where="across the borough",
        wards=[(c, names.get(c, c)) for c in wards],
        **await _figures(request, None),
    )


@router.get("/impact/wards/{ward_code}")
async def ward(request: Request, ward_code: str) -> Response:
    names = _ward_names(request)
    if len(ward_code) > 16 or (names and ward_code not in names):
        raise Problem(
            404,
            "No such ward",
            f"No ward has code {ward_code[:16]!r}.",
            errors=[{"field": "ward_code", "message": "not a ward of this council"}],
        )
    name = names.get(ward_code, ward_code)
    return _page(
        request,
        f"What neighbours did in {name}",
        where=f"in {name}",
        wards=[],
        **await _figures(request, ward_code),
    )
