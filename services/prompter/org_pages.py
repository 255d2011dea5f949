"""Organisations' pages (server-rendered, no JavaScript needed) and the residents' offer form.

Sign in with the organisation's API key: the server keeps a session (a random token in an HttpOnly,
SameSite=Lax cookie; only its hash is stored) with its own CSRF token, which every form carries.
The sign-in form itself is protected by a double-submit cookie. The pages call the same actions as
the JSON API, so ownership (another organisation's opportunity is a 404) and the audit are identical.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import hmac
import secrets
import uuid
from typing import Annotated, Any
from urllib.parse import quote

from fastapi import APIRouter, Form, Request
from fastapi.responses import RedirectResponse, Response
from pydantic import ValidationError
from starlette.datastructures import FormData

from shared.contracts import CATALOGUE, Category
from shared.http import Problem

from . import actions
from . import org_repository as org_repo
from . import repository as repo
from .auth import organisation_for_key
from .context import Context, PrompterContext, prompter_context
from .forms import CATEGORY_CHOICES, FormInvalid, field_errors, opportunity_from_form, opportunity_to_form
from .pages import page, render
from .ratelimit import check_offer_rate
from .schemas import CONSENT_TEXT, OfferIn, OpportunityIn, PlatformIn
from .settings import PrompterSettings

__all__ = ["SESSION_COOKIE", "router"]

router = APIRouter(include_in_schema=False)
SESSION_COOKIE = "sn_org_session"
SIGNIN_COOKIE = "sn_org_signin"
_PATH = "/organisations"


def _ctx(request: Request) -> PrompterContext:
    return prompter_context(request)


def _settings(request: Request) -> PrompterSettings:
    return _ctx(request).settings


def _hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int | None) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path=_PATH,
        httponly=True,
        samesite="lax",
        secure=_settings(request).base_url.startswith("https://"),
    )


def _wards(request: Request) -> list[tuple[str, str]]:
    places = _ctx(request).places
    names = places.ward_names() if hasattr(places, "ward_names") else {}
    return sorted(names.items(), key=lambda kv: kv[1])


def _render(request: Request, template: str, status: int = 200, **context: Any) -> Response:
    settings = _settings(request)
    body = render(
        template,
        base_url=settings.feeds_url,
        prompter_url=settings.base_url,
        private=True,
        categories=CATEGORY_CHOICES,
        wards=_wards(request),
        **context,
    )
    return page(body, status)


def _see(path: str) -> RedirectResponse:
    return RedirectResponse(path, status_code=303)


async def _session(request: Request) -> Any | None:
    token = request.cookies.get(SESSION_COOKIE)
    if not token:
        return None
    async with _ctx(request).pool.acquire() as conn:
        return await org_repo.session(conn, _hash(token))


async def _signed_in(request: Request) -> Any:
    org = await _session(request)
    if org is None:
        raise Problem(401, "Please sign in", "Your sign-in has ended or you have not signed in yet.")
    return org


def _check_csrf(org: Any, token: str | None) -> None:
    if not token or not hmac.compare_digest(token.encode(), org["csrf_token"].encode()):
        raise Problem(
            403,
            "This form has expired",
            "Reload the page and try again (the form's security token did not match).",
            errors=[{"field": "csrf_token", "message": "missing or wrong"}],
        )


def _form_token(form: FormData) -> str | None:
    """The form's security token; a file sent in its place is no token."""
    token = form.get("csrf_token")
    return token if isinstance(token, str) else None


async def _form_org(request: Request, csrf_token: str | None) -> Any:
    org = await _signed_in(request)
    _check_csrf(org, csrf_token)
    return org


def _council(org: Any) -> None:
    if not org["council_admin"]:
        raise Problem(403, "Not allowed", "Only the council's admin organisation may do this.")


# --- signing in and out -----------------------------------------------------------------------


@router.get("/organisations")
async def sign_in_page(request: Request) -> Response:
    if await _session(request) is not None:
        return _see(f"{_PATH}/home")
    csrf = secrets.token_urlsafe(24)
    response = _render(request, "org_signin.html", title="Sign in: organisations", csrf_token=csrf)
    _cookie(request, response, SIGNIN_COOKIE, csrf, 3600)
    return response


