"""A prompt's page and its "I can help" button: counted once per resident, then the ways to help.

No account: the first click sets a random first-party cookie (HttpOnly, SameSite=Lax, a year) and
the response id is uuid5(cookie, prompt), so however often one browser clicks, on whichever page,
the prompt is counted once — in this service and in the prompter, which de-duplicates by id. The
rate limit per client stays. After clicking, the resident sees the matched ways to help (local
groups first, then platforms) with their contact routes, and may leave a first name and email for
ONE local organisation: that form posts straight to the prompter (FEEDS_PROMPTER_URL), so contact
details never pass through this service or Kafka.
"""

from __future__ import annotations

import secrets

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, Response

from shared.contracts import OpportunityLink, PromptPublished
from shared.http import Problem
from shared.ratelimit import client_key as shared_client_key
from shared.refusals import NotFound

from . import repository as repo
from .actions import respond
from .context import ready_context
from .entries import entry_from_prompt
from .pages import render
from .refusals import TooManyResponses

__all__ = ["HELPER_COOKIE", "client_key", "helper_token", "router"]

router = APIRouter(tags=["residents"])
HELPER_COOKIE = "sn_helper"
_YEAR_S = 365 * 24 * 3600


def client_key(request: Request) -> str:
    """What the rate limit counts by: the shared key (trusted proxies only, IPv6 by /64)."""
    runtime = getattr(getattr(request.scope.get("app"), "state", None), "runtime", None)
    return shared_client_key(request, getattr(runtime, "settings", None))


def helper_token(request: Request) -> tuple[str, bool]:
    """(the resident's random helper token, whether it is new and must be set as a cookie)."""
    token = request.cookies.get(HELPER_COOKIE, "")
    if 16 <= len(token) <= 64 and token.replace("-", "").replace("_", "").isalnum():
        return token, False
    return secrets.token_urlsafe(18), True


def _ways(prompt: PromptPublished) -> tuple[list[OpportunityLink], list[OpportunityLink]]:
    local = [o for o in prompt.opportunities if o.kind == "local"]
    return local, [o for o in prompt.opportunities if o.kind != "local"]


@router.get("/prompts/{prompt_id}", response_class=HTMLResponse, summary="One prompt, with 'I can help'")
async def prompt_page(request: Request, prompt_id: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    async with ctx.pool.acquire() as conn:
        found = await repo.prompt(conn, prompt_id)
        counts = await repo.response_counts(conn, [prompt_id])
    if found is None:
        raise Problem(404, "No such prompt")
    e = entry_from_prompt(found[0], base_url=settings.base_url, tag_authority=settings.tag_authority)
    body = render(
        "prompt.html",
        base_url=settings.base_url,
        title=e.title,
        e=e,
        retired=found[1],
        counts=counts,
        impact_url=f"{settings.prompter_url}/impact/wards/{e.ward_code}" if e.ward_code else None,
    )
    return HTMLResponse(body, headers={"Cache-Control": f"public, max-age={settings.feed_cache_max_age_s}"})


@router.post(
    "/prompts/{prompt_id}/help",
    response_class=HTMLResponse,
    summary="'I can help' from the HTML button (anonymous, counted once per resident)",
    responses={
        429: {"description": "Too many from here: not counted now; the page still shows the ways to help."}
    },
)
async def help_form(request: Request, prompt_id: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    token, new_token = helper_token(request)
    status, headers, limited = 200, {"Cache-Control": "no-store"}, False
    try:
        _, prompt, count, counted = await respond(ctx, prompt_id, client_key(request), token)
    except TooManyResponses as exc:
        # Too many from this address: not counted now, but the ways to help are public anyway.
        async with ctx.pool.acquire() as conn:
            found = await repo.prompt(conn, prompt_id)
            count = (await repo.response_counts(conn, [prompt_id])).get(prompt_id, 0)
        if found is None:  # `respond` found it a moment ago; nothing deletes a prompt meanwhile
            raise NotFound("No such prompt") from None
        prompt = found[0]
        status, counted, limited = 429, False, True
        headers["Retry-After"] = str(exc.retry_after)
    e = entry_from_prompt(prompt, base_url=settings.base_url, tag_authority=settings.tag_authority)
    local, platforms = _ways(prompt)
    body = render(
        "thanks.html",
        base_url=settings.base_url,
        title="Thank you",
        e=e,
        count=count,
        counted=counted,
        limited=limited,
        local=local,
        platforms=platforms,
        choosable=[o for o in local if o.organisation_id],
        offer_action=f"{settings.prompter_url}/offers",
        private=True,
    )
    response = HTMLResponse(body, status_code=status, headers=headers)
    if new_token:
        response.set_cookie(
            HELPER_COOKIE,
            token,
            max_age=_YEAR_S,
            path="/",
            httponly=True,
            samesite="lax",
            secure=settings.base_url.startswith("https://"),
        )
    return response
