"""One feed, many representations: HTML, Atom, RSS, JSON Feed and live events for a selection."""

from __future__ import annotations

import datetime as dt
from collections.abc import Awaitable
from dataclasses import dataclass, field, replace
from functools import cached_property
from typing import Any

from fastapi import Request
from fastapi.responses import Response
from sse_starlette import EventSourceResponse, ServerSentEvent
from starlette.requests import HTTPConnection

from shared.contracts import PromptPublished
from shared.gazetteer.selection import Selection
from shared.http import Problem
from shared.ratelimit import client_key

from . import repository as repo
from .conditional import headers_for, is_fresh, not_modified
from .context import FeedsContext, ready_context
from .entries import FeedEntry, entry_from_prompt, tag_uri
from .feedcache import feed_etag, local_writes
from .formats import ATOM, JSON_FEED, RSS, FeedMeta, atom, json_feed, rss
from .live import stream
from .pages import render
from .settings import FeedsSettings

__all__ = ["FORMATS", "FeedTarget", "events_response", "feed_response", "remembered_response", "render_feed"]

HTML = "text/html; charset=utf-8"
FORMATS = {
    "atom": (ATOM, atom, "Atom feed"),
    "rss": (RSS, rss, "RSS feed"),
    "json": (JSON_FEED, json_feed, "JSON Feed"),
}


@dataclass(frozen=True)
class FeedTarget:
    """A feed's selection and where it lives (`path` without a format suffix)."""

    selection: Selection
    path: str
    title: str
    description: str
    tag_key: str
    private: bool = False
    subscribe: dict[str, str] | None = None
    # What an e-mail alert for this feed follows, where that is not `subscribe` (a private feed's street
    # or ward: the form may name it on the resident's own page).
    alerts: dict[str, str] | None = None
    notice_path: str | None = None
    unsubscribe_path: str | None = None
    extra: dict[str, Any] = field(default_factory=dict)

    @cached_property
    def key(self) -> str:
        """What names this target in memory: its repr, which names every field (computed once)."""
        return repr(self)


def alternates(settings: FeedsSettings, path: str) -> list[dict[str, str]]:
    base = f"{settings.base_url}{path}"
    return [
        {"type": FORMATS[f][0].split(";")[0], "title": FORMATS[f][2], "href": f"{base}.{f}"} for f in FORMATS
    ]


async def load_entries(ctx: FeedsContext, target: FeedTarget) -> tuple[list[FeedEntry], dt.datetime | None]:
    settings = ctx.settings
    async with ctx.pool.acquire() as conn:
        prompts = await repo.prompts_for(conn, target.selection, settings.feed_max_entries)
        last_modified = await repo.last_modified(conn, target.selection)
    entries = [
        entry_from_prompt(p, base_url=settings.base_url, tag_authority=settings.tag_authority)
        for p in prompts
    ]
    return entries, last_modified


def render_feed(
    settings: FeedsSettings,
    target: FeedTarget,
    fmt: str,
    prompts: list[PromptPublished],
    counts: dict[str, int],
    last_modified: dt.datetime | None,
) -> tuple[bytes, str]:
    """(body, media type) of `target`'s document in `fmt`: a pure function of its arguments."""
    entries = [
        entry_from_prompt(p, base_url=settings.base_url, tag_authority=settings.tag_authority)
        for p in prompts
    ]
    base = f"{settings.base_url}{target.path}"
    if fmt == "html":
        body = render(
            "feed.html",
            base_url=settings.base_url,
            title=target.title,
            description=target.description,
            entries=entries,
            counts=counts,
            alternates=alternates(settings, target.path),
            private=target.private,
            subscribe=target.subscribe,
            alerts=target.alerts,
            notifier_url=settings.notifier_url,  # the e-mail alert form (issue 9)
            prompter_url=settings.prompter_url,  # the ward's impact page (issue 13)
            ward_codes=target.selection.ward_codes,
            notice_url=f"{settings.base_url}{target.notice_path}" if target.notice_path else None,
            unsubscribe_url=(
                f"{settings.base_url}{target.unsubscribe_path}" if target.unsubscribe_path else None
            ),
        )
        return body, HTML
    media_type, build, _ = FORMATS[fmt]
    meta = FeedMeta(
        id=tag_uri(settings.tag_authority, "feed", target.tag_key),
        title=target.title,
        description=target.description,
        home_page_url=base,
        feed_url=f"{base}.{fmt}",
        publisher=settings.publisher,
        updated=last_modified,
    )
    return build(meta, entries), media_type


