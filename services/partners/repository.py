"""All SQL of the partner service (schema `partners`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass
from typing import Any
from uuid import UUID

import asyncpg
import msgspec

from .changes import Current, HistoryRow, Plan

__all__ = [
    "DELIVERIES_QUEUED",
    "apply_plan",
    "claim_due_deliveries",
    "create_partner",
    "create_webhook",
    "delete_webhook",
    "end_pending_deliveries",
    "get_webhook",
    "list_deliveries",
    "list_history",
    "list_needs",
    "list_partners",
    "list_webhooks",
    "notify_queued",
    "partner",
    "partner_by_key_hash",
    "record_attempt",
    "replay_history",
    "revoke_partner",
    "set_partner_key",
    "stored_states",
]

Row = dict[str, Any]

# NOTIFY channel: a transaction that queued deliveries wakes every replica's worker when it commits.
DELIVERIES_QUEUED = "partners_deliveries_queued"


def _json(value: dict[str, Any]) -> str:
    """JSON text for a json column: msgspec encodes a batch's payloads at a fraction of json.dumps's cost."""
    return msgspec.json.encode(value).decode()


def _need(row: asyncpg.Record) -> Row:
    out = dict(row)
    if isinstance(out.get("payload"), str):
        out["payload"] = json.loads(out["payload"])
    return out


# --- partners -------------------------------------------------------------------------------


_PARTNER = "id, name, created_at, revoked_at"  # the columns every answer about a partner carries


async def _one(conn: asyncpg.Connection, sql: str, *args: Any) -> Row:
    return dict(await conn.fetchrow(sql, *args))


async def create_partner(conn: asyncpg.Connection, name: str, key_hash: str) -> Row:
    sql = f"INSERT INTO partners.partners (name, key_hash) VALUES ($1, $2) RETURNING {_PARTNER}"
    return await _one(conn, sql, name, key_hash)


async def list_partners(conn: asyncpg.Connection) -> list[Row]:
    rows = await conn.fetch(f"SELECT {_PARTNER} FROM partners.partners ORDER BY created_at, id")
    return [dict(r) for r in rows]


async def partner(conn: asyncpg.Connection, partner_id: UUID) -> Row:
    return await _one(conn, f"SELECT {_PARTNER} FROM partners.partners WHERE id = $1", partner_id)


async def set_partner_key(conn: asyncpg.Connection, partner_id: UUID, key_hash: str) -> Row:
    sql = f"UPDATE partners.partners SET key_hash = $2 WHERE id = $1 RETURNING {_PARTNER}"
    return await _one(conn, sql, partner_id, key_hash)


async def revoke_partner(conn: asyncpg.Connection, partner_id: UUID) -> bool:
    done = await conn.fetchval(
        "UPDATE partners.partners SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1 RETURNING id",
        partner_id,
    )
    return done is not None


async def partner_by_key_hash(conn: asyncpg.Connection, key_hash: str) -> Row | None:
    row = await conn.fetchrow(
        "SELECT id, name, revoked_at FROM partners.partners WHERE key_hash = $1", key_hash
    )
    return dict(row) if row else None


# --- needs and history (written by the street-needs.v1 handler) ------------------------------


async def stored_states(conn: asyncpg.Connection, keys: Collection[str]) -> dict[str, Current]:
    """The current state of `keys` (those that have one), locked until the transaction ends."""
    if not keys:
        return {}
    rows = await conn.fetch(
        "SELECT key, area_id, category, area_kind, ward_code, version FROM partners.needs"
        " WHERE key = ANY ($1::text[]) ORDER BY key FOR UPDATE",
        sorted(keys),
    )
    return {
        r["key"]: Current(r["area_id"], r["category"], r["area_kind"], r["ward_code"], r["version"])
        for r in rows
    }


_UPSERT_NEEDS = """
INSERT INTO partners.needs (key, area_id, area_kind, category, ward_code, version, payload,
                            min_lon, min_lat, max_lon, max_lat)
SELECT k, a, ak, c, w, v, p::json, x0, y0, x1, y1
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[],
            $8::float8[], $9::float8[], $10::float8[], $11::float8[])
     AS u (k, a, ak, c, w, v, p, x0, y0, x1, y1)
ORDER BY k
ON CONFLICT (key) DO UPDATE SET
  area_kind = EXCLUDED.area_kind, ward_code = EXCLUDED.ward_code, version = EXCLUDED.version,
  payload = EXCLUDED.payload, min_lon = EXCLUDED.min_lon, min_lat = EXCLUDED.min_lat,
  max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat, updated_at = now()
