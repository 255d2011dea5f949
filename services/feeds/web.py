"""Residents' pages and feeds: streets, wards and private subscriptions in HTML, Atom, RSS, JSON
Feed and live events; subscribe/unsubscribe forms; "I can help"; the printable street notice."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Callable
from typing import Annotated, Any, Literal

import segno
from fastapi import APIRouter, Form, Path, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from sse_starlette import EventSourceResponse

from shared.gazetteer.selection import Areas, Selection, UnknownArea
from shared.http import Problem
from shared.ratelimit import RATE_LIMITED, SUBSCRIPTIONS_PER_MINUTE, enforce_rate
from shared.web import PRIVATE_PAGE_HEADERS

from . import repository as repo
from .actions import resolve, subscribe, subscription
from .conditional import cacheable
from .context import FeedsContext, ready_context
from .pages import render
from .responses import ENDED, EVENTS, FEED, PAGE, SEE_OTHER, SHORT_LINK, UNDOTTED, AtomResponse
from .settings import FeedsSettings
from .views import HTML, FeedTarget, alternates, events_response, feed_response, load_entries

__all__ = ["router", "short_code"]

router = APIRouter(tags=["residents"])
Fmt = Literal["atom", "rss", "json"]


def short_code(street_id: str) -> str:
    """A short, stable code for a street, for printed notices (typed by hand, so no look-alikes)."""
    digest = hashlib.sha256(street_id.encode()).digest()
    alphabet = "abcdefghjkmnpqrstuvwxyz23456789"
    n = int.from_bytes(digest[:8], "big")
    return "".join(alphabet[(n >> (5 * i)) % len(alphabet)] for i in range(7))


def _street_target(areas: Areas, street_id: str) -> FeedTarget:
    try:
        sel = areas.for_streets([street_id])
    except UnknownArea:
        raise Problem(404, "No such street", f"no street with id {street_id!r}") from None
    street = sel.streets[0]
    where = f"{street.name}" + (f", {street.ward_name}" if street.ward_name else "")
    return FeedTarget(
        sel,
        f"/streets/{street_id}",
        street.name,
        f"What neighbours could help with on {where}.",
        f"street/{street_id}",
        subscribe={"kind": "street", "street_id": street_id},
        notice_path=f"/streets/{street_id}/notice",
    )


def _known(ctx: FeedsContext, path: str, make: Callable[[], FeedTarget]) -> FeedTarget:
    """The street's or ward's target at `path`, made once (`make` raises a 404 for an unknown one)."""
    target = ctx.targets.get(path)
    if target is None:
        target = ctx.targets[path] = make()
    return target


def _street(request: Request, street_id: str) -> FeedTarget:
    ctx = ready_context(request)
    return _known(ctx, f"/streets/{street_id}", lambda: _street_target(ctx.loaded_areas(), street_id))


def _ward(request: Request, ward_code: str) -> FeedTarget:
    ctx = ready_context(request)
    return _known(ctx, f"/wards/{ward_code}", lambda: _ward_target(ctx.loaded_areas(), ward_code))


def _ward_target(areas: Areas, ward_code: str) -> FeedTarget:
    try:
        sel = areas.for_ward(ward_code)
    except UnknownArea:
        raise Problem(404, "No such ward", f"no ward with code {ward_code!r}") from None
    return FeedTarget(
        sel,
        f"/wards/{ward_code}",
        sel.label,
        f"What neighbours could help with in {sel.label}.",
        f"ward/{ward_code}",
        subscribe={"kind": "ward", "ward_code": ward_code},
        notice_path=f"/wards/{ward_code}/notice",
    )


async def _subscription_target(request: Request, token: str) -> FeedTarget:
    ctx = ready_context(request)
    sel = await subscription(ctx, token)
    # The feed id must not carry the capability itself: a hash of it is stable and safe to share.
    key = hashlib.sha256(token.encode()).hexdigest()[:24]
    return FeedTarget(
        sel,
        f"/s/{token}",
        sel.label,
        f"What neighbours could help with: {sel.label}.",
        f"subscription/{key}",
        private=True,
        unsubscribe_path=f"/s/{token}/unsubscribe",
        alerts=_alerts_for(sel),
    )


def _alerts_for(sel: Selection) -> dict[str, str] | None:
    """What the e-mail form on a private feed's page may follow: its one street or its ward."""
    if sel.kind == "street" and len(sel.street_ids) == 1:
        return {"kind": "street", "street_id": sel.street_ids[0]}
    if sel.kind == "ward" and len(sel.ward_codes) == 1:
        return {"kind": "ward", "ward_code": sel.ward_codes[0]}
    return None


