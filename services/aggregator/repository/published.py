"""Published needs (aggregator.published): the last state sent per area and category, and the live ones."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Sequence
from typing import Any

import asyncpg
from pydantic_core import from_json, to_json

from shared.contracts import info

from ..areas import Areas
from ..views import Change, NeedKey, Previous
from .outbox import NOTIFY_QUEUED, queued


async def load_previous(
    conn: asyncpg.Connection,
    *,
    sensitivity: str,
    keys: Iterable[NeedKey] | None = None,
    area_ids: Iterable[str] | None = None,
) -> dict[NeedKey, Previous]:
    """The last published state of `keys`, or of every key of `area_ids`' areas, or of every key
    of `sensitivity` when both are None."""
    args: list[Any] = [sensitivity]
    sql = (
        "SELECT area_id, category, content, version, since, live FROM aggregator.published p"
        " WHERE sensitivity = $1"
    )
    if area_ids is not None:
        args.append(sorted(set(area_ids)))
        sql += " AND area_id = ANY($2::text[])"
    elif keys is not None:
        wanted = sorted(set(keys))
        if not wanted:
            return {}
        args += [[k[0] for k in wanted], [k[1] for k in wanted]]
        sql = sql.replace(
            " p WHERE",
            " p JOIN unnest($2::text[], $3::text[]) AS k(area_id, category) USING (area_id, category) WHERE",
        )
    return {
        (r["area_id"], r["category"]): Previous(from_json(r["content"]), r["version"], r["since"], r["live"])
        for r in await conn.fetch(sql, *args)
    }


async def write_changes(
    conn: asyncpg.Connection, changes: Sequence[Change], areas: Areas, topic: str
) -> None:
    """Record each change as the last published value and queue it in the outbox, atomically."""
    if not changes:
        return
    cols: dict[str, list[Any]] = {
        k: []
        for k in (
            "area",
            "cat",
            "sens",
            "live",
            "content",
            "payload",
            "version",
            "since",
            "ward",
            "streets",
            "minlon",
            "minlat",
            "maxlon",
            "maxlat",
        )
    }
    outbox_keys, outbox_values = [], []
    for ch in changes:
        area_id, category = ch.key
        view, msg = ch.view, ch.message
        area = view.area if view else areas.area(area_id)
        bounds = areas.bounds(area) if area else (None,) * 4
        payload = msg.model_dump_json() if msg else None
        for name, value in zip(
            cols,
            (
                area_id,
                category,
                str(info(category).sensitivity),
                msg is not None,
                to_json(view.content() if view else {}).decode(),
                payload,
                ch.version,
                ch.since,
                area.ward_code if area else None,
                list(area.street_ids) if area else [],
                *bounds,
            ),
            strict=True,
        ):
            cols[name].append(value)
        outbox_keys.append(f"{area_id}:{category}".encode())
        outbox_values.append(payload.encode() if payload else None)
    # One statement (a round trip fewer per batch on the live path): record, then queue.
    await conn.execute(
        f"""WITH recorded AS (
           INSERT INTO aggregator.published (area_id, category, sensitivity, live, content, payload,
               version, since, ward_code, street_ids, min_lon, min_lat, max_lon, max_lat)
           SELECT a, c, s, l, ct::json, p::json, v, d, w, string_to_array(st, E'\\x1f'),
                  x0, y0, x1, y1
           FROM unnest($1::text[], $2::text[], $3::text[], $4::bool[], $5::text[], $6::text[],
                       $7::int[], $8::date[], $9::text[], $10::text[], $11::float8[], $12::float8[],
                       $13::float8[], $14::float8[])
                AS t(a, c, s, l, ct, p, v, d, w, st, x0, y0, x1, y1)
           ON CONFLICT (area_id, category) DO UPDATE SET
               live = EXCLUDED.live, content = EXCLUDED.content, payload = EXCLUDED.payload,
               version = EXCLUDED.version, since = EXCLUDED.since, ward_code = EXCLUDED.ward_code,
               street_ids = EXCLUDED.street_ids, min_lon = EXCLUDED.min_lon,
               min_lat = EXCLUDED.min_lat, max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat,
               updated_at = now()
           RETURNING 1), {queued("$15", "$16", "$17")}
           {NOTIFY_QUEUED}""",
        *[cols[k] if k != "streets" else ["\x1f".join(s) for s in cols[k]] for k in cols],
        topic,
        outbox_keys,
        outbox_values,
    )


async def needs(
    conn: asyncpg.Connection,
    *,
    street: str | None = None,
    ward: str | None = None,
    bbox: tuple[float, float, float, float] | None = None,
    category: str | None = None,
    area_ids: Collection[str] | None = None,
    limit: int = 1000,
) -> list[asyncpg.Record]:
    """Live published needs, filtered; each row's `payload` is the public StreetNeedChanged.

    A `street` filter comes with `area_ids`, the areas covering the street (`Areas.areas_of_street`):
    they are looked up by key, and the street's own filter keeps the answer exact. No index serves
    `street_ids` (migration 010), so a street alone reads every live row.
    """
    where, args = ["live"], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if street is not None:
        where.append(f"street_ids @> ARRAY[{arg(street)}::text]")
    if ward is not None:
        where.append(f"ward_code = {arg(ward)}")
    if area_ids is not None:
        where.append(f"area_id = ANY({arg(sorted(set(area_ids)))}::text[])")
    if category is not None:
        where.append(f"category = {arg(category)}")
    if bbox is not None:
        x0, y0, x1, y1 = (arg(v) for v in bbox)
        where.append(f"max_lon >= {x0} AND min_lon <= {x1} AND max_lat >= {y0} AND min_lat <= {y1}")
    sql = (
        f"SELECT area_id, category, payload FROM aggregator.published WHERE {' AND '.join(where)}"
        f" ORDER BY area_id, category LIMIT {arg(limit)}"
    )
    found: list[asyncpg.Record] = await conn.fetch(sql, *args)
    return found
