"""All the prompter's SQL (schema `prompter`): needs, prompts, opportunities, response counts."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Iterable, Sequence
from typing import Any, NamedTuple

import asyncpg

from shared.contracts import Category, ResidentResponded, StreetNeedChanged
from shared.db import text_array

from .matching import Area, Opportunity
from .org_repository import platform_of
from .platforms import Platform

__all__ = [
    "Catalogue",
    "PromptRow",
    "active_need_keys",
    "active_needs",
    "catalogue",
    "deactivate_need",
    "get_opportunity",
    "impact",
    "insert_opportunity",
    "list_opportunities",
    "lock_need",
    "organisation_opportunities",
    "prompt_state",
    "record_response",
    "retire_opportunity",
    "save_prompts",
    "set_status",
    "to_opportunity",
    "update_opportunity",
    "upsert_needs",
]

OPPORTUNITY_COLUMNS = _OPP_COLUMNS = (
    "title",
    "organisation",
    "description",
    "url",
    "contact",
    "categories",
    "ward_codes",
    "street_ids",
    "lat",
    "lon",
    "radius_m",
    "times",
    "starts_on",
    "ends_on",
    "what",
    "time_needed",
    "dbs_needed",
    "contact_email",
    "contact_phone",
)


async def upsert_needs(
    conn: asyncpg.Connection, needs: Sequence[StreetNeedChanged]
) -> list[asyncpg.Record | None]:
    """Store needs of distinct keys (row-locked until commit, in key order) and their history rows;
    per need, in order: None if a newer version is already stored, else the prompt's stored state
    (`revision`, `content_hash`, `status`; all None when no prompt is out yet) and the catalogue's
    version (`catalogue_version`, read with it).

    One statement stores a poll's needs (the consumer applies a poll at a time, and a round trip per
    need was most of its cost), a second reads their prompts' state. Not the same statement: its
    snapshot is taken before it waits for a need's lock, so a prompt that the lock's holder wrote
    meanwhile (a re-evaluation after an opportunity changed) read as it was before, and its new
    revision was published a second time. Read after the locks are held, the state stays current
    until the commit: only holders of the need's row lock write its prompt.
    """
    if not needs:
        return []
    rows = await conn.fetch(
        "WITH input AS ("
        " SELECT i, prompt_id, category, ward_code, street_ids::text[] AS street_ids, version, need,"
        "  sensitivity, count, band, trend, on_day"
        " FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::int[], $6::jsonb[], $7::text[],"
        "  $8::int[], $9::text[], $10::text[], $11::date[]) WITH ORDINALITY"
        "  AS x(prompt_id, category, ward_code, street_ids, version, need, sensitivity, count, band, trend,"
        "  on_day, i)),"
        " up AS ("
        " INSERT INTO prompter.needs AS n (prompt_id, category, ward_code, street_ids, version, need)"
        " SELECT prompt_id, category, ward_code, street_ids, version, need FROM input ORDER BY prompt_id"
        " ON CONFLICT (prompt_id) DO UPDATE SET category = EXCLUDED.category,"
        "  ward_code = EXCLUDED.ward_code, street_ids = EXCLUDED.street_ids, version = EXCLUDED.version,"
        "  need = EXCLUDED.need, active = true, updated_at = now()"
        "  WHERE n.version <= EXCLUDED.version"
        " RETURNING prompt_id),"
        " history AS ("
        " INSERT INTO prompter.needs_history (prompt_id, category, sensitivity, ward_code, active, count,"
        "  band, trend, on_day)"
        " SELECT prompt_id, category, sensitivity, ward_code, true, count, band, trend, on_day"
        " FROM input JOIN up USING (prompt_id))"
        " SELECT up.prompt_id IS NOT NULL AS applied FROM input LEFT JOIN up USING (prompt_id)"
        " ORDER BY input.i",
        [n.key for n in needs],
        [str(n.category) for n in needs],
        [n.ward_code for n in needs],
        [text_array(n.street_ids) for n in needs],
        [n.version for n in needs],
        [n.model_dump_json() for n in needs],
        [str(n.sensitivity) for n in needs],
        [n.count for n in needs],
        [n.band for n in needs],
        [n.trend for n in needs],
        [n.published_at.astimezone(dt.UTC).date() for n in needs],
    )
    applied = [n.key for n, row in zip(needs, rows, strict=True) if row["applied"]]
    states = {
        r["prompt_id"]: r
        for r in await conn.fetch(
            "SELECT k.prompt_id, p.revision, p.content_hash, p.status,"
            " (SELECT version FROM prompter.catalogue_version) AS catalogue_version"
            " FROM unnest($1::text[]) AS k(prompt_id) LEFT JOIN prompter.prompts p USING (prompt_id)",
            applied,
        )
    }
    return [states[n.key] if row["applied"] else None for n, row in zip(needs, rows, strict=True)]


async def deactivate_need(conn: asyncpg.Connection, prompt_id: str, on_day: dt.date) -> None:
    """Mark the need gone; the history records its end (once: a repeated tombstone changes nothing)."""
    row = await conn.fetchrow(
        "UPDATE prompter.needs SET active = false, updated_at = now() WHERE prompt_id = $1 AND active"
        " RETURNING category, ward_code, need->>'sensitivity' AS sensitivity",
        prompt_id,
    )
    if row is not None:
        await conn.execute(
            "INSERT INTO prompter.needs_history (prompt_id, category, sensitivity, ward_code, active, on_day)"
            " VALUES ($1, $2, $3, $4, false, $5)",
            prompt_id,
            row["category"],
            row["sensitivity"],
            row["ward_code"],
            on_day,
        )


async def lock_need(conn: asyncpg.Connection, prompt_id: str) -> StreetNeedChanged | None:
    """The active need under a row lock (serialises re-evaluation with the handler), or None."""
    raw = await conn.fetchval(
        "SELECT need FROM prompter.needs WHERE prompt_id = $1 AND active FOR UPDATE", prompt_id
    )
    return None if raw is None else StreetNeedChanged.model_validate_json(raw)


async def active_need_keys(conn: asyncpg.Connection, categories: Iterable[str] | None = None) -> list[str]:
    if categories is None:
        rows = await conn.fetch("SELECT prompt_id FROM prompter.needs WHERE active ORDER BY prompt_id")
    else:
        rows = await conn.fetch(
            "SELECT prompt_id FROM prompter.needs WHERE active AND category = ANY($1) ORDER BY prompt_id",
            sorted(set(categories)),
        )
    return [r["prompt_id"] for r in rows]


async def active_needs(conn: asyncpg.Connection, categories: Iterable[str]) -> list[StreetNeedChanged]:
    rows = await conn.fetch(
        "SELECT need FROM prompter.needs WHERE active AND category = ANY($1)", sorted(set(categories))
    )
    return [StreetNeedChanged.model_validate_json(r["need"]) for r in rows]


async def prompt_state(conn: asyncpg.Connection, prompt_id: str) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "SELECT revision, content_hash, status FROM prompter.prompts WHERE prompt_id = $1", prompt_id
    )


class PromptRow(NamedTuple):
    """A prompt's row as stored with the revision it publishes (or the retirement it publishes)."""

    prompt_id: str
    revision: int
    content_hash: str | None
    status: str
    area_id: str
    category: str
    ward_code: str | None
    prompt_json: str


