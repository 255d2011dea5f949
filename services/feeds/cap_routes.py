"""Public alerts: OASIS CAP 1.2 per alert, and the Atom index of them that alert hubs poll."""

from __future__ import annotations

from fastapi import APIRouter, Request
from fastapi.responses import Response
from feedgen.feed import FeedGenerator

from shared.http import Problem

from . import repository as repo
from .cap import CAP_XML, alert_xml, area_polygons
from .conditional import cacheable
from .context import ready_context
from .entries import tag_uri
from .formats import ATOM, EPOCH
from .responses import CAP_INDEX, CAP_MESSAGE, AtomResponse, CapResponse

__all__ = ["router"]

router = APIRouter(prefix="/cap", tags=["alerts"])


@router.get(
    "/alerts.xml",
    response_class=AtomResponse,
    summary="Atom index of current CAP 1.2 alerts (place categories only)",
    responses=CAP_INDEX,
)
async def alerts_index(request: Request) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    async with ctx.pool.acquire() as conn:
        messages = await repo.cap_index(conn, settings.cap_cancel_visible_days)
    fg = FeedGenerator()
    fg.id(tag_uri(settings.tag_authority, "cap", "alerts"))
    fg.title(f"{settings.publisher}: public alerts (CAP 1.2)")
    fg.subtitle("Street-level environmental needs neighbours could help with.")
    fg.link(href=f"{settings.base_url}/cap/alerts.xml", rel="self")
    fg.link(href=f"{settings.base_url}/", rel="alternate", type="text/html")
    fg.author({"name": settings.publisher})
    fg.language("en-GB")
    fg.generator("streetneeds")
    updated = max((m.sent for m in messages), default=EPOCH)
    fg.updated(updated)
    for m in messages:
        fe = fg.add_entry(order="append")
        fe.id(tag_uri(settings.tag_authority, "cap", m.identifier))
        fe.title(m.event.title if m.msg_type != "Cancel" else f"No longer reported: {m.event.title}")
        fe.updated(m.sent)
        fe.summary(m.event.body)
        fe.link(
            href=f"{settings.base_url}/cap/{m.identifier}.xml", rel="alternate", type="application/cap+xml"
        )
    return cacheable(
        request,
        fg.atom_str(pretty=True),
        ATOM,
        last_modified=updated if messages else None,
        max_age=settings.feed_cache_max_age_s,
    )


@router.get(
    "/{identifier}.xml", response_class=CapResponse, summary="One CAP 1.2 alert", responses=CAP_MESSAGE
)
async def alert(request: Request, identifier: str) -> Response:
    ctx = ready_context(request)
    settings = ctx.settings
    areas = ctx.loaded_areas()
    async with ctx.pool.acquire() as conn:
        message = await repo.cap_message(conn, identifier)
    if message is None:
        raise Problem(404, "No such alert")
    polygons = area_polygons(areas.gazetteer, message.event.street_ids, settings.cap_buffer_m)
    body = alert_xml(
        message,
        sender=settings.cap_sender,
        sender_name=settings.publisher,
        base_url=settings.base_url,
        polygons=polygons,
    )
    return cacheable(
        request, body, CAP_XML, last_modified=message.sent, max_age=settings.feed_cache_max_age_s
    )
