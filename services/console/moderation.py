"""Moderation pages: organisations' opportunities, the platforms directory, organisations' keys (prompter)."""

from __future__ import annotations

import uuid
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response
from starlette.datastructures import FormData

from .auth import Refused, page_session
from .repository import Session
from .web import _act, _peek, _soft, _targets, render

__all__ = ["router"]

router = APIRouter(include_in_schema=False)


@router.get("/moderation")
async def moderation_page(request: Request) -> Response:
    session = await page_session(request)
    targets = _targets(request)
    opportunities, opportunities_error = await _soft(
        targets.call("prompter", "GET", "/v1/admin/opportunities")
    )
    platforms, platforms_error = await _soft(targets.call("prompter", "GET", "/v1/platforms"))
    organisations, organisations_error = await _soft(
        targets.call("prompter", "GET", "/v1/admin/organisations")
    )
    return render(
        request,
        "moderation.html",
        session,
        title="Moderation",
        opportunities=opportunities or [],
        opportunities_error=opportunities_error,
        platforms=(platforms or {}).get("platforms", []),
        platforms_error=platforms_error,
        organisations=organisations or [],
        organisations_error=organisations_error,
    )


@router.post("/opportunities/{opportunity_id}/pause")
async def pause(request: Request, opportunity_id: uuid.UUID) -> Response:
    return await _moderate(request, opportunity_id, "pause")


@router.post("/opportunities/{opportunity_id}/resume")
async def resume(request: Request, opportunity_id: uuid.UUID) -> Response:
    return await _moderate(request, opportunity_id, "resume")


async def _moderate(request: Request, opportunity_id: uuid.UUID, change: str) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        done = await _targets(request).call(
            "prompter", "POST", f"/v1/admin/opportunities/{opportunity_id}/{change}"
        )
        state = "switched off: prompts no longer link to it" if change == "pause" else "switched on again"
        return f"Opportunity '{done['title']}' {state}.", None, "/moderation"

    return await _act(request, f"{change} opportunity", str(opportunity_id), "operator", do)


def _platform_body(form: FormData) -> dict[str, Any]:
    categories = [str(c) for c in form.getlist("categories")]
    if not categories:
        raise Refused(422, "Check the form", "Choose at least one category the platform helps with.")
    return {
        "name": str(form.get("name") or "").strip(),
        "description": str(form.get("description") or "").strip(),
        "url": str(form.get("url") or "").strip(),
        "categories": categories,
        "coverage": str(form.get("coverage") or "borough"),
    }


@router.post("/platforms")
async def add_platform(request: Request) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        body = {"id": str(form.get("id") or "").strip(), **_platform_body(form)}
        done = await _targets(request).call("prompter", "POST", "/v1/platforms", json=body)
        return f"Platform '{done['name']}' added to the directory.", None, "/moderation"

    return await _act(request, "add platform", await _peek(request, "id"), "operator", do)


@router.post("/platforms/{platform_id}/edit")
async def edit_platform(request: Request, platform_id: str) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        done = await _targets(request).call(
            "prompter", "PUT", f"/v1/admin/platforms/{platform_id}", json=_platform_body(form)
        )
        return f"Platform '{done['name']}' saved.", None, "/moderation"

    return await _act(request, "edit platform", platform_id, "operator", do)


@router.post("/platforms/{platform_id}/switch")
async def switch_platform(request: Request, platform_id: str) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        enabled = form.get("enabled") == "on"
        done = await _targets(request).call(
            "prompter", "PUT", f"/v1/platforms/{platform_id}", json={"enabled": enabled}
        )
        return f"Platform '{done['name']}' switched {'on' if enabled else 'off'}.", None, "/moderation"

    return await _act(request, "switch platform", platform_id, "operator", do)


@router.post("/organisations")
async def create_organisation(request: Request) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        name = str(form.get("name") or "").strip()
        kind = str(form.get("kind") or "vcs")
        if not name or len(name) > 200:
            raise Refused(422, "Check the form", "Give the organisation's name (up to 200 characters).")
        if kind not in ("vcs", "council"):
            raise Refused(422, "Check the form", "Choose whether it is a VCS group or a council team.")
        made = await _targets(request).call(
            "prompter", "POST", "/v1/admin/organisations", json={"name": name, "kind": kind}
        )
        org = made["organisation"]
        return f"Organisation '{org['name']}' ({org['id']}) added.", made["key"], "/moderation"

    return await _act(request, "create organisation", await _peek(request, "name"), "operator", do)
