"""The notifier's pages: sign up, confirm, manage and unsubscribe (RFC 8058 one-click), in plain language."""

from __future__ import annotations

import datetime as dt
from collections.abc import Callable
from typing import Any

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import HTMLResponse, Response

from shared.contracts import CATALOGUE, Sensitivity
from shared.gazetteer.selection import Areas
from shared.http import refusal_problem
from shared.ratelimit import client_key
from shared.refusals import Conflict, Invalid, Refusal
from shared.web import PRIVATE_PAGE_HEADERS

from . import repository as repo
from .alerts import (
    FREQUENCIES,
    LinkEnded,
    TooMany,
    Unavailable,
    confirm,
    confirmation_state,
    parse_signup,
    resolve_place,
    sign_up,
    subscription_for_link,
)
from .context import Context, NotifierContext, notifier_context
from .mail import links_for
from .pages import render
from .settings import NotifierSettings

__all__ = ["install_alert_errors", "refusal_status", "router"]

router = APIRouter(tags=["e-mail alerts"])
CATEGORIES = [
    (group, [(c.code.value, c.name) for c in CATALOGUE.values() if c.sensitivity is sensitivity])
    for group, sensitivity in (("About places", Sensitivity.PLACE), ("About people", Sensitivity.PERSON))
]


def _pages(errors: dict[int, str]) -> dict[int | str, dict[str, Any]]:
    """OpenAPI responses for the plain-language error pages (refusals) a route answers besides the
    common ones `shared.http` documents for every route."""
    return {status: {"description": why, "content": {"text/html": {}}} for status, why in errors.items()}


_PLACE = {422: "No place given, or one we cannot find (a street, a ward, or a point with a radius)."}
_ENDED = {410: "The link was already used or has expired, or its alerts have ended."}


def _ctx(request: Request) -> tuple[NotifierContext, NotifierSettings, Callable[[], dt.datetime]]:
    context = notifier_context(request)
    return context, context.settings, context.clock


def _page(settings: NotifierSettings, template: str, status: int = 200, **context: Any) -> HTMLResponse:
    body = render(template, base_url=settings.feeds_url, private=True, **context)
    return HTMLResponse(body, status_code=status, headers=PRIVATE_PAGE_HEADERS)


def _form_page(
    settings: NotifierSettings, template: str, title: str, path: str, **context: Any
) -> HTMLResponse:
    """A page about a resident's alerts whose form posts back to its own address, `path`."""
    return _page(settings, template, title=title, action=f"{settings.base_url}{path}", **context)


def _areas(ctx: NotifierContext) -> Areas:
    areas = ctx.areas
    if areas is None:
        raise Unavailable(
            "Alerts are not ready yet", "The street list has not been loaded. Please try later."
        )
    return areas


# The notifier's own refusals by the status of their page; NotFound, Conflict and Invalid as shared.http.
_STATUS: dict[type[Refusal], int] = {LinkEnded: 410, TooMany: 429, Unavailable: 503}


def refusal_status(exc: Refusal) -> int:
    """The status a refusal's page answers with."""
    return next((code for kind, code in _STATUS.items() if isinstance(exc, kind)), None) or (
        refusal_problem(exc).status
    )


def install_alert_errors(app: FastAPI, settings: NotifierSettings) -> None:
    """A use case's refusal answers as a plain-language page: its title, and its detail to say what to do."""

    @app.exception_handler(Refusal)
    async def _refused(request: Request, exc: Refusal) -> Response:
        return _page(
            settings,
            "message.html",
            refusal_status(exc),
            title=exc.title,
            paragraphs=[exc.detail],
            problem=True,
        )


@router.get(
    "/subscribe",
    response_class=HTMLResponse,
    summary="The sign-up form for e-mail alerts",
    responses=_pages(_PLACE),
)
async def signup_form(request: Request, ctx: Context) -> Response:
    settings = ctx.settings
    place = {
        k: v
        for k, v in request.query_params.items()
        if k in ("kind", "street_id", "ward_code", "lat", "lon", "radius_m")
    }
    sel = resolve_place(_areas(ctx), settings, place)
    return _form_page(
        settings,
        "signup.html",
        f"E-mail alerts for {sel.label}",
        "/subscribe",
        label=sel.label,
        place=place,
        categories=CATEGORIES,
        frequencies=FREQUENCIES,
    )


@router.post(
    "/subscribe",
    response_class=HTMLResponse,
    summary="Sign up for e-mail alerts (sends a confirmation)",
    responses=_pages(
        {
            409: "Mail to that address bounced or was reported as unwanted.",
            422: "No e-mail address, place, frequency or known kind of need: the page says which.",
            429: "Too many sign-ups from here, or for this address.",
        }
    ),
)
async def signup(request: Request, ctx: Context) -> Response:
    settings, clock = ctx.settings, ctx.clock
    if ctx.limiter.take(client_key(request, settings)):
        raise TooMany("Too many sign-ups from here", "Please wait a minute and try again.")
    form = await request.form()
    fields = {k: str(v) for k, v in form.items() if isinstance(v, str)}
    request_ = parse_signup(_areas(ctx), settings, fields, [str(c) for c in form.getlist("categories")])
    await sign_up(ctx.pool, settings, request_, clock())
    return _page(
        settings,
        "message.html",
        title="Check your inbox",
        paragraphs=[
            "We have sent a confirmation link to the address you gave, "
            f"for alerts about {request_.selection.label}.",
            f"Open it within {settings.confirm_hours} hours to start your alerts. "
            "Nothing is sent until you do.",
        ],
    )