WHERE partners.needs.version <= EXCLUDED.version
"""  # one row per key (the batch's last state), so no row is updated twice

_INSERT_HISTORY = """
INSERT INTO partners.needs_history
  (key, area_id, category, area_kind, ward_code, version, change, payload, changed_at)
SELECT k, a, c, ak, w, v, ch, p::json, t
FROM unnest($1::text[], $2::text[], $3::text[], $4::text[], $5::text[], $6::int[], $7::text[], $8::text[],
            $9::timestamptz[]) WITH ORDINALITY AS u (k, a, c, ak, w, v, ch, p, t, n)
ORDER BY n
ON CONFLICT (key, version, change) DO NOTHING
RETURNING id, key, version, change
"""  # ids in Kafka order; a change seen before (a redelivered batch) returns nothing

_ENQUEUE = """
INSERT INTO partners.deliveries (webhook_id, history_id, message_id, body)
SELECT w.id, h.id, 'msg_' || h.id::text, h.body
FROM unnest($1::bigint[], $2::text[], $3::text[], $4::text[]) AS h (id, body, category, ward)
JOIN partners.webhooks w ON w.deleted_at IS NULL
JOIN partners.partners p ON p.id = w.partner_id AND p.revoked_at IS NULL
WHERE (cardinality(w.categories) = 0 OR h.category = ANY (w.categories))
  AND (cardinality(w.wards) = 0 OR h.ward = ANY (w.wards))
