"""What organisations and residents do, shared by the JSON API and the HTML forms.

Each change to an opportunity is stored with its audit row in one transaction (nothing half-written),
then the prompts it touches are re-evaluated (after commit: a failed re-evaluation is caught up by the
reconcile loop, and failing the request would invite a duplicate registration).
"""

from __future__ import annotations

import datetime as dt
import logging
import uuid
from typing import Any

import asyncpg

from shared.contracts import PromptPublished
from shared.keys import lock_active
from shared.refusals import Conflict, Invalid, NotFound

from . import org_repository as org_repo
from . import repository as repo
from .context import PrompterContext
from .matching import Opportunity, Places
from .places import GazetteerPlaces
from .platforms import uncovered
from .publisher import PromptPublisher
from .schemas import CONSENT_TEXT, OfferIn, OpportunityIn, PlatformIn

__all__ = [
    "add_platform",
    "change_status",
    "create_opportunity",
    "edit_platform",
    "make_offer",
    "owned",
    "retire_opportunity",
    "switch_platform",
    "update_opportunity",
]

log = logging.getLogger(__name__)
_AUDITED = (*repo.OPPORTUNITY_COLUMNS, "status")


def not_found(opp_id: uuid.UUID | str) -> NotFound:
    return NotFound(
        "No such opportunity",
        f"No opportunity of yours has id {opp_id}.",
        errors=[{"field": "opportunity_id", "message": "not found", "type": "not_found"}],
    )


def _places(ctx: PrompterContext) -> Places:
    return ctx.places


def check_area(body: OpportunityIn, places: Places) -> None:
    """Unknown wards and street ids are a 422 naming each one (checkable once a gazetteer is loaded)."""
    if not isinstance(places, GazetteerPlaces):
        return
    wards = places.ward_names()
    errors = [
        {"field": f"area.ward_codes.{i}", "message": "not a ward of this council", "type": "value_error"}
        for i, code in enumerate(body.area.ward_codes)
        if code not in wards
    ] + [
        {"field": f"area.street_ids.{i}", "message": "unknown street id", "type": "value_error"}
        for i, sid in enumerate(body.area.street_ids)
        if not places.has_street(sid)
    ]
    if errors:
        raise Invalid(
            "Request body or parameters are invalid",
            "; ".join(f"{e['field']}: {e['message']}" for e in errors),
            errors=errors,
        )


def _diff(before: Any | None, after: Any) -> dict[str, dict[str, Any]]:
    out = {}
    for column in _AUDITED:
        old = before[column] if before is not None else None
        new = after[column]
        if isinstance(old, list | tuple) or isinstance(new, list | tuple):
            old, new = list(old or []), list(new or [])
        if old != new:
            out[column] = {"from": old, "to": new}
    return out


async def _reevaluate(ctx: PrompterContext, before: Opportunity | None, after: Opportunity | None) -> None:
    publisher: PromptPublisher = ctx.publisher
    try:
        await publisher.opportunity_changed(before, after)
    except Exception:
        log.exception("re-evaluating prompts failed; the reconcile loop will catch up")


async def owned(
    conn: asyncpg.Connection, opp_id: uuid.UUID, org: Any, *, for_update: bool = False
) -> asyncpg.Record:
    """The organisation's own opportunity, or 404 (another's answers exactly like a missing one)."""
    row = await repo.get_opportunity(conn, opp_id, for_update=for_update)
    if row is None or row["organisation_id"] != org["id"]:
        raise not_found(opp_id)
    return row


async def create_opportunity(ctx: PrompterContext, org: Any, body: OpportunityIn) -> asyncpg.Record:
    check_area(body, _places(ctx))
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await repo.insert_opportunity(conn, body.columns(org["name"]), org["id"])
        await org_repo.record_change(conn, row["id"], org, "created", _diff(None, row))
    await _reevaluate(ctx, None, repo.to_opportunity(row))
    return row