@router.get(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="Confirmation link from the mail",
    responses=_pages(_ENDED),
)
async def confirm_page(ctx: Context, token: str) -> Response:
    settings, clock = ctx.settings, ctx.clock
    sub = await confirmation_state(ctx.pool, token, clock(), confirm_now=False)
    # A button, not a GET that confirms: mail scanners open links, and must not confirm for the resident.
    return _form_page(settings, "confirm.html", "Confirm your alerts", f"/confirm/{token}", sub=sub)


@router.post(
    "/confirm/{token}",
    response_class=HTMLResponse,
    summary="Confirm an alert (single use)",
    responses=_pages(_ENDED),
)
async def confirm_post(ctx: Context, token: str) -> Response:
    settings, clock = ctx.settings, ctx.clock
    sub = await confirm(ctx.pool, token, clock())
    links = links_for(settings, sub.subscription_id)
    return _page(settings, "confirmed.html", title="Your alerts are on", sub=sub, links=links)


async def _live(request: Request, token: str) -> tuple[NotifierContext, NotifierSettings, repo.Subscription]:
    ctx, settings, _ = _ctx(request)
    _, sub = await subscription_for_link(ctx.pool, settings, token)
    if sub is not None and sub.status == "pending":
        raise Conflict(
            "These alerts are not confirmed yet",
            "Open the confirmation link in the mail we sent to start them, or ignore that mail to drop them.",
        )
    if sub is None:
        raise LinkEnded(
            "These alerts have ended",
            "You will get no more mail about them. You can sign up again from any street page.",
        )
    return ctx, settings, sub


@router.get(
    "/manage/{token}",
    response_class=HTMLResponse,
    summary="Manage an alert",
    responses=_pages({409: "The alerts are not confirmed yet.", **_ENDED}),
)
async def manage_page(request: Request, token: str) -> Response:
    _, settings, sub = await _live(request, token)
    return _form_page(
        settings,
        "manage.html",
        "Manage your alerts",
        f"/manage/{token}",
        sub=sub,
        unsubscribe=f"{settings.base_url}/unsubscribe/{token}",
        categories=CATEGORIES,
        frequencies=FREQUENCIES,
    )


@router.post(
    "/manage/{token}",
    response_class=HTMLResponse,
    summary="Change how often and which needs",
    responses=_pages({409: "The alerts are not confirmed yet.", **_ENDED}),
)
async def manage_post(request: Request, token: str) -> Response:
    ctx, settings, sub = await _live(request, token)
    form = await request.form()
    frequency = str(form.get("frequency") or "")
    chosen = sorted({str(c) for c in form.getlist("categories")})
    if frequency not in FREQUENCIES:
        raise Invalid("Please choose how often", "Choose instant, daily or weekly.")
    if unknown := [c for c in chosen if c not in {c.code.value for c in CATALOGUE.values()}]:
        raise Invalid("Please check the kinds of need", f"We do not know {', '.join(unknown)}.")
    async with ctx.pool.acquire() as conn:
        await repo.update_preferences(conn, sub.subscription_id, chosen, frequency)
    return _page(
        settings,
        "message.html",
        title="Your alerts are updated",
        paragraphs=[f"You will get {frequency} alerts about {sub.label}."],
        links=[(f"{settings.base_url}/manage/{token}", "Back to your alerts")],
    )


@router.get("/unsubscribe/{token}", response_class=HTMLResponse, summary="Unsubscribe page (one button)")
async def unsubscribe_page(ctx: Context, token: str) -> Response:
    settings = ctx.settings
    _, sub = await subscription_for_link(ctx.pool, settings, token)
    if sub is None:
        return _page(
            settings,
            "message.html",
            title="You are unsubscribed",
            paragraphs=["You will get no more mail about these alerts."],
        )
    return _form_page(settings, "unsubscribe.html", "Unsubscribe", f"/unsubscribe/{token}", sub=sub)


@router.post(
    "/unsubscribe/{token}",
    response_class=HTMLResponse,
    summary="Unsubscribe in one click (RFC 8058: the mail client POSTs List-Unsubscribe=One-Click)",
)
async def unsubscribe_post(ctx: Context, token: str) -> Response:
    settings = ctx.settings
    sid, _ = await subscription_for_link(ctx.pool, settings, token)
    async with ctx.pool.acquire() as conn:
        await repo.delete_subscription(conn, sid)  # idempotent: a second click finds nothing to delete
    return _page(
        settings,
        "message.html",
        title="You are unsubscribed",
        paragraphs=[
            "You will get no more mail about these alerts, and we have deleted your address from them."
        ],
    )
