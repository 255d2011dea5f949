"""Feed documents from entries: Atom 1.0 (RFC 4287) and RSS 2.0 via feedgen, JSON Feed 1.1 by hand.

Every document is a pure function of its entries and `updated`, never of the clock, so the same
content always has the same bytes and its ETag can be strong.
"""

from __future__ import annotations

import datetime as dt
import json
from dataclasses import dataclass
from html import escape

from feedgen.feed import FeedGenerator

from .entries import FeedEntry

__all__ = ["ATOM", "JSON_FEED", "RSS", "FeedMeta", "atom", "entry_html", "json_feed", "rss"]

ATOM = "application/atom+xml; charset=utf-8"
RSS = "application/rss+xml; charset=utf-8"
JSON_FEED = "application/feed+json; charset=utf-8"
# Before anything is published a feed still needs an `updated`; the project's epoch keeps it stable.
EPOCH = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


@dataclass(frozen=True)
class FeedMeta:
    id: str  # tag: URI
    title: str
    description: str
    home_page_url: str  # the HTML page
    feed_url: str  # this document's own URL (rel="self")
    publisher: str
    updated: dt.datetime | None


def entry_html(e: FeedEntry) -> str:
    """The entry's content as HTML: the prompt and the ways to help."""
    parts = [f"<p>{escape(e.body)}</p>"]
    if e.opportunities:
        items = "".join(
            f"<li>{_link(o.title, o.url)} ({escape(o.organisation)}){_when(o.when)}</li>"
            for o in e.opportunities
        )
        parts.append(f"<p>Ways to help:</p><ul>{items}</ul>")
    parts.append(f'<p><a href="{escape(e.url)}">Say you can help</a></p>')
    return "".join(parts)


def _link(text: str, url: str | None) -> str:
    return f'<a href="{escape(url)}">{escape(text)}</a>' if url else escape(text)


def _when(when: str | None) -> str:
    return f" — {escape(when)}" if when else ""


def _text(e: FeedEntry) -> str:
    lines = [e.body]
    for o in e.opportunities:
        lines.append(
            f"- {o.title} ({o.organisation})"
            + (f", {o.when}" if o.when else "")
            + (f": {o.url}" if o.url else "")
        )
    lines.append(f"Say you can help: {e.url}")
    return "\n".join(lines)


def _updated(meta: FeedMeta, entries: list[FeedEntry]) -> dt.datetime:
    candidates = [e.updated for e in entries] + ([meta.updated] if meta.updated else [])
    return max(candidates, default=EPOCH)


def _generator(meta: FeedMeta, entries: list[FeedEntry]) -> FeedGenerator:
    fg = FeedGenerator()
    fg.id(meta.id)
    fg.title(meta.title)
    fg.subtitle(meta.description)  # Atom subtitle; RSS channel description
    fg.link(href=meta.feed_url, rel="self")
    fg.link(href=meta.home_page_url, rel="alternate", type="text/html")
    fg.author({"name": meta.publisher})
    fg.language("en-GB")
    fg.generator("streetneeds")
    updated = _updated(meta, entries)
    fg.updated(updated)
    fg.lastBuildDate(updated)
    for e in entries:
        fe = fg.add_entry(order="append")
        fe.id(e.id)  # also the RSS guid, isPermaLink="false"
        fe.title(e.title)
        fe.updated(e.updated)
        fe.published(e.updated)
        fe.link(href=e.url, rel="alternate", type="text/html")
        fe.summary(e.body)
        fe.content(entry_html(e), type="html")
        fe.category(term=e.category, label=e.category_name)
    return fg


def atom(meta: FeedMeta, entries: list[FeedEntry]) -> bytes:
    body: bytes = _generator(meta, entries).atom_str(pretty=True)  # feedgen has no type hints
    return body


def rss(meta: FeedMeta, entries: list[FeedEntry]) -> bytes:
    # feedgen writes the last link as RSS <link> (the HTML page) and rel="self" as atom:link.
    body: bytes = _generator(meta, entries).rss_str(pretty=True)
    return body


def json_feed(meta: FeedMeta, entries: list[FeedEntry]) -> bytes:
    """JSON Feed 1.1 (https://jsonfeed.org/version/1.1)."""
    doc = {
        "version": "https://jsonfeed.org/version/1.1",
        "title": meta.title,
        "home_page_url": meta.home_page_url,
        "feed_url": meta.feed_url,
        "description": meta.description,
        "language": "en-GB",
        "authors": [{"name": meta.publisher}],
        "items": [
            {
                "id": e.id,
                "url": e.url,
                "title": e.title,
                "summary": e.body,
                "content_text": _text(e),
                "content_html": entry_html(e),
                "date_published": e.updated.isoformat(),
                "date_modified": e.updated.isoformat(),
                "tags": [e.category_name],
            }
            for e in entries
        ],
    }
    return json.dumps(doc, ensure_ascii=False, indent=2).encode()