async def update_opportunity(
    ctx: PrompterContext, org: Any, opp_id: uuid.UUID, body: OpportunityIn
) -> asyncpg.Record:
    check_area(body, _places(ctx))
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await owned(conn, opp_id, org, for_update=True)
        if before["retired_at"] is not None:
            raise Conflict("This opportunity is retired", "Register a new one instead.")
        row = await repo.update_opportunity(conn, opp_id, body.columns(org["name"]))
        diff = _diff(before, row)
        if diff:
            await org_repo.record_change(conn, opp_id, org, "updated", diff)
    await _reevaluate(ctx, repo.to_opportunity(before), repo.to_opportunity(row))
    return row


async def change_status(
    ctx: PrompterContext, org: Any | None, opp_id: uuid.UUID, pause: bool
) -> asyncpg.Record:
    """Pause (prompts drop the link) or resume; repeating either is harmless. `org` None is the
    operator, who may switch any organisation's opportunity (the history then names no organisation)."""
    status, action = ("paused", "paused") if pause else ("active", "resumed")
    async with ctx.pool.acquire() as conn, conn.transaction():
        if org is None:
            found = await repo.get_opportunity(conn, opp_id, for_update=True)
            if found is None:
                raise not_found(opp_id)
            before = found
        else:
            before = await owned(conn, opp_id, org, for_update=True)
        if before["retired_at"] is not None:
            raise Conflict("This opportunity is retired", "A retired opportunity cannot be changed.")
        row = await repo.set_status(conn, opp_id, status)
        if before["status"] != status:
            await org_repo.record_change(conn, opp_id, org, action, _diff(before, row))
    await _reevaluate(ctx, repo.to_opportunity(before), repo.to_opportunity(row))
    return row


async def retire_opportunity(ctx: PrompterContext, org: Any, opp_id: uuid.UUID) -> asyncpg.Record:
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await owned(conn, opp_id, org, for_update=True)
        row = await repo.retire_opportunity(conn, opp_id)
        if before["retired_at"] is None:
            await org_repo.record_change(conn, opp_id, org, "retired", _diff(before, row))
    await _reevaluate(ctx, repo.to_opportunity(before), None)
    return row


# --- organisations' keys ----------------------------------------------------------------------


async def rotate_organisation(
    ctx: PrompterContext, organisation_id: uuid.UUID, key_hash: str
) -> asyncpg.Record:
    """A new key for an active organisation; its web sessions, opened with the old key, end with it."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lock_active(conn, "prompter.organisations", organisation_id)
        row = await org_repo.set_organisation_key(conn, organisation_id, key_hash)
        await org_repo.end_sessions(conn, organisation_id)
    return row


async def revoke_organisation(ctx: PrompterContext, organisation_id: uuid.UUID) -> asyncpg.Record:
    async with ctx.pool.acquire() as conn, conn.transaction():
        await lock_active(conn, "prompter.organisations", organisation_id)
        await org_repo.revoke_organisation(conn, organisation_id)
        row = await org_repo.organisation(conn, organisation_id)
    return row


# --- platforms --------------------------------------------------------------------------------


async def switch_platform(ctx: PrompterContext, platform_id: str, enabled: bool) -> asyncpg.Record:
    """Switch a platform on or off; 409 if that would leave a category with no way to help."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        await conn.execute("LOCK TABLE prompter.platforms IN SHARE ROW EXCLUSIVE MODE")
        row = await org_repo.switch_platform(conn, platform_id, enabled)
        if row is None:
            raise NotFound(
                "No such platform",
                f"No platform has id {platform_id!r}.",
                errors=[{"field": "platform_id", "message": "not found", "type": "not_found"}],
            )
        if missing := await _uncovered(conn):
            raise Conflict(
                "A category would have no way to help",
                "Switch on another platform for " + ", ".join(missing) + " first.",
                errors=[{"field": "enabled", "message": f"last platform for {c}"} for c in missing],
            )
    await ctx.publisher.platforms_changed(row["categories"])
    return row


