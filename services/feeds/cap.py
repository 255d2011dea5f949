"""OASIS CAP 1.2 alerts for place categories, and the Atom index of them that alert hubs poll.

CAP is derived from prompts (not from street-needs.v1): a prompt is exactly what is public, it has
the plain-language wording, and one consumer keeps feeds and alerts consistent. A place prompt's
first revision is an Alert, each new revision an Update, its retirement a Cancel; Update and
Cancel reference the message they supersede. Person categories never become CAP.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import re
from collections.abc import Iterable
from typing import TYPE_CHECKING, Any

import shapely
from lxml import etree
from shapely.geometry import Polygon

from shared.contracts import OpportunityLink, PromptPublished, Sensitivity, info
from shared.gazetteer.model import Gazetteer

from .entries import prompt_path

if TYPE_CHECKING:  # repository is not needed at run time; annotations only
    from .repository import CapHead, CapMessage

__all__ = [
    "CAP_NS",
    "CAP_XML",
    "alert_xml",
    "area_polygons",
    "cancel_message",
    "cap_time",
    "identifier",
    "next_message",
]

CAP_NS = "urn:oasis:names:tc:emergency:cap:1.2"
CAP_XML = "application/cap+xml; charset=utf-8"
_SIMPLIFY_M = 3.0
# Catalogue groups to CAP categories: cleansing and green spaces are environmental; highways are
# infrastructure.
_CATEGORY = {"street cleansing": "Env", "green spaces": "Env", "highways": "Infra"}


def cap_time(value: dt.datetime) -> str:
    """CAP dateTime: seconds and an explicit offset (`+00:00`); the schema rejects `Z`."""
    return value.astimezone(dt.UTC).strftime("%Y-%m-%dT%H:%M:%S+00:00")


def identifier(prompt_id: str, revision: int, published_at: dt.datetime) -> str:
    """Unique, URL-safe, and free of the characters CAP forbids (space, comma, '<', '&').

    The publication time is part of it, so a need that comes back after a Cancel gets a new Alert.
    """
    readable = re.sub(r"[^a-z0-9]+", "-", prompt_id.lower()).strip("-")[:60]
    digest = hashlib.sha256(prompt_id.encode()).hexdigest()[:12]
    return f"streetneeds-{readable}-{digest}-r{revision}-{published_at.astimezone(dt.UTC):%Y%m%dT%H%M%S}"


def _reference(sender: str, ident: str, sent: dt.datetime) -> str:
    return f"{sender},{ident},{cap_time(sent)}"


def next_message(
    prompt: PromptPublished, previous: CapHead | None, sender: str
) -> tuple[str, str, str | None]:
    """(identifier, msgType, references) of the message a publication produces.

    `previous` is the prompt's latest CAP message (or None): a new revision of a live alert is an
    Update of it; after a Cancel, or at first, a fresh Alert.
    """
    ident = identifier(prompt.prompt_id, prompt.revision, prompt.published_at)
    if previous is None or previous.msg_type == "Cancel":
        return ident, "Alert", None
    return ident, "Update", _reference(sender, previous.identifier, previous.sent)


def cancel_message(previous: CapHead, sender: str) -> tuple[str, str]:
    """(identifier, references) of the Cancel of a live alert."""
    return f"{previous.identifier}-cancel", _reference(sender, previous.identifier, previous.sent)


def area_polygons(gazetteer: Gazetteer | None, street_ids: Iterable[str], buffer_m: float) -> list[str]:
    """CAP polygons ("lat,lon lat,lon ...", closed) around the streets, buffered in metres.

    Buffered in the gazetteer's metric CRS (British National Grid for GB data), simplified to a few
    metres, one polygon per separate part.
    """
    if gazetteer is None:
        return []
    geoms = [gazetteer.streets[s].geometry for s in street_ids if s in gazetteer.streets]
    if not geoms:
        return []
    metric = gazetteer.projector.to_metric(shapely.union_all(geoms))
    shape = metric.buffer(buffer_m).simplify(_SIMPLIFY_M, preserve_topology=True)
    parts = [shape] if isinstance(shape, Polygon) else list(getattr(shape, "geoms", []))
    out = []
    for part in parts:
        ring = gazetteer.projector.to_wgs84(Polygon(part.exterior.coords))
        coords = [(round(lat, 6), round(lon, 6)) for lon, lat in ring.exterior.coords]
        if coords[0] != coords[-1]:
            coords.append(coords[0])
        if len(coords) >= 4:
            out.append(" ".join(f"{lat},{lon}" for lat, lon in coords))
    return out


def _sub(parent: Any, tag: str, text: str | None = None) -> Any:  # lxml elements (no type hints)
    el = etree.SubElement(parent, f"{{{CAP_NS}}}{tag}")
    if text is not None:
        el.text = text
    return el


def _way(o: OpportunityLink) -> str:
    """One way to help as a line: what, who, when, and how to get in touch."""
    who = f" ({o.organisation})" if o.kind == "local" and o.organisation != o.title else ""
    routes = [r for r in (o.url, o.contact_email, o.contact_phone) if r]
    when = f", {o.when}" if o.when else ""
    return f"{o.title}{who}{when}" + (f": {' or '.join(routes)}" if routes else "")


def _instruction(prompt: PromptPublished) -> str:
    """Names the real ways to help the prompt links: local groups first, then platforms."""
    if not prompt.opportunities:
        return "Neighbours can help: open the link below and say you can help."
    local = any(o.kind == "local" for o in prompt.opportunities)
    head = "Ways to help" + (", local groups first:" if local else ":")
    return "\n".join([head, *(_way(o) for o in prompt.opportunities)])


def alert_xml(
    message: CapMessage, *, sender: str, sender_name: str, base_url: str, polygons: list[str]
) -> bytes:
    """The CAP 1.2 document of one stored message (see repository.CapMessage)."""
    prompt: PromptPublished = message.event
    if prompt.sensitivity is not Sensitivity.PLACE:
        raise ValueError("only place categories are published as CAP")
    cat = info(prompt.category)
    root = etree.Element(f"{{{CAP_NS}}}alert", nsmap={None: CAP_NS})
    _sub(root, "identifier", message.identifier)
    _sub(root, "sender", sender)
    _sub(root, "sent", cap_time(message.sent))
    _sub(root, "status", "Actual")
    _sub(root, "msgType", message.msg_type)
    _sub(root, "scope", "Public")
    if message.refs:
        _sub(root, "references", message.refs)
    cancelled = message.msg_type == "Cancel"
    el = _sub(root, "info")
    _sub(el, "language", "en-GB")
    _sub(el, "category", _CATEGORY.get(cat.group, "Other"))
    _sub(el, "event", cat.name)
    _sub(el, "responseType", "AllClear" if cancelled else "Monitor")
    _sub(el, "urgency", "Past" if cancelled else "Future")
    _sub(el, "severity", "Minor")
    _sub(el, "certainty", "Observed")
    _sub(el, "expires", cap_time(message.sent + dt.timedelta(days=1 if cancelled else cat.lifetime_days)))
    _sub(el, "senderName", sender_name)
    _sub(el, "headline", (f"No longer reported: {prompt.title}" if cancelled else prompt.title)[:160])
    _sub(
        el,
        "description",
        f"{cat.name} on {prompt.area_name} is no longer reported." if cancelled else prompt.body,
    )
    if not cancelled:
        _sub(el, "instruction", _instruction(prompt))
    _sub(el, "web", f"{base_url}{prompt_path(prompt.prompt_id)}")
    area = _sub(el, "area")
    _sub(area, "areaDesc", prompt.area_name)
    for polygon in polygons:
        _sub(area, "polygon", polygon)
    # lxml has no type hints: with an encoding, tostring gives bytes.
    document: bytes = etree.tostring(root, xml_declaration=True, encoding="UTF-8", pretty_print=True)
    return document