@router.post("/organisations/sign-in")
async def sign_in(
    request: Request,
    ctx: Context,
    api_key: Annotated[str, Form(max_length=200)] = "",
    csrf_token: Annotated[str, Form(max_length=100)] = "",
) -> Response:
    expected = request.cookies.get(SIGNIN_COOKIE, "")
    if not expected or not hmac.compare_digest(csrf_token.encode(), expected.encode()):
        raise Problem(
            403,
            "This form has expired",
            "Reload the sign-in page and try again.",
            errors=[{"field": "csrf_token", "message": "missing or wrong"}],
        )
    if not api_key.strip():
        raise Problem(
            422, "Enter your API key", errors=[{"field": "api_key", "message": "enter your API key"}]
        )
    try:
        org = await organisation_for_key(request, api_key.strip())
    except Problem as exc:
        raise Problem(
            exc.status, exc.title, exc.detail, errors=[{"field": "api_key", "message": exc.title}]
        ) from None
    token = secrets.token_urlsafe(32)
    hours = _settings(request).session_hours
    async with ctx.pool.acquire() as conn:
        await org_repo.create_session(
            conn,
            _hash(token),
            org["id"],
            secrets.token_urlsafe(24),
            dt.datetime.now(dt.UTC) + dt.timedelta(hours=hours),
        )
    response = _see(f"{_PATH}/home")
    _cookie(request, response, SESSION_COOKIE, token, int(hours * 3600))
    response.delete_cookie(SIGNIN_COOKIE, path=_PATH)
    return response


@router.post("/organisations/sign-out")
async def sign_out(request: Request, ctx: Context, csrf_token: Annotated[str, Form()] = "") -> Response:
    org = await _form_org(request, csrf_token)
    del org
    async with ctx.pool.acquire() as conn:
        await org_repo.delete_session(conn, _hash(request.cookies[SESSION_COOKIE]))
    response = _see(_PATH)
    response.delete_cookie(SESSION_COOKIE, path=_PATH)
    return response


# --- an organisation's home: its opportunities and the offers it received ----------------------


@router.get("/organisations/home")
async def home(request: Request, ctx: Context) -> Response:
    org = await _session(request)
    if org is None:
        return _see(_PATH)
    async with ctx.pool.acquire() as conn:
        rows = await repo.organisation_opportunities(conn, org["id"])
        offers = await org_repo.offers_for(conn, org["id"])
        totals = await org_repo.offer_totals(conn, org["id"])
        responses = await org_repo.responses_for(conn, org["id"])
    return _render(
        request,
        "org_home.html",
        title=org["name"],
        org=org,
        csrf_token=org["csrf_token"],
        opportunities=rows,
        offers=offers,
        totals=totals,
        responses=responses,
        category_names={str(c): i.name for c, i in CATALOGUE.items()},
        retention_days=_settings(request).offer_retention_days,
    )


@router.get("/organisations/opportunities/new")
async def new_form(request: Request) -> Response:
    org = await _signed_in(request)
    return _render(
        request,
        "org_form.html",
        title="Add a way to help",
        org=org,
        csrf_token=org["csrf_token"],
        values={"categories": [], "organisation": org["name"]},
        errors=[],
        action=f"{_PATH}/opportunities",
    )


async def _form_or_errors(request: Request, org: Any, action: str, title: str) -> OpportunityIn | Response:
    """The opportunity the form describes, or the form again naming each invalid field (422)."""
    form = await request.form()
    _check_csrf(org, _form_token(form))
    try:
        return opportunity_from_form(form)
    except FormInvalid as exc:
        return _render(
            request,
            "org_form.html",
            status=422,
            title=f"Error: {title}",
            org=org,
            csrf_token=org["csrf_token"],
            values=exc.values,
            errors=exc.errors,
            action=action,
        )


@router.post("/organisations/opportunities")
async def create(request: Request, ctx: Context) -> Response:
    org = await _signed_in(request)
    body = await _form_or_errors(request, org, f"{_PATH}/opportunities", "Add a way to help")
    if isinstance(body, Response):
        return body
    await actions.create_opportunity(ctx, org, body)
    return _see(f"{_PATH}/home")


@router.get("/organisations/opportunities/{opportunity_id}/edit")
async def edit_form(request: Request, ctx: Context, opportunity_id: uuid.UUID) -> Response:
    org = await _signed_in(request)
    async with ctx.pool.acquire() as conn:
        row = await actions.owned(conn, opportunity_id, org)
    return _render(
        request,
        "org_form.html",
        title=f"Change: {row['title']}",
        org=org,
        csrf_token=org["csrf_token"],
        values=opportunity_to_form(row),
        errors=[],
        action=f"{_PATH}/opportunities/{opportunity_id}",
    )


@router.post("/organisations/opportunities/{opportunity_id}")
async def update(request: Request, ctx: Context, opportunity_id: uuid.UUID) -> Response:
    org = await _signed_in(request)
    action = f"{_PATH}/opportunities/{opportunity_id}"
    body = await _form_or_errors(request, org, action, "Change a way to help")
    if isinstance(body, Response):
        return body
    await actions.update_opportunity(ctx, org, opportunity_id, body)
    return _see(f"{_PATH}/home")