async def _uncovered(conn: asyncpg.Connection) -> list[str]:
    """The categories the directory would leave with no enabled platform, sorted."""
    return sorted(uncovered(org_repo.to_platforms(await org_repo.all_platforms(conn))))


async def edit_platform(ctx: PrompterContext, platform_id: str, values: dict[str, Any]) -> asyncpg.Record:
    """The operator edits a platform's entry; 409 if a category it covered would be left with none."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        before = await org_repo.platform_for_update(conn, platform_id)
        if before is None:
            raise NotFound("No such platform", f"No platform has id {platform_id!r}.")
        row = await org_repo.edit_platform(conn, platform_id, values)
        if missing := await _uncovered(conn):
            raise Conflict(
                "A category would have no way to help",
                "Keep " + ", ".join(missing) + " or switch on another platform for it first.",
            )
    await ctx.publisher.platforms_changed(sorted(set(before["categories"]) | set(row["categories"])))
    return row


async def add_platform(ctx: PrompterContext, body: PlatformIn) -> asyncpg.Record:
    values = body.model_dump(mode="json")
    values["categories"] = sorted(values["categories"])
    async with ctx.pool.acquire() as conn:
        row = await org_repo.add_platform(conn, values)
    if row is None:
        raise Conflict(
            "That platform id is taken",
            f"A platform with id {body.id!r} exists.",
            errors=[{"field": "id", "message": "already exists", "type": "conflict"}],
        )
    await ctx.publisher.platforms_changed(row["categories"])
    return row


async def hand_over(ctx: PrompterContext, org: Any, offer_id: uuid.UUID) -> bool:
    """The organisation has the resident's details: they are deleted now and the offer counted for
    today (docs/privacy.md). False if the organisation has no such offer."""
    async with ctx.pool.acquire() as conn, conn.transaction():
        return await org_repo.hand_over(conn, org["id"], offer_id, dt.datetime.now(dt.UTC).date())


# --- a resident's offer with contact details --------------------------------------------------


async def make_offer(ctx: PrompterContext, offer: OfferIn, now: dt.datetime) -> tuple[str, PromptPublished]:
    """Store a consented offer for ONE organisation linked from the prompt; (its name, the prompt).

    404 when the prompt is not live; 422 when the organisation is not one the prompt links.
    """
    async with ctx.pool.acquire() as conn, conn.transaction():
        row = await conn.fetchrow(
            "SELECT status, prompt FROM prompter.prompts WHERE prompt_id = $1", offer.prompt_id
        )
        if row is None or row["status"] != "published":
            raise NotFound(
                "No such prompt",
                "It may have been retired: the need is no longer reported.",
                errors=[{"field": "prompt_id", "message": "not found", "type": "not_found"}],
            )
        prompt = PromptPublished.model_validate_json(row["prompt"])
        links = [o for o in prompt.opportunities if o.kind == "local" and o.organisation_id]
        if offer.organisation_id is not None:
            links = [o for o in links if o.organisation_id == str(offer.organisation_id)]
        if offer.opportunity_id is not None:
            links = [o for o in links if o.opportunity_id == str(offer.opportunity_id)]
        if not links:
            raise Invalid(
                "That organisation is not offered here",
                "Choose one of the organisations listed with this prompt.",
                errors=[{"field": "organisation_id", "message": "not linked from this prompt"}],
            )
        organisation = links[0].organisation
        await org_repo.save_offer(
            conn,
            organisation_id=uuid.UUID(links[0].organisation_id),
            opportunity_id=uuid.UUID(links[0].opportunity_id),
            prompt_id=offer.prompt_id,
            first_name=offer.first_name,
            email=str(offer.email),
            consent_text=CONSENT_TEXT.format(organisation=organisation),
            now=now,
        )
    return organisation, prompt
