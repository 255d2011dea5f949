"""All SQL of the partner service (schema `partners`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Sequence
from typing import Any
from uuid import UUID

import asyncpg

__all__ = [
    "apply_change", "apply_removal", "claim_due_deliveries", "create_partner", "create_webhook",
    "delete_webhook", "get_webhook", "list_deliveries", "list_history", "list_needs", "list_partners",
    "list_webhooks", "partner_by_key_hash", "record_attempt", "replay_history", "revoke_partner",
]

Row = dict[str, Any]


def _need(row: asyncpg.Record) -> Row:
    out = dict(row)
    if isinstance(out.get("payload"), str):
        out["payload"] = json.loads(out["payload"])
    return out


# --- partners -------------------------------------------------------------------------------

async def create_partner(conn: asyncpg.Connection, name: str, key_hash: str) -> Row:
    return dict(await conn.fetchrow(
        "INSERT INTO partners.partners (name, key_hash) VALUES ($1, $2)"
        " RETURNING id, name, created_at, revoked_at", name, key_hash))


async def list_partners(conn: asyncpg.Connection) -> list[Row]:
    return [dict(r) for r in await conn.fetch(
        "SELECT id, name, created_at, revoked_at FROM partners.partners ORDER BY created_at, id")]


async def revoke_partner(conn: asyncpg.Connection, partner_id: UUID) -> bool:
    done = await conn.fetchval(
        "UPDATE partners.partners SET revoked_at = coalesce(revoked_at, now()) WHERE id = $1"
        " RETURNING id", partner_id)
    return done is not None


async def partner_by_key_hash(conn: asyncpg.Connection, key_hash: str) -> Row | None:
    row = await conn.fetchrow(
        "SELECT id, name, revoked_at FROM partners.partners WHERE key_hash = $1", key_hash)
    return dict(row) if row else None


# --- needs and history (written by the street-needs.v1 handler) ------------------------------

_ENQUEUE = """
INSERT INTO partners.deliveries (webhook_id, history_id, message_id, body)
SELECT w.id, $1::bigint, 'msg_' || $1::bigint::text, $2
FROM partners.webhooks w JOIN partners.partners p ON p.id = w.partner_id
WHERE w.deleted_at IS NULL AND p.revoked_at IS NULL
  AND (cardinality(w.categories) = 0 OR $3 = ANY (w.categories))
  AND (cardinality(w.wards) = 0 OR $4 = ANY (w.wards))