@dataclass(frozen=True)
class _Found:
    """A feed's validators, with its body when the look-up has it."""

    etag: str
    headers: dict[str, str]
    last_modified: dt.datetime | None
    body: bytes | None = None


async def feed_response(request: Request, target: FeedTarget, fmt: str) -> Response:
    """`fmt` is html, atom, rss or json; conditional GET on every one, decided before rendering.

    While the listener is caught up, a feed's validators come from memory (`ValidatorCache`, invalidated
    by every change it fans out and, for pages, which show "I can help" counts, by every count change)
    and its body from the cache of rendered feeds by ETag: a repeat request needs no query at all.
    Otherwise `_look_up` asks the database, once for all the requests that want the same feed at the
    same moment (`Flights`).
    """
    ctx = ready_context(request)
    media_type = HTML if fmt == "html" else FORMATS[fmt][0]
    seen = _seen(ctx, fmt)
    key = (target.key, fmt)  # the selection too: a subscription's can change without a prompt change
    if seen is not None:
        remembered = _from_memory(ctx, key, seen, media_type, request)
        if remembered is not None:
            return remembered
    conditional = (
        request if "if-none-match" in request.headers or "if-modified-since" in request.headers else None
    )

    def look_up() -> Awaitable[_Found]:
        return _look_up(ctx, target, fmt, key, seen, conditional)

    # Shared only while the listener vouches for `seen`: whoever joins a running look-up would have
    # started its own after no change it must see.
    found = await (look_up() if seen is None else ctx.flights.run((key, seen, conditional is None), look_up))
    if is_fresh(request, found.etag, found.last_modified):
        return not_modified(found.headers)
    body = found.body or ctx.bodies.get(found.etag)
    if body is None:  # a shared look-up answered another client's conditional request without a body
        body = (await _look_up(ctx, target, fmt, key, seen, None)).body
    return Response(body, media_type=media_type, headers=found.headers)


def _seen(ctx: FeedsContext, fmt: str) -> tuple[int, ...] | None:
    """What a feed's validators in memory are current for (`ValidatorCache`): the changes the listener
    fanned out and this process's own writes (and, for pages, count changes); None while the listener
    is not caught up."""
    hub = ctx.hub
    listened = hub.seen_seq
    if listened is None:
        return None
    seen: tuple[int, ...] = (listened, local_writes())
    if fmt == "html":
        seen += (hub.counts_seen, repo.counts_written())
    return seen


def _from_memory(
    ctx: FeedsContext, key: tuple[str, str], seen: tuple[int, ...], media_type: str, request: HTTPConnection
) -> Response | None:
    """A 304, or a 200 from the cache of rendered feeds, when the feed's validators are in memory."""
    hit = ctx.validators.get(key, seen, ctx.hub.caught_up_at)
    if hit is None:
        return None
    etag, headers, last_modified = hit
    if is_fresh(request, etag, last_modified):
        return not_modified(headers)
    cached = ctx.bodies.get(etag)
    if cached is None:
        return None
    return Response(cached, media_type=media_type, headers=headers)


def remembered_response(
    ctx: FeedsContext, target: FeedTarget, fmt: str, request: HTTPConnection
) -> Response | None:
    """What `feed_response` answers without a query when the listener is caught up and the feed's
    validators (and, for a 200, its body) are in memory; None otherwise (then `feed_response` asks)."""
    seen = _seen(ctx, fmt)
    if seen is None:
        return None
    media_type = HTML if fmt == "html" else FORMATS[fmt][0]
    return _from_memory(ctx, (target.key, fmt), seen, media_type, request)