async def save_prompts(conn: asyncpg.Connection, rows: Iterable[PromptRow]) -> None:
    """Store prompts' rows in order, as if one by one: a statement per run of distinct prompts (one
    statement can store a row only once; a prompt published and retired in one poll is two runs)."""
    run: list[PromptRow] = []
    ids: set[str] = set()
    for row in rows:
        if row.prompt_id in ids:
            await _save_run(conn, run)
            run, ids = [], set()
        run.append(row)
        ids.add(row.prompt_id)
    await _save_run(conn, run)


async def _save_run(conn: asyncpg.Connection, rows: Sequence[PromptRow]) -> None:
    if not rows:
        return
    await conn.execute(
        "INSERT INTO prompter.prompts AS p (prompt_id, revision, content_hash, status, area_id, category,"
        " ward_code, prompt, first_published_on)"
        " SELECT prompt_id, revision, content_hash, status, area_id, category, ward_code, prompt,"
        "  CASE WHEN status = 'published' THEN current_date END"
        " FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        "  $8::jsonb[]) AS t(prompt_id, revision, content_hash, status, area_id, category, ward_code, prompt)"
        " ORDER BY prompt_id"  # rows locked in key order, as upsert_needs does
        " ON CONFLICT (prompt_id) DO UPDATE SET revision = EXCLUDED.revision,"
        "  first_published_on = COALESCE(p.first_published_on, EXCLUDED.first_published_on),"
        "  content_hash = EXCLUDED.content_hash, status = EXCLUDED.status,"
        "  ward_code = COALESCE(EXCLUDED.ward_code, p.ward_code),"
        "  prompt = EXCLUDED.prompt, updated_at = now()",
        *(list(column) for column in zip(*rows, strict=True)),
    )