@router.get("/", response_class=HTMLResponse, summary="Home: find a street", responses=PAGE)
async def home(request: Request) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    return _home(request, settings, areas, None)


# Distances offered for "near me" (metres); the form also accepts any value in [MIN_RADIUS_M, max].
MIN_RADIUS_M = 50
RADII = (100, 200, 300, 500, 1000, 2000)


def _radii(settings: FeedsSettings) -> list[int]:
    return [r for r in RADII if MIN_RADIUS_M <= r <= settings.max_radius_m] or [settings.max_radius_m]


def _home_context(settings: FeedsSettings, areas: Areas, q: str | None) -> dict[str, Any]:
    found = areas.find(q, limit=20) if q else None
    labels = {s.id: areas.label(s) for s in found.streets} if found else {}
    # Each candidate postcode with its streets, so residents recognise theirs.
    streets_of = {
        code: ", ".join(areas.gazetteer.streets[i].name for i in areas.gazetteer.postcodes.get(code, ())[:3])
        for code in (found.postcodes if found else [])
    }
    return {
        "base_url": settings.base_url,
        "title": f"Search: {q}" if q else "Find your street",
        "description": f"Needs neighbours could help with in {settings.council_name}, street by street.",
        "canonical": f"{settings.base_url}/",
        "council": settings.council_name,
        "q": q,
        "found": found,
        "labels": labels,
        "streets_of": streets_of,
        "wards": sorted(areas.wards.items(), key=lambda kv: kv[1]),
        "radii": _radii(settings),
        "min_radius_m": MIN_RADIUS_M,
        "max_radius_m": settings.max_radius_m,
        "map": {"layers": f"{settings.base_url}/map/needs.geojson"},
    }


def _home(request: Request, settings: FeedsSettings, areas: Areas, q: str | None) -> Response:
    if q:
        found = areas.find(q, limit=2)
        if found.kind == "postcode" and len(found.streets) == 1:  # a postcode on one street: straight there
            return RedirectResponse(f"{settings.base_url}/streets/{found.streets[0].id}", status_code=303)
    body = render("home.html", **_home_context(settings, areas, q))
    return cacheable(request, body, HTML, last_modified=None, max_age=300)


@router.get(
    "/streets",
    response_class=HTMLResponse,
    summary="Search streets by name (HTML)",
    responses={**PAGE, **SEE_OTHER},
)
async def search_page(request: Request, q: str = "") -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    return _home(request, settings, areas, q.strip())


@router.get(
    "/streets/{street_id}.{fmt}",
    response_class=AtomResponse,
    summary="A street's feed as Atom, RSS or JSON Feed",
    responses=FEED,
)
async def street_feed(request: Request, street_id: str, fmt: Fmt) -> Response:
    return await feed_response(request, _street(request, street_id), fmt)


@router.get(
    "/streets/{street_id}/events",
    response_class=EventSourceResponse,
    summary="A street's live updates (Server-Sent Events)",
    responses=EVENTS,
)
async def street_events(request: Request, street_id: str) -> Response:
    return await events_response(request, _street(request, street_id))


@router.get(
    "/streets/{street_id}/notice",
    response_class=HTMLResponse,
    summary="A printable A4 notice for the street",
    responses=PAGE,
)
async def street_notice(request: Request, street_id: str) -> Response:
    target = _street(request, street_id)
    return await _notice(request, target, short_code(street_id), f"on {target.title}")


@router.get(
    "/wards/{ward_code}/notice",
    response_class=HTMLResponse,
    summary="A printable A4 notice for the ward",
    responses=PAGE,
)
async def ward_notice(request: Request, ward_code: str) -> Response:
    target = _ward(request, ward_code)
    return await _notice(request, target, short_code(f"ward/{ward_code}"), f"in {target.title}")


# A notice has room for this many needs on one A4 page; the rest are behind its link.
NOTICE_MAX_NEEDS = 3