async def _look_up(
    ctx: FeedsContext,
    target: FeedTarget,
    fmt: str,
    key: tuple[str, str],
    seen: tuple[int, ...] | None,
    conditional: Request | None,
) -> _Found:
    """A feed's validators from the database, and its body unless `conditional`'s copy is current.

    A conditional request is validated first, by one small query (`repository.feed_state`): a client
    whose copy is current gets a 304 without a prompt being read. Otherwise one statement reads the
    state and the prompts together (`repository.feed_snapshot`), and the body comes from the cache of
    rendered feeds by the ETag that state gives, or is rendered from those prompts and cached.
    """
    settings = ctx.settings
    html = fmt == "html"

    def validators(state: repo.FeedState) -> _Found:
        etag = feed_etag(target, fmt, settings, state)
        headers = headers_for(
            etag,
            last_modified=state.last_modified,
            max_age=settings.feed_cache_max_age_s,
            private=target.private,
        )
        if seen is not None:  # `seen` was read before the query: a later change invalidates this
            ctx.validators.put(key, seen, (etag, headers, state.last_modified))
        return _Found(etag, headers, state.last_modified)

    async with ctx.pool.acquire() as conn:
        if conditional is not None:
            found = validators(await repo.feed_state(conn, target.selection, with_counts=html))
            if is_fresh(conditional, found.etag, found.last_modified):
                return found
            body = ctx.bodies.get(found.etag)
            if body is not None:
                return replace(found, body=body)
        state, events, counts = await repo.feed_snapshot(
            conn, target.selection, settings.feed_max_entries, with_counts=html
        )
    found = validators(state)
    # The state may have caught up with the client.
    if conditional is not None and is_fresh(conditional, found.etag, found.last_modified):
        return found
    body = ctx.bodies.get(found.etag)
    if body is None:
        prompts = [PromptPublished.model_validate_json(e) for e in events]
        body, _ = render_feed(settings, target, fmt, prompts, counts, state.last_modified)
        ctx.bodies.put(found.etag, body)
    return replace(found, body=body)


def _last_event_id(request: Request) -> int | None:
    raw = request.headers.get("last-event-id") or request.query_params.get("last_event_id")
    if raw is None or raw == "":
        return None
    if not raw.isdigit():
        raise Problem(
            400,
            "Last-Event-ID must be an event id this stream sent",
            errors=[{"field": "Last-Event-ID", "message": "not a number"}],
        )
    return int(raw)


async def events_response(request: Request, target: FeedTarget) -> EventSourceResponse:
    """Server-Sent Events: `prompt` and `retired` events with ids, heartbeat comments."""
    ctx = ready_context(request)
    settings = ctx.settings
    last = _last_event_id(request)
    hub = ctx.hub
    pool = ctx.pool

    async def backlog(after: int) -> list[repo.Change]:
        async with pool.acquire() as conn:
            return await repo.changes_after(conn, after)

    async def current() -> int:
        async with pool.acquire() as conn:
            return await repo.current_seq(conn)

    if last is None:
        # A new stream starts from the latest change as of now, before the headers go out: a change
        # committed after the client saw them is sent (from the backlog), never skipped.
        last = await current()
    release = hub.admit(client_key(request, settings))  # 503/429 beyond the connection caps

    # sse-starlette already sends Cache-Control: no-store and X-Accel-Buffering: no.
    headers = {"Referrer-Policy": "no-referrer"} if target.private else {}
    return EventSourceResponse(
        stream(
            hub,
            target.selection,
            last,
            backlog,
            current,
            release=release,
            replay_limit=settings.sse_replay_limit,
        ),
        headers=headers,
        ping=settings.sse_heartbeat_s,
        ping_message_factory=lambda: ServerSentEvent(comment="heartbeat"),
    )