# --- opportunities ---------------------------------------------------------------------------


def to_opportunity(row: asyncpg.Record) -> Opportunity:
    return Opportunity(
        id=str(row["id"]),
        title=row["title"],
        organisation=row["organisation"],
        categories=frozenset(Category(c) for c in row["categories"]),
        area=Area(
            tuple(row["ward_codes"]), tuple(row["street_ids"]), row["lat"], row["lon"], row["radius_m"]
        ),
        url=row["url"],
        times=row["times"],
        starts_on=row["starts_on"],
        ends_on=row["ends_on"],
        retired=row["retired_at"] is not None,
        paused=row["status"] == "paused",
        what=row["what"],
        time_needed=row["time_needed"],
        dbs_needed=row["dbs_needed"],
        contact_email=row["contact_email"],
        contact_phone=row["contact_phone"],
        organisation_id=str(row["organisation_id"]) if row["organisation_id"] else None,
    )


Catalogue = tuple[list[Opportunity], list[Platform]]  # a category's ways to help


async def catalogue(conn: asyncpg.Connection, category: str) -> tuple[int, Catalogue]:
    """The catalogue's version and the category's active opportunities and enabled platforms, read
    in one round trip (one snapshot: the version names what was read).

    Composing a prompt needs both for every need applied, so the two reads share a statement
    (each table's rows come back as a composite array, decoded as records).
    """
    row = await conn.fetchrow(
        "SELECT (SELECT version FROM prompter.catalogue_version) AS version,"
        " (SELECT array_agg(o) FROM prompter.opportunities o WHERE o.retired_at IS NULL"
        "  AND o.status = 'active' AND o.categories @> ARRAY[$1]::text[]) AS opportunities,"
        " (SELECT array_agg(p) FROM prompter.platforms p"
        "  WHERE p.enabled AND p.categories @> ARRAY[$1]::text[]) AS platforms",
        category,
    )
    assert row is not None  # a SELECT without FROM always returns its one row
    return row["version"], (
        [to_opportunity(r) for r in row["opportunities"] or ()],
        [platform_of(r) for r in row["platforms"] or ()],
    )


async def insert_opportunity(
    conn: asyncpg.Connection, values: dict[str, Any], organisation_id: uuid.UUID | None = None
) -> asyncpg.Record:
    columns = ", ".join(_OPP_COLUMNS)
    params = ", ".join(f"${i}" for i in range(3, len(_OPP_COLUMNS) + 3))
    return await conn.fetchrow(
        f"INSERT INTO prompter.opportunities (id, organisation_id, {columns}) VALUES ($1, $2, {params})"
        " RETURNING *",
        uuid.uuid4(),
        organisation_id,
        *(values[c] for c in _OPP_COLUMNS),
    )


async def get_opportunity(
    conn: asyncpg.Connection, opp_id: uuid.UUID, *, for_update: bool = False
) -> asyncpg.Record | None:
    lock = " FOR UPDATE" if for_update else ""
    return await conn.fetchrow(f"SELECT * FROM prompter.opportunities WHERE id = $1{lock}", opp_id)


async def set_status(conn: asyncpg.Connection, opp_id: uuid.UUID, status: str) -> asyncpg.Record | None:
    """Pause or resume a live opportunity (not a retired one)."""
    return await conn.fetchrow(
        "UPDATE prompter.opportunities SET status = $2, updated_at = now()"
        " WHERE id = $1 AND retired_at IS NULL RETURNING *",
        opp_id,
        status,
    )


async def organisation_opportunities(
    conn: asyncpg.Connection, organisation_id: uuid.UUID
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM prompter.opportunities WHERE organisation_id = $1"
        " ORDER BY retired_at IS NOT NULL, title, id",
        organisation_id,
    )
    return rows