"""  # webhook-id: one per change, the same on every retry and replay


async def apply_change(conn: asyncpg.Connection, need: Row, bbox: Sequence[float] | None,
                       body: str) -> bool:
    """Upsert the current state, record the change once, queue its webhooks; False if seen before.

    Run inside a transaction: the change and its deliveries are stored together or not at all.
    """
    key = f"{need['area_id']}:{need['category']}"
    box = tuple(bbox) if bbox else (None, None, None, None)
    payload = json.dumps(need)
    await conn.execute(
        """INSERT INTO partners.needs (key, area_id, area_kind, category, ward_code, version, payload,
                                       min_lon, min_lat, max_lon, max_lat)
           VALUES ($1, $2, $3, $4, $5, $6, $7::jsonb, $8, $9, $10, $11)
           ON CONFLICT (key) DO UPDATE SET
             area_kind = EXCLUDED.area_kind, ward_code = EXCLUDED.ward_code, version = EXCLUDED.version,
             payload = EXCLUDED.payload, min_lon = EXCLUDED.min_lon, min_lat = EXCLUDED.min_lat,
             max_lon = EXCLUDED.max_lon, max_lat = EXCLUDED.max_lat, updated_at = now()
           WHERE partners.needs.version <= EXCLUDED.version""",
        key, need["area_id"], need["area_kind"], need["category"], need.get("ward_code"),
        need["version"], payload, *box)
    history_id = await conn.fetchval(
        """INSERT INTO partners.needs_history
             (key, area_id, category, area_kind, ward_code, version, change, payload, changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'changed', $7::jsonb, $8)
           ON CONFLICT (key, version, change) DO NOTHING RETURNING id""",
        key, need["area_id"], need["category"], need["area_kind"], need.get("ward_code"),
        need["version"], payload, dt.datetime.fromisoformat(need["published_at"]))
    if history_id is None:
        return False
    await conn.execute(_ENQUEUE, history_id, body, need["category"], need.get("ward_code"))
    return True


async def apply_removal(conn: asyncpg.Connection, key: str, removed_at: dt.datetime,
                        body_for: Any) -> bool:
    """A tombstone: drop the current state, keep history (a `removed` row); False if nothing to do.

    `body_for(removed_row)` builds the webhook body once the removed version is known.
    """
    row = await conn.fetchrow(
        "DELETE FROM partners.needs WHERE key = $1"
        " RETURNING area_id, category, area_kind, ward_code, version", key)
    if row is None:  # already removed (a redelivered tombstone) or never published
        return False
    history = await conn.fetchrow(
        """INSERT INTO partners.needs_history
             (key, area_id, category, area_kind, ward_code, version, change, payload, changed_at)
           VALUES ($1, $2, $3, $4, $5, $6, 'removed', NULL, $7)
           ON CONFLICT (key, version, change) DO NOTHING
           RETURNING id, key, area_id, category, version, change, changed_at, payload""",
        key, row["area_id"], row["category"], row["area_kind"], row["ward_code"], row["version"],
        removed_at)
    if history is None:
        return False
    await conn.execute(_ENQUEUE, history["id"], body_for(_need(history)), row["category"],
                       row["ward_code"])
    return True


def _needs_filter(ward: str | None, category: str | None, area_kind: str | None,
                  bbox: Sequence[float] | None, after_key: str | None) -> tuple[str, list[Any]]:
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
        clauses.append(f"max_lon >= {arg(min_lon)} AND min_lon <= {arg(max_lon)}"
                       f" AND max_lat >= {arg(min_lat)} AND min_lat <= {arg(max_lat)}")
    if after_key is not None:
        clauses.append(f"key > {arg(after_key)}")
    return (" WHERE " + " AND ".join(clauses)) if clauses else "", args


async def list_needs(conn: asyncpg.Connection, *, ward: str | None = None, category: str | None = None,
                     area_kind: str | None = None, bbox: Sequence[float] | None = None,
                     after_key: str | None = None, limit: int = 100) -> list[Row]:
    where, args = _needs_filter(ward, category, area_kind, bbox, after_key)
    rows = await conn.fetch(
        f"SELECT key, payload FROM partners.needs{where} ORDER BY key LIMIT {int(limit)}", *args)
    return [_need(r) for r in rows]


async def list_history(conn: asyncpg.Connection, *, since: dt.datetime | None = None,
                       until: dt.datetime | None = None, area_id: str | None = None,
                       category: str | None = None, after_id: int | None = None,
                       limit: int = 100) -> list[Row]:
    rows = await conn.fetch(
        """SELECT id, key, area_id, category, version, change, changed_at, payload
           FROM partners.needs_history
           WHERE ($1::timestamptz IS NULL OR changed_at >= $1)
             AND ($2::timestamptz IS NULL OR changed_at < $2)
             AND ($3::text IS NULL OR area_id = $3)
             AND ($4::text IS NULL OR category = $4)
             AND id > coalesce($5::bigint, 0)
           ORDER BY id LIMIT $6""",
        since, until, area_id, category, after_id, limit)
    return [_need(r) for r in rows]


# --- webhooks -------------------------------------------------------------------------------

_WEBHOOK_COLUMNS = "id, partner_id, url, categories, wards, created_at"


async def create_webhook(conn: asyncpg.Connection, partner_id: UUID, url: str, categories: list[str],
                         wards: list[str], secret: str) -> Row:
    return dict(await conn.fetchrow(
        "INSERT INTO partners.webhooks (partner_id, url, categories, wards, secret)"
        f" VALUES ($1, $2, $3, $4, $5) RETURNING {_WEBHOOK_COLUMNS}",
        partner_id, url, categories, wards, secret))


async def list_webhooks(conn: asyncpg.Connection, partner_id: UUID) -> list[Row]:
    return [dict(r) for r in await conn.fetch(
        f"SELECT {_WEBHOOK_COLUMNS} FROM partners.webhooks"
        " WHERE partner_id = $1 AND deleted_at IS NULL ORDER BY created_at, id", partner_id)]


async def get_webhook(conn: asyncpg.Connection, partner_id: UUID, webhook_id: UUID) -> Row | None:
    row = await conn.fetchrow(
        f"SELECT {_WEBHOOK_COLUMNS} FROM partners.webhooks"
        " WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL", webhook_id, partner_id)
    return dict(row) if row else None


async def delete_webhook(conn: asyncpg.Connection, partner_id: UUID, webhook_id: UUID) -> bool:
    async with conn.transaction():
        done = await conn.fetchval(
            "UPDATE partners.webhooks SET deleted_at = now()"
            " WHERE id = $1 AND partner_id = $2 AND deleted_at IS NULL RETURNING id",
            webhook_id, partner_id)
        if done is None:
            return False
        await conn.execute(
            "UPDATE partners.deliveries SET status = 'dead', last_error = 'webhook deleted',"
            " finished_at = now() WHERE webhook_id = $1 AND status = 'pending'", webhook_id)
        return True


async def list_deliveries(conn: asyncpg.Connection, webhook_id: UUID, *, status: str | None = None,
                          after_id: int | None = None, limit: int = 100) -> list[Row]:
    return [dict(r) for r in await conn.fetch(
        """SELECT id, history_id, message_id, status, attempts, next_attempt_at, last_status,
                  last_error, replay, created_at, finished_at
           FROM partners.deliveries
           WHERE webhook_id = $1 AND ($2::text IS NULL OR status = $2) AND id > coalesce($3::bigint, 0)
           ORDER BY id LIMIT $4""",
        webhook_id, status, after_id, limit)]


async def replay_history(conn: asyncpg.Connection, webhook: Row, since: dt.datetime,
                         until: dt.datetime | None, body_for: Any) -> int:
    """Queue the history since `since` (matching the webhook's filters) again; returns how many."""
    rows = await conn.fetch(
        """SELECT id, key, area_id, category, version, change, changed_at, payload
           FROM partners.needs_history
           WHERE changed_at >= $1 AND ($2::timestamptz IS NULL OR changed_at < $2)
             AND (cardinality($3::text[]) = 0 OR category = ANY ($3))
             AND (cardinality($4::text[]) = 0 OR ward_code = ANY ($4))
           ORDER BY id""",
        since, until, webhook["categories"], webhook["wards"])
    items = [_need(r) for r in rows]
    await conn.execute(
        """INSERT INTO partners.deliveries (webhook_id, history_id, message_id, body, replay)
           SELECT $1, h, 'msg_' || h::text, b, true FROM unnest($2::bigint[], $3::text[]) AS t (h, b)""",
        webhook["id"], [r["id"] for r in items], [body_for(r) for r in items])
    return len(items)


# --- the delivery queue ---------------------------------------------------------------------

async def claim_due_deliveries(conn: asyncpg.Connection, limit: int, lease_s: float) -> list[Row]:
    """Take up to `limit` due deliveries; other replicas skip them, and they come due again after
    `lease_s` if this worker dies before recording the attempt."""
    return [dict(r) for r in await conn.fetch(
        """WITH due AS (
             SELECT id FROM partners.deliveries
             WHERE status = 'pending' AND next_attempt_at <= now()
             ORDER BY next_attempt_at, id LIMIT $1
             FOR UPDATE SKIP LOCKED)
           UPDATE partners.deliveries d SET next_attempt_at = now() + make_interval(secs => $2)
           FROM due, partners.webhooks w
           WHERE d.id = due.id AND w.id = d.webhook_id
           RETURNING d.id, d.webhook_id, d.message_id, d.body, d.attempts, w.url, w.secret""",
        limit, lease_s)]


async def record_attempt(conn: asyncpg.Connection, delivery_id: int, *, delivered: bool,
                         http_status: int | None, error: str | None,
                         retry_in_s: float | None) -> None:
    """Record one attempt: delivered, retried after `retry_in_s`, or dead when that is None."""
    status = "delivered" if delivered else ("pending" if retry_in_s is not None else "dead")
    await conn.execute(
        """UPDATE partners.deliveries SET
             attempts = attempts + 1, status = $2, last_status = $3, last_error = $4,
             next_attempt_at = CASE WHEN $2 = 'pending'
                                    THEN now() + make_interval(secs => $5) ELSE next_attempt_at END,
             finished_at = CASE WHEN $2 = 'pending' THEN NULL ELSE now() END
           WHERE id = $1""",
        delivery_id, status, http_status, error, retry_in_s or 0.0)
