"""What residents do, shared by the HTML forms and the JSON API: subscribe, unsubscribe, "I can help"."""

from __future__ import annotations

import datetime as dt
import uuid
from dataclasses import dataclass

from shared.contracts import RESIDENT_RESPONSES, PromptPublished, ResidentResponded
from shared.gazetteer.selection import Areas, Selection, UnknownArea
from shared.ratelimit import TokenBucket
from shared.refusals import Invalid, NotFound

from . import help_repository as help_repo
from . import repository as repo
from .context import FeedsContext
from .refusals import SubscriptionEnded, TooManyResponses
from .settings import FeedsSettings
from .tokens import hash_token, new_token, valid_token

__all__ = ["Subscribed", "resolve", "respond", "subscribe", "subscription"]

# uuid5 namespace of "I can help" response ids (fixed: the same resident and prompt, the same id).
_RESPONSES = uuid.UUID("5b3f6f9e-2f4c-4a57-9d0e-7c1b8e2a4d61")


@dataclass(frozen=True)
class Subscribed:
    token: str
    selection: Selection


def _bad(field: str, message: str) -> Invalid:
    return Invalid("The subscription is not valid", message, errors=[{"field": field, "message": message}])


def _implied_kind(
    street_id: str | None,
    street_ids: list[str] | None,
    ward_code: str | None,
    lat: float | None,
    lon: float | None,
) -> str | None:
    """The kind a request without one means, by the first of its fields given."""
    if street_id:
        return "street"
    if street_ids:
        return "streets"
    if ward_code:
        return "ward"
    if lat is not None or lon is not None:
        return "area"
    return None


def _circle(
    areas: Areas, settings: FeedsSettings, lat: float | None, lon: float | None, radius_m: float | None
) -> Selection:
    """The streets within `radius_m` of a point; every part must be given and in range."""
    if lat is None or lon is None or radius_m is None:
        missing = next(n for n, v in (("lat", lat), ("lon", lon), ("radius_m", radius_m)) if v is None)
        raise _bad(missing, "lat, lon and radius_m are all needed")
    if not (-90 <= lat <= 90):
        raise _bad("lat", "latitude must be between -90 and 90")
    if not (-180 <= lon <= 180):
        raise _bad("lon", "longitude must be between -180 and 180")
    if not (0 < radius_m <= settings.max_radius_m):
        raise _bad("radius_m", f"radius_m must be more than 0 and at most {settings.max_radius_m}")
    return areas.for_circle(lat, lon, radius_m)


def resolve(
    areas: Areas,
    settings: FeedsSettings,
    *,
    kind: str | None,
    street_id: str | None = None,
    street_ids: list[str] | None = None,
    ward_code: str | None = None,
    lat: float | None = None,
    lon: float | None = None,
    radius_m: float | None = None,
) -> Selection:
    """The selection a request describes; `Invalid` (a 422) naming the field at fault."""
    kind = kind or _implied_kind(street_id, street_ids, ward_code, lat, lon)
    try:
        if kind == "street":
            if not street_id:
                raise _bad("street_id", "give the street's id (search with /v1/streets?q=)")
            return areas.for_streets([street_id])
        if kind == "streets":
            ids = [i for i in (street_ids or []) if i]
            if not ids:
                raise _bad("street_ids", "give at least one street id")
            if len(ids) > settings.max_streets:
                raise _bad("street_ids", f"at most {settings.max_streets} streets")
            return areas.for_streets(ids)
        if kind == "ward":
            if not ward_code:
                raise _bad("ward_code", "give the ward's code")
            return areas.for_ward(ward_code)
        if kind == "area":
            return _circle(areas, settings, lat, lon, radius_m)
    except UnknownArea as exc:
        raise _bad(exc.field, str(exc)) from None
    raise _bad("kind", "kind must be street, streets, ward or area")


async def subscribe(ctx: FeedsContext, selection: Selection) -> Subscribed:
    token = new_token()
    async with ctx.pool.acquire() as conn:
        await repo.create_subscription(conn, hash_token(token), selection)
    return Subscribed(token, selection)


async def subscription(ctx: FeedsContext, token: str) -> Selection:
    """The live subscription behind a token: `NotFound` if it never existed, `SubscriptionEnded` (a 410
    at the edge) if it was ended."""
    found = None
    if valid_token(token):
        async with ctx.pool.acquire() as conn:
            found = await repo.find_subscription(conn, hash_token(token))
    if found is None:
        raise NotFound("No such subscription")
    selection, active = found
    if not active:
        raise SubscriptionEnded("This subscription was ended", "Subscribe again to follow these streets.")
    return selection


async def respond(
    ctx: FeedsContext,
    prompt_id: str,
    client_key: str,
    helper: str,
) -> tuple[ResidentResponded, PromptPublished, int, bool]:
    """An anonymous "I can help", counted once per resident per prompt: (event, prompt, count, new).

    `helper` is the resident's random first-party cookie; the response id is uuid5(helper, prompt),
    so saying it again (any button, any page) changes nothing, here or in the prompter, which
    de-duplicates by response id. `NotFound` for an unknown or retired prompt; `TooManyResponses` (a
    429 at the edge) when this client (`client_key`, e.g. its IP) has said it too often.
    """
    limiter: TokenBucket = ctx.help_limiter
    async with ctx.pool.acquire() as conn:
        found = await repo.prompt(conn, prompt_id)
    if found is None or found[1]:
        raise NotFound("No such prompt", "It may have been retired: the need is no longer reported.")
    prompt = found[0]
    event = ResidentResponded(
        response_id=uuid.uuid5(_RESPONSES, f"{helper}\n{prompt.prompt_id}"),
        prompt_id=prompt.prompt_id,
        area_id=prompt.area_id,
        category=prompt.category,
        responded_on=dt.datetime.now(dt.UTC).date(),
    )
    async with ctx.pool.acquire() as conn:
        already = await help_repo.seen(conn, event.response_id)
    # Saying it again changes nothing, so it spends no token: only a new response is rate limited.
    if not already:
        allowed, retry_after = limiter.allow(client_key)
        if not allowed:
            raise TooManyResponses(retry_after)
        # Published before counting: the topic is the record, so nothing is counted that is not on it
        # (a crash in between leaves one uncounted; the retry publishes the same id again, which the
        # prompter counts once). No connection is held during the publish: a slow broker must not
        # starve the pool that serves pages.
        await ctx.broker.publish(
            event.model_dump_json().encode(), topic=RESIDENT_RESPONSES.name, key=prompt.prompt_id.encode()
        )
    try:
        async with ctx.pool.acquire() as conn, conn.transaction():  # the unit of work (ADR 0006)
            new, count = await help_repo.count_once(
                conn, event.response_id, prompt.prompt_id, event.responded_on
            )
    finally:
        # After the commit (or a failure that may have committed): pages' validators in this process
        # see its own count at once; a spare invalidation is harmless.
        repo.note_counts_written()
    return event, prompt, count, new