@router.post("/organisations/opportunities/{opportunity_id}/{verb}")
async def change(
    request: Request,
    ctx: Context,
    opportunity_id: uuid.UUID,
    verb: str,
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    org = await _form_org(request, csrf_token)
    if verb == "pause":
        await actions.change_status(ctx, org, opportunity_id, pause=True)
    elif verb == "resume":
        await actions.change_status(ctx, org, opportunity_id, pause=False)
    elif verb == "retire":
        await actions.retire_opportunity(ctx, org, opportunity_id)
    else:
        raise Problem(404, "No such action")
    return _see(f"{_PATH}/home")


@router.get("/organisations/opportunities/{opportunity_id}/changes")
async def changes_of(request: Request, ctx: Context, opportunity_id: uuid.UUID) -> Response:
    org = await _signed_in(request)
    async with ctx.pool.acquire() as conn:
        row = await actions.owned(conn, opportunity_id, org)
        rows = await org_repo.changes(conn, opportunity_id=opportunity_id)
    return _render(request, "org_changes.html", title=f"Changes: {row['title']}", org=org, changes=rows)


@router.post("/organisations/offers/{offer_id}/handed-over")
async def handed_over(
    request: Request, ctx: Context, offer_id: uuid.UUID, csrf_token: Annotated[str, Form()] = ""
) -> Response:
    org = await _form_org(request, csrf_token)
    await actions.hand_over(ctx, org, offer_id)  # an unknown offer (a second click) changes nothing
    return _see(f"{_PATH}/home")


# --- the council's overview -------------------------------------------------------------------


@router.get("/organisations/changes")
async def all_changes(request: Request, ctx: Context) -> Response:
    org = await _signed_in(request)
    _council(org)
    async with ctx.pool.acquire() as conn:
        rows = await org_repo.changes(conn, limit=500)
    return _render(request, "org_changes.html", title="Every change", org=org, changes=rows, everyone=True)


@router.get("/organisations/platforms")
async def platforms_page(request: Request, ctx: Context) -> Response:
    org = await _signed_in(request)
    _council(org)
    async with ctx.pool.acquire() as conn:
        rows = await org_repo.all_platforms(conn)
    return _render(
        request,
        "org_platforms.html",
        title="Platforms directory",
        org=org,
        csrf_token=org["csrf_token"],
        platforms=rows,
        values={"categories": []},
        errors=[],
    )


@router.post("/organisations/platforms/{platform_id}")
async def switch(
    request: Request,
    ctx: Context,
    platform_id: str,
    enabled: Annotated[str, Form()] = "",
    csrf_token: Annotated[str, Form()] = "",
) -> Response:
    org = await _form_org(request, csrf_token)
    _council(org)
    await actions.switch_platform(ctx, platform_id, enabled == "yes")
    return _see(f"{_PATH}/platforms")


@router.post("/organisations/platforms")
async def add_platform(request: Request, ctx: Context) -> Response:
    org = await _signed_in(request)
    _council(org)
    form = await request.form()
    _check_csrf(org, _form_token(form))
    values: dict[str, object] = {
        k: str(form.get(k, "")).strip() for k in ("id", "name", "description", "url", "coverage")
    }
    values["categories"] = form.getlist("categories")
    try:
        body = PlatformIn.model_validate(values)
    except ValidationError as exc:
        async with ctx.pool.acquire() as conn:
            rows = await org_repo.all_platforms(conn)
        return _render(
            request,
            "org_platforms.html",
            status=422,
            title="Error: Platforms directory",
            org=org,
            csrf_token=org["csrf_token"],
            platforms=rows,
            values=values,
            errors=field_errors(exc),
        )
    await actions.add_platform(ctx, body)
    return _see(f"{_PATH}/platforms")


# --- a resident's offer of contact (posted from the feeds' "thank you" page) --------------------


@router.post("/offers")
async def offer_form(
    request: Request,
    ctx: Context,
    prompt_id: Annotated[str, Form()] = "",
    organisation_id: Annotated[str, Form()] = "",
    opportunity_id: Annotated[str, Form()] = "",
    first_name: Annotated[str, Form()] = "",
    email: Annotated[str, Form()] = "",
    consent: Annotated[str, Form()] = "",
) -> Response:
    """Store the resident's first name and email for the one organisation they chose, with consent."""
    check_offer_rate(request)
    data = {
        "prompt_id": prompt_id,
        "organisation_id": organisation_id or None,
        "opportunity_id": opportunity_id or None,
        "first_name": first_name,
        "email": email.strip(),
        "consent": consent or None,
    }
    try:
        offer = OfferIn.model_validate(data)
    except ValidationError as exc:
        errors = field_errors(exc)
        for e in errors:
            if e["field"] == "consent":
                e["message"] = "tick the box to agree, or go back and stay anonymous"
        raise Problem(422, "Your details were not sent", "Nothing was stored.", errors=errors) from None
    organisation, prompt = await actions.make_offer(ctx, offer, dt.datetime.now(dt.UTC))
    settings = _settings(request)
    return _render(
        request,
        "offer_done.html",
        title="Your details were sent",
        organisation=organisation,
        retention_days=settings.offer_retention_days,
        prompt_title=prompt.title,
        back_url=f"{settings.feeds_url}/prompts/{quote(prompt.prompt_id, safe='')}",
        consent_text=CONSENT_TEXT.format(organisation=organisation),
    )


def category_label(code: str) -> str:
    return CATALOGUE[Category(code)].name