async def _notice(request: Request, target: FeedTarget, code: str, where: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    entries, last_modified = await load_entries(ctx, target)
    short_url = f"{settings.base_url}/n/{code}"
    qr = segno.make(short_url, error="m").svg_inline(scale=4, title=f"QR code for {short_url}", border=2)
    body = render(
        "notice.html",
        base_url=settings.base_url,
        place=target.title,
        where=where,
        entries=entries[:NOTICE_MAX_NEEDS],
        more=max(0, len(entries) - NOTICE_MAX_NEEDS),
        printed_on=dt.datetime.now(dt.UTC).date(),
        short_url=short_url.split("://", 1)[1],
        qr_svg=qr,
        contact=settings.notice_contact,
    )
    return cacheable(request, body, HTML, last_modified=last_modified, max_age=settings.feed_cache_max_age_s)


@router.get("/streets/{street_id}", response_class=HTMLResponse, summary="A street's page", responses=PAGE)
async def street_page(
    request: Request, street_id: Annotated[str, Path(json_schema_extra=UNDOTTED)]
) -> Response:
    return await feed_response(request, _street(request, street_id), "html")


@router.get(
    "/n/{code}",
    status_code=301,
    response_class=RedirectResponse,
    summary="Short link from a printed notice to its street",
    responses=SHORT_LINK,
)
async def short_link(request: Request, code: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    codes = ctx.short_codes
    if codes is None:
        codes = {short_code(i): f"/streets/{i}" for i in areas.gazetteer.streets}
        codes.update({short_code(f"ward/{w}"): f"/wards/{w}" for w in areas.wards})
        ctx.short_codes = codes
    if code not in codes:
        raise Problem(404, "No street or ward has that short code")
    return RedirectResponse(f"{settings.base_url}{codes[code]}", status_code=301)


@router.get(
    "/wards/{ward_code}.{fmt}",
    response_class=AtomResponse,
    summary="A ward's feed as Atom, RSS or JSON Feed",
    responses=FEED,
)
async def ward_feed(request: Request, ward_code: str, fmt: Fmt) -> Response:
    return await feed_response(request, _ward(request, ward_code), fmt)


@router.get(
    "/wards/{ward_code}/events",
    response_class=EventSourceResponse,
    summary="A ward's live updates (Server-Sent Events)",
    responses=EVENTS,
)
async def ward_events(request: Request, ward_code: str) -> Response:
    return await events_response(request, _ward(request, ward_code))


@router.get("/wards/{ward_code}", response_class=HTMLResponse, summary="A ward's page", responses=PAGE)
async def ward_page(
    request: Request, ward_code: Annotated[str, Path(json_schema_extra=UNDOTTED)]
) -> Response:
    return await feed_response(request, _ward(request, ward_code), "html")


@router.get(
    "/s/{token}.{fmt}",
    response_class=AtomResponse,
    summary="A subscription's private feed as Atom, RSS or JSON Feed",
    responses={**FEED, **ENDED},
)
async def subscription_feed(request: Request, token: str, fmt: Fmt) -> Response:
    return await feed_response(request, await _subscription_target(request, token), fmt)


@router.get(
    "/s/{token}/events",
    response_class=EventSourceResponse,
    summary="A subscription's live updates (Server-Sent Events)",
    responses={**EVENTS, **ENDED},
)
async def subscription_events(request: Request, token: str) -> Response:
    return await events_response(request, await _subscription_target(request, token))


@router.get(
    "/s/{token}/unsubscribe", response_class=HTMLResponse, summary="Confirm unsubscribing", responses=ENDED
)
async def unsubscribe_confirm(request: Request, token: str) -> Response:
    target = await _subscription_target(request, token)
    settings = ready_context(request).settings
    body = render(
        "unsubscribe.html",
        base_url=settings.base_url,
        title="Unsubscribe",
        label=target.title,
        action=f"{settings.base_url}/s/{token}/unsubscribe",
        private=True,
        feed_url=f"{settings.base_url}/s/{token}",
    )
    return HTMLResponse(body, headers=PRIVATE_PAGE_HEADERS)


@router.post("/s/{token}/unsubscribe", response_class=HTMLResponse, summary="Unsubscribe", responses=ENDED)
async def unsubscribe_post(request: Request, token: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    await _subscription_target(request, token)  # 404 / 410 as for the feed
    async with ctx.pool.acquire() as conn:
        await repo.unsubscribe(conn, hashlib.sha256(token.encode()).digest())
    body = render(
        "message.html",
        base_url=settings.base_url,
        title="You have unsubscribed",
        private=True,
        paragraphs=[
            "The private feed link no longer works, and we no longer keep which streets it followed."
        ],
    )
    return HTMLResponse(body, headers=PRIVATE_PAGE_HEADERS)


@router.get(
    "/s/{token}",
    response_class=HTMLResponse,
    summary="A subscription's private page",
    responses={**PAGE, **ENDED},
)
async def subscription_page(
    request: Request, token: Annotated[str, Path(json_schema_extra=UNDOTTED)]
) -> Response:
    return await feed_response(request, await _subscription_target(request, token), "html")


@router.post(
    "/subscriptions",
    response_class=HTMLResponse,
    status_code=201,
    summary="Subscribe from the HTML form (no account)",
    responses=RATE_LIMITED,
)
async def subscribe_form(
    request: Request,
    kind: Annotated[str | None, Form()] = None,
    street_id: Annotated[str | None, Form()] = None,
    street_ids: Annotated[list[str] | None, Form()] = None,
    ward_code: Annotated[str | None, Form()] = None,
    lat: Annotated[str | None, Form()] = None,
    lon: Annotated[str | None, Form()] = None,
    radius_m: Annotated[str | None, Form()] = None,
) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    near_me = kind == "area" or (not kind and (lat or lon or radius_m))
    point = _point(areas, settings, lat, lon, radius_m) if near_me else None
    sel = resolve(
        areas,
        settings,
        kind=kind,
        street_id=street_id,
        street_ids=street_ids,
        ward_code=ward_code,
        **(point or {}),
    )
    enforce_rate(request, "subscriptions", SUBSCRIPTIONS_PER_MINUTE, SUBSCRIPTIONS_PER_MINUTE)
    done = await subscribe(ctx, sel)
    path = f"/s/{done.token}"
    body = render(
        "subscribed.html",
        base_url=settings.base_url,
        title="Subscribed",
        label=sel.label,
        feed_url=f"{settings.base_url}{path}",
        alternates=alternates(settings, path),
        unsubscribe_url=f"{settings.base_url}{path}/unsubscribe",
        private=True,
        # The e-mail alert form (issue 9) for a street or ward; a point near home is not passed on.
        notifier_url=settings.notifier_url,
        subscribe={
            "street": {"kind": "street", "street_id": (sel.street_ids or ("",))[0]},
            "ward": {"kind": "ward", "ward_code": (sel.ward_codes or ("",))[0]},
        }.get(sel.kind),
    )
    return HTMLResponse(body, status_code=201, headers=PRIVATE_PAGE_HEADERS)


def _number(value: str | None) -> float | None:
    try:
        return float(value) if value else None
    except ValueError:
        return None


def _resident_error(message: str, title: str = "Please check what you chose") -> Problem:
    """A 422 whose message is written for residents (shown as-is on the HTML error page)."""
    return Problem(422, title, message, errors=[{"field": "", "message": message}])


def _point(
    areas: Areas, settings: FeedsSettings, lat: str | None, lon: str | None, radius: str | None
) -> dict[str, float]:
    """lat/lon/radius from the "near me" form, checked with messages residents understand."""
    la, lo, r = _number(lat), _number(lon), _number(radius)
    problems: list[str] = []
    if la is None or lo is None:
        problems.append("Choose a point first: use your location, or click the map.")
    if r is None or not (MIN_RADIUS_M <= r <= settings.max_radius_m):
        problems.append(f"Choose a distance between {MIN_RADIUS_M:,} and {settings.max_radius_m:,} metres.")
    if (
        problems or la is None or lo is None or r is None
    ):  # no problem means all three are set: said again for mypy
        raise Problem(
            422,
            "Please check what you chose",
            " ".join(problems),
            errors=[{"field": "", "message": m} for m in problems],
        )
    if not (-90 <= la <= 90 and -180 <= lo <= 180) or not areas.gazetteer.contains(lo, la):
        raise _resident_error(
            f"That point is outside {settings.council_name}. Choose a point inside "
            f"{settings.council_name}, or search for a street.",
            "That point is outside the area we cover",
        )
    try:
        areas.for_circle(la, lo, r)
    except UnknownArea:
        raise _resident_error(
            "We couldn't find a street that close to the point. Choose a larger distance.",
            "Nothing near that point",
        ) from None
    return {"lat": la, "lon": lo, "radius_m": r}