ORDER BY h.id, w.id
"""  # webhook-id: one per change, the same on every retry and replay


async def apply_plan(
    conn: asyncpg.Connection,
    plan: Plan,
    boxes: Sequence[Sequence[float] | None],
    body_for: Callable[[HistoryRow], str],
) -> int:
    """Store one batch: current state, history rows new to the database, and their webhook deliveries.

    Run inside a transaction (after `stored_states` for the removed keys): the changes and their
    deliveries are stored together or not at all. `boxes` go with `plan.upserts`. Returns how many
    history rows were new.
    """
    if plan.deletes:
        await conn.execute("DELETE FROM partners.needs WHERE key = ANY ($1::text[])", plan.deletes)
    if plan.upserts:
        ups = plan.upserts
        box = [tuple(b) if b else (None, None, None, None) for b in boxes]
        corners = [list(c) for c in zip(*box, strict=True)]  # min_lon, min_lat, max_lon, max_lat
        await conn.execute(
            _UPSERT_NEEDS,
            [f"{n['area_id']}:{n['category']}" for n in ups],
            [n["area_id"] for n in ups],
            [n["area_kind"] for n in ups],
            [n["category"] for n in ups],
            [n.get("ward_code") for n in ups],
            [n["version"] for n in ups],
            [_json(n) for n in ups],
            *corners,
        )
    if not plan.history:
        return 0
    hist = plan.history
    inserted = await conn.fetch(
        _INSERT_HISTORY,
        [h.key for h in hist],
        [h.area_id for h in hist],
        [h.category for h in hist],
        [h.area_kind for h in hist],
        [h.ward_code for h in hist],
        [h.version for h in hist],
        [h.change for h in hist],
        [_json(h.payload) if h.payload is not None else None for h in hist],
        [h.changed_at for h in hist],
    )
    if not inserted:
        return 0
    by_marker = {(h.key, h.version, h.change): h for h in hist}
    new = [(r["id"], by_marker[(r["key"], r["version"], r["change"])]) for r in inserted]
    queued = await conn.execute(
        _ENQUEUE,
        [i for i, _ in new],
        [body_for(h) for _, h in new],
        [h.category for _, h in new],
        [h.ward_code for _, h in new],
    )
    if _inserted(queued):
        await notify_queued(conn)
    return len(new)


def _inserted(status: str) -> int:
    """The row count of an `INSERT 0 n` command status."""
    return int(status.rsplit(" ", 1)[-1])


async def notify_queued(conn: asyncpg.Connection) -> None:
    """Wake the delivery workers once this transaction commits (NOTIFY is sent at commit, or never)."""
    await conn.execute("SELECT pg_notify($1, '')", DELIVERIES_QUEUED)


def _needs_filter(
    ward: str | None,
    category: str | None,
    area_kind: str | None,
    bbox: Sequence[float] | None,
    after_key: str | None,
) -> tuple[str, list[Any]]:
    clauses, args = [], []

    def arg(value: Any) -> str:
        args.append(value)
        return f"${len(args)}"

    if ward is not None:
        clauses.append(f"ward_code = {arg(ward)}")
    if category is not None:
        clauses.append(f"category = {arg(category)}")
    if area_kind is not None:
        clauses.append(f"area_kind = {arg(area_kind)}")
    if bbox is not None:
        min_lon, min_lat, max_lon, max_lat = bbox
        clauses.append(
            f"max_lon >= {arg(min_lon)} AND min_lon <= {arg(max_lon)}"
            f" AND max_lat >= {arg(min_lat)} AND min_lat <= {arg(max_lat)}"
        )
    if after_key is not None:
        clauses.append(f"key > {arg(after_key)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def list_needs(
    conn: asyncpg.Connection,
    *,
    ward: str | None = None,
    category: str | None = None,
    area_kind: str | None = None,
    bbox: Sequence[float] | None = None,
    after_key: str | None = None,
    limit: int = 100,
) -> list[Row]:
    where, args = _needs_filter(ward, category, area_kind, bbox, after_key)
    rows = await conn.fetch(
        f"SELECT key, payload FROM partners.needs{where} ORDER BY key LIMIT {int(limit)}", *args
    )
    return [_need(r) for r in rows]


async def list_history(
    conn: asyncpg.Connection,
    *,
    since: dt.datetime | None = None,
    until: dt.datetime | None = None,
    area_id: str | None = None,
    category: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Row]:
    rows = await conn.fetch(
        """SELECT id, key, area_id, category, version, change, changed_at, payload
           FROM partners.needs_history
           WHERE ($1::timestamptz IS NULL OR changed_at >= $1)
             AND ($2::timestamptz IS NULL OR changed_at < $2)
             AND ($3::text IS NULL OR area_id = $3)
             AND ($4::text IS NULL OR category = $4)
             AND id > coalesce($5::bigint, 0)
           ORDER BY id LIMIT $6""",
        since,
        until,
        area_id,
        category,
        after_id,
        limit,
    )
    return [_need(r) for r in rows]


# --- webhooks -------------------------------------------------------------------------------

_WEBHOOK_COLUMNS = "id, partner_id, url, categories, wards, created_at"


async def create_webhook(
    conn: asyncpg.Connection, partner_id: UUID, url: str, categories: list[str], wards: list[str], secret: str
) -> Row:
    return dict(
        await conn.fetchrow(
            "INSERT INTO partners.webhooks (partner_id, url, categories, wards, secret)"
            f" VALUES ($1, $2, $3, $4, $5) RETURNING {_WEBHOOK_COLUMNS}",
            partner_id,
            url,
            categories,
            wards,
            secret,
        )
    )


async def list_webhooks(conn: asyncpg.Connection, partner_id: UUID) -> list[Row]:
    return [
        dict(r)
        for r in await conn.fetch(
            f"SELECT {_WEBHOOK_COLUMNS} FROM partners.webhooks"
            " WHERE partner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id",
            partner_id,
        )
    ]


async def get_webhook(conn: asyncpg.Connection, partner_id: UUID, webhook_id: UUID) -> Row | None:
    row = await conn.fetchrow(
        f"SELECT {_WEBHOOK_COLUMNS} FROM partners.webhooks"
        " WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL",
        webhook_id,
        partner_id,
    )
    return dict(row) if row else None


async def delete_webhook(conn: asyncpg.Connection, partner_id: UUID, webhook_id: UUID) -> bool:
    done = await conn.fetchval(
        "UPDATE partners.webhooks SET deleted_at = now()"
        " WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL RETURNING id",
        webhook_id,
        partner_id,
    )
    return done is not None


async def end_pending_deliveries(conn: asyncpg.Connection, webhook_id: UUID, reason: str) -> None:
    await conn.execute(
        "UPDATE partners.deliveries SET status = 'dead', last_error = $2,"
        " finished_at = now() WHERE webhook_id = $1 AND status = 'pending'",
        webhook_id,
        reason,
    )


async def list_deliveries(
    conn: asyncpg.Connection,
    webhook_id: UUID,
    *,
    status: str | None = None,
    after_id: int | None = None,
    limit: int = 100,
) -> list[Row]:
    return [
        dict(r)
        for r in await conn.fetch(
            """SELECT id, history_id, message_id, status, attempts, next_attempt_at, last_status,
                  last_error, replay, created_at, finished_at
           FROM partners.deliveries
           WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2) AND id > coalesce($3::bigint, 0)
           ORDER BY id LIMIT $4""",
            webhook_id,
            status,
            after_id,
            limit,
        )
    ]


async def replay_history(
    conn: asyncpg.Connection,
    webhook: Row,
    since: dt.datetime,
    until: dt.datetime | None,
    body_for: Any,
    max_rows: int | None = None,
) -> int:
    """Queue the history since `since` (matching the webhook's filters) again; returns how many,
    or -1 (queueing nothing) when there are more than `max_rows`."""
    rows = await conn.fetch(
        """SELECT id, key, area_id, category, version, change, changed_at, payload
           FROM partners.needs_history
           WHERE changed_at >= $1 AND ($2::timestamptz IS NULL OR changed_at < $2)
             AND (cardinality($3::text[]) = 0 OR category = ANY ($3))
             AND (cardinality($4::text[]) = 0 OR ward_code = ANY ($4))
           ORDER BY id LIMIT $5""",
        since,
        until,
        webhook["categories"],
        webhook["wards"],
        None if max_rows is None else max_rows + 1,
    )
    if max_rows is not None and len(rows) > max_rows:
        return -1
    items = [_need(r) for r in rows]
    await conn.execute(
        """INSERT INTO partners.deliveries (webhook_id, history_id, message_id, body, replay)
           SELECT $1, h, 'msg_' || h::text, b, true FROM unnest($2::bigint[], $3::text[]) AS t (h, b)""",
        webhook["id"],
        [r["id"] for r in items],
        [body_for(r) for r in items],
    )
    if items:
        await notify_queued(conn)
    return len(items)


# --- the delivery queue ---------------------------------------------------------------------


async def claim_due_deliveries(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Row]:
    """Take up to `limit` due deliveries; other replicas skip them, and they come due again after
    `lease_s` if this worker dies before recording the attempt."""
    return [
        dict(r)
        for r in await conn.fetch(
            """WITH due AS (
             SELECT id FROM partners.deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT $1
             FOR UPDATE SKIP LOCKED)
           UPDATE partners.deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
           FROM due, partners.webhooks w
           WHERE d.id = due.id AND w.id = d.webhook_id
           RETURNING d.id, d.webhook_id, d.message_id, d.body, d.attempts, w.url, w.secret, w.partner_id""",
            limit,
            lease_s,
        )
    ]


@dataclass(frozen=True, slots=True)
class Attempt:
    delivery_id: int
    delivered: bool
    http_status: int | None
    error: str | None
    retry_in_s: float | None  # None and not delivered: dead


async def record_attempts(conn: asyncpg.Connection, attempts: list[Attempt]) -> None:
    """Record a batch's attempts in one statement (see `record_attempt`)."""
    if not attempts:
        return
    await conn.execute(
        """UPDATE partners.deliveries d SET
             attempts = d.attempts + 1, status = a.status, last_status = a.http_status,
             last_error = a.error,
             next_attempt_at = CASE WHEN a.status = 'pending'
                                    THEN now() + make_interval(secs => a.retry_in_s)
                                    ELSE d.next_attempt_at END,
             finished_at = CASE WHEN a.status = 'pending' THEN NULL ELSE now() END
           FROM unnest($1::bigint[], $2::text[], $3::int[], $4::text[], $5::float8[])
                AS a(id, status, http_status, error, retry_in_s)
           WHERE d.id = a.id""",
        [a.delivery_id for a in attempts],
        [
            "delivered" if a.delivered else ("pending" if a.retry_in_s is not None else "dead")
            for a in attempts
        ],
        [a.http_status for a in attempts],
        [a.error for a in attempts],
        [a.retry_in_s or 0.0 for a in attempts],
    )


async def record_attempt(
    conn: asyncpg.Connection,
    delivery_id: int,
    *,
    delivered: bool,
    http_status: int | None,
    error: str | None,
    retry_in_s: float | None,
) -> None:
    """Record one attempt: delivered, retried after `retry_in_s`, or dead when that is None."""
    status = "delivered" if delivered else ("pending" if retry_in_s is not None else "dead")
    await conn.execute(
        """UPDATE partners.deliveries SET
             attempts = attempts + 1, status = $2, last_status = $3, last_error = $4,
             next_attempt_at = CASE WHEN $2 = 'pending'
                                    THEN now() + make_interval(secs => $5) ELSE next_attempt_at END,
             finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
           WHERE id = $1""",
        delivery_id,
        status,
        http_status,
        error,
        retry_in_s or 0.0,
    )