async def update_opportunity(
    conn: asyncpg.Connection, opp_id: uuid.UUID, values: dict[str, Any]
) -> asyncpg.Record | None:
    sets = ", ".join(f"{c} = ${i}" for i, c in enumerate(_OPP_COLUMNS, start=2))
    return await conn.fetchrow(
        f"UPDATE prompter.opportunities SET {sets}, updated_at = now()"
        " WHERE id = $1 AND retired_at IS NULL RETURNING *",
        opp_id,
        *(values[c] for c in _OPP_COLUMNS),
    )


async def retire_opportunity(conn: asyncpg.Connection, opp_id: uuid.UUID) -> asyncpg.Record | None:
    return await conn.fetchrow(
        "UPDATE prompter.opportunities SET retired_at = COALESCE(retired_at, now()), status = 'retired',"
        " updated_at = now()"
        " WHERE id = $1 RETURNING *",
        opp_id,
    )


async def list_opportunities(
    conn: asyncpg.Connection, category: str | None, today: dt.date
) -> list[asyncpg.Record]:
    rows: list[asyncpg.Record] = await conn.fetch(
        "SELECT * FROM prompter.opportunities WHERE retired_at IS NULL AND status = 'active'"
        " AND ($1::text IS NULL OR categories @> ARRAY[$1]::text[])"
        " AND (ends_on IS NULL OR ends_on >= $2) ORDER BY organisation, title, id",
        category,
        today,
    )
    return rows


# --- responses -------------------------------------------------------------------------------


async def record_response(conn: asyncpg.Connection, response: ResidentResponded) -> bool:
    """Count one response (in the caller's transaction); False if this response id was seen."""
    seen = await conn.fetchval(
        "INSERT INTO prompter.responses_seen (response_id, prompt_id, responded_on) VALUES ($1, $2, $3)"
        " ON CONFLICT (response_id) DO NOTHING RETURNING true",
        response.response_id,
        response.prompt_id,
        response.responded_on,
    )
    if not seen:
        return False
    await conn.execute(
        "INSERT INTO prompter.response_counts AS c (prompt_id, area_id, category, ward_code, responses,"
        "  since, last_on)"
        " VALUES ($1, $2, $3, (SELECT ward_code FROM prompter.prompts WHERE prompt_id = $1), 1, $4, $4)"
        " ON CONFLICT (prompt_id) DO UPDATE SET responses = c.responses + 1,"
        "  since = LEAST(c.since, EXCLUDED.since), last_on = GREATEST(c.last_on, EXCLUDED.last_on),"
        "  ward_code = COALESCE(c.ward_code, EXCLUDED.ward_code)",
        response.prompt_id,
        response.area_id,
        str(response.category),
        response.responded_on,
    )
    # Credit the organisations whose ways to help the prompt links now (each once per response).
    await conn.execute(
        "INSERT INTO prompter.organisation_responses AS r (organisation_id, month, responses)"
        " SELECT DISTINCT o.id, date_trunc('month', $2::date)::date, 1"
        " FROM prompter.prompts p"
        " CROSS JOIN LATERAL jsonb_array_elements(COALESCE(p.prompt->'opportunities', '[]'::jsonb)) l"
        " JOIN prompter.organisations o ON o.id::text = l->>'organisation_id'"
        " WHERE p.prompt_id = $1"
        " ON CONFLICT (organisation_id, month) DO UPDATE SET responses = r.responses + 1",
        response.prompt_id,
        response.responded_on,
    )
    return True


async def impact(
    conn: asyncpg.Connection, ward: str | None = None
) -> tuple[Sequence[asyncpg.Record], Sequence[asyncpg.Record]]:
    """(per-prompt counts, per-ward totals), optionally for one ward."""
    prompts = await conn.fetch(
        "SELECT c.prompt_id, c.area_id, c.category, c.ward_code, c.responses, c.since, c.last_on,"
        "  p.status, p.prompt->>'title' AS title"
        " FROM prompter.response_counts c LEFT JOIN prompter.prompts p USING (prompt_id)"
        " WHERE $1::text IS NULL OR c.ward_code = $1 ORDER BY c.responses DESC, c.prompt_id",
        ward,
    )
    wards = await conn.fetch(
        "SELECT ward_code, sum(responses)::int AS responses, count(*)::int AS prompts, min(since) AS since"
        " FROM prompter.response_counts WHERE $1::text IS NULL OR ward_code = $1"
        " GROUP BY ward_code ORDER BY ward_code NULLS LAST",
        ward,
    )
    return prompts, wards
