"""SQL of the notifier: subscriptions, suppressed addresses, consumed changes and the mail outbox."""

from __future__ import annotations

import datetime as dt
import json
import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import asyncpg

from shared.contracts import PromptPublished
from shared.gazetteer.selection import Selection

__all__ = [
    "Claimed",
    "Subscription",
    "activate",
    "claim",
    "create_digests",
    "delete_subscription",
    "digest_events",
    "drop_expired_pending",
    "fan_out_instant",
    "insert_pending",
    "is_suppressed",
    "lock_address",
    "mark_sent",
    "purge_sent",
    "record_changes",
    "record_retired",
    "release",
    "renew",
    "signups_since",
    "stats",
    "subscription",
    "subscription_by_confirm",
    "suppress",
    "update_preferences",
]

_COLUMNS = (
    "subscription_id, email, kind, label, street_ids, unit_ids, ward_codes, categories, frequency, "
    "status, confirm_expires_at, confirmed_at"
)


@dataclass(frozen=True)
class Subscription:
    subscription_id: uuid.UUID
    email: str
    kind: str
    label: str
    street_ids: list[str]
    unit_ids: list[str]
    ward_codes: list[str]
    categories: list[str]
    frequency: str
    status: str
    confirm_expires_at: dt.datetime
    confirmed_at: dt.datetime | None


def _sub(row: asyncpg.Record | None) -> Subscription | None:
    return Subscription(**dict(row)) if row is not None else None


async def insert_pending(
    conn: asyncpg.Connection,
    email: str,
    selection: Selection,
    categories: list[str],
    frequency: str,
    confirm_sha256: bytes,
    expires_at: dt.datetime,
) -> uuid.UUID:
    sid = uuid.uuid4()
    await conn.execute(
        "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids, unit_ids,"
        " ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at)"
        " VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, 'pending', $10, $11)",
        sid,
        email,
        selection.kind,
        selection.label,
        list(selection.street_ids),
        list(selection.unit_ids),
        list(selection.ward_codes),
        categories,
        frequency,
        confirm_sha256,
        expires_at,
    )
    return sid


async def signups_since(conn: asyncpg.Connection, email: str, since: dt.datetime) -> int:
    signups: int = await conn.fetchval(
        "SELECT count(*) FROM notifier.subscriptions WHERE email = $1 AND created_at >= $2", email, since
    )
    return signups


async def subscription_by_confirm(conn: asyncpg.Connection, digest: bytes) -> Subscription | None:
    return _sub(
        await conn.fetchrow(
            f"SELECT {_COLUMNS} FROM notifier.subscriptions WHERE confirm_sha256 = $1 FOR UPDATE", digest
        )
    )


async def subscription(conn: asyncpg.Connection, sid: uuid.UUID) -> Subscription | None:
    return _sub(
        await conn.fetchrow(f"SELECT {_COLUMNS} FROM notifier.subscriptions WHERE subscription_id = $1", sid)
    )


async def activate(conn: asyncpg.Connection, sub: Subscription, now: dt.datetime) -> None:
    """Confirm `sub`; an earlier alert of the same address for the same place is replaced, not doubled."""
    await conn.execute(
        "DELETE FROM notifier.subscriptions WHERE email = $1 AND status = 'active' AND kind = $2"
        " AND street_ids = $3 AND ward_codes = $4 AND subscription_id <> $5",
        sub.email,
        sub.kind,
        sub.street_ids,
        sub.ward_codes,
        sub.subscription_id,
    )
    await conn.execute(
        "UPDATE notifier.subscriptions SET status = 'active', confirmed_at = $2 WHERE subscription_id = $1",
        sub.subscription_id,
        now,
    )


async def delete_subscription(conn: asyncpg.Connection, sid: uuid.UUID) -> bool:
    deleted: bool = await conn.fetchval(
        "WITH d AS (DELETE FROM notifier.subscriptions WHERE subscription_id = $1 RETURNING 1)"
        " SELECT count(*) > 0 FROM d",
        sid,
    )
    return deleted


async def update_preferences(
    conn: asyncpg.Connection, sid: uuid.UUID, categories: list[str], frequency: str
) -> bool:
    done: str = await conn.execute(
        "UPDATE notifier.subscriptions SET categories = $2, frequency = $3"
        " WHERE subscription_id = $1 AND status = 'active'",
        sid,
        categories,
        frequency,
    )
    return done.endswith(" 1")


async def drop_expired_pending(conn: asyncpg.Connection, now: dt.datetime) -> int:
    """Unconfirmed sign-ups are deleted once their link expires: nothing kept for an unconfirmed address."""
    done = await conn.execute(
        "DELETE FROM notifier.subscriptions WHERE status = 'pending' AND confirm_expires_at < $1", now
    )
    return int(done.split()[-1])


async def lock_address(conn: asyncpg.Connection, email_hmac: bytes) -> None:
    """Hold an address's transaction-scoped advisory lock (keyed by its keyed hash, never the address)."""
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", email_hmac.hex())


async def is_suppressed(conn: asyncpg.Connection, email_hmac: bytes) -> bool:
    suppressed: bool = await conn.fetchval(
        "SELECT EXISTS (SELECT 1 FROM notifier.suppressed WHERE email_hmac = $1)", email_hmac
    )
    return suppressed


async def suppress(conn: asyncpg.Connection, email: str, email_hmac: bytes, reason: str) -> int:
    """Stop mailing an address: its alerts are deleted and only a keyed hash of it is kept."""
    await conn.execute(
        "INSERT INTO notifier.suppressed (email_hmac, reason) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        email_hmac,
        reason,
    )
    done = await conn.execute("DELETE FROM notifier.subscriptions WHERE email = $1", email)
    return int(done.split()[-1])


def _columns(events: Sequence[PromptPublished]) -> list[list[Any]]:
    """$1-$7 of the statements below: the changes' prompt, revision, area, kind, streets (each a JSON
    array, as one text: a text[] cannot hold arrays of different lengths), category, sensitivity."""
    return [
        [e.prompt_id for e in events],
        [e.revision for e in events],
        [e.area_id for e in events],
        [str(e.area_kind) for e in events],
        [json.dumps(list(e.street_ids)) for e in events],
        [str(e.category) for e in events],
        [str(e.sensitivity) for e in events],
    ]


async def record_changes(
    conn: asyncpg.Connection, events: Sequence[PromptPublished], received_at: dt.datetime
) -> list[PromptPublished]:
    """Record consumed changes; those not consumed before, in order (the others' prompt revisions
    were consumed before: their mails were queued the first time).

    A published revision also takes its prompt off the retired list. Two statements for a poll (with
    the fan-out, three), not three per change: at 1,000 changes/s the round trips were most of the
    notifier's CPU."""
    if not events:
        return []
    inserted = await conn.fetch(
        "INSERT INTO notifier.changes (prompt_id, revision, area_id, area_kind, street_ids, category,"
        " sensitivity, event, received_at)"
        " SELECT u.prompt_id, u.revision, u.area_id, u.area_kind,"
        " ARRAY(SELECT jsonb_array_elements_text(u.streets::jsonb)), u.category, u.sensitivity,"
        " u.event::json, $9"
        " FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        " $8::text[]) AS u(prompt_id, revision, area_id, area_kind, streets, category, sensitivity, event)"
        " ON CONFLICT DO NOTHING RETURNING prompt_id, revision",
        *_columns(events),
        [e.model_dump_json() for e in events],
        received_at,
    )
    await conn.execute(
        "DELETE FROM notifier.retired WHERE prompt_id = ANY($1::text[])",
        sorted({e.prompt_id for e in events}),
    )
    new = {(r["prompt_id"], r["revision"]) for r in inserted}
    fresh = []
    for e in events:  # a revision met twice in one poll counts once, as the first
        if (e.prompt_id, e.revision) in new:
            new.discard((e.prompt_id, e.revision))
            fresh.append(e)
    return fresh


async def record_retired(conn: asyncpg.Connection, prompt_id: str, at: dt.datetime) -> None:
    await conn.execute(
        "INSERT INTO notifier.retired (prompt_id, retired_at) VALUES ($1, $2) ON CONFLICT DO NOTHING",
        prompt_id,
        at,
    )


# Who follows a change, mirroring shared.gazetteer.selection.Selection.matches: ward prompts by ward
# code, person prompts by whole publication unit (or street), place prompts by street. One join per
# kind, each on the condition its index answers (a CASE over the kinds would scan every subscription).
_FOLLOWS = (
    ("u.area_kind = 'ward'", "s.ward_codes @> ARRAY[u.area_id]"),
    (
        "u.area_kind <> 'ward' AND u.sensitivity = 'person'",
        "(s.unit_ids @> ARRAY[u.area_id] OR s.street_ids && u.street_ids)",
    ),
    ("u.area_kind <> 'ward' AND u.sensitivity <> 'person'", "s.street_ids && u.street_ids"),
)
_FAN_OUT = (
    "INSERT INTO notifier.outbox (subscription_id, kind, prompt_id, revision)"
    " SELECT f.subscription_id, 'instant', f.prompt_id, f.revision FROM ("
    + " UNION ALL ".join(
        "SELECT s.subscription_id, u.prompt_id, u.revision, u.i FROM news u"
        " JOIN notifier.subscriptions s ON s.status = 'active' AND s.frequency = 'instant'"
        " AND s.confirmed_at < u.published_at + interval '1 minute'"
        f" AND (cardinality(s.categories) = 0 OR u.category = ANY(s.categories)) AND {follows}"
        f" WHERE {which}"
        for which, follows in _FOLLOWS
    )
    + ") AS f ORDER BY f.i ON CONFLICT DO NOTHING"
)


async def fan_out_instant(conn: asyncpg.Connection, events: Sequence[PromptPublished]) -> int:
    """One outbox row per instant subscriber who follows each change (in the caller's transaction),
    queued in the changes' order; how many.

    Only revisions published since the alert was confirmed are news to its subscriber: what the
    notifier consumes late (it was behind, or a new consumer group read the topic from its start)
    may be older than the alert. `published_at` is coarsened down to the minute, so a revision of
    the confirmation's own minute still counts."""
    if not events:
        return 0
    done = await conn.execute(
        "WITH news AS (SELECT u.i, u.prompt_id, u.revision, u.area_id, u.area_kind, u.category,"
        " u.sensitivity, u.published_at,"
        " ARRAY(SELECT jsonb_array_elements_text(u.streets::jsonb)) AS street_ids"
        " FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[], $7::text[],"
        " $8::timestamptz[]) WITH ORDINALITY"
        " AS u(prompt_id, revision, area_id, area_kind, streets, category, sensitivity, published_at, i)) "
        + _FAN_OUT,
        *_columns(events),
        [e.published_at for e in events],
    )
    return int(done.split()[-1])


_CHANGE_MATCHES = (
    "(CASE WHEN c.area_kind = 'ward' THEN s.ward_codes @> ARRAY[c.area_id]"
    " WHEN c.sensitivity = 'person' AND s.unit_ids @> ARRAY[c.area_id] THEN true"
    " ELSE s.street_ids && c.street_ids END)"
    " AND (cardinality(s.categories) = 0 OR c.category = ANY(s.categories))"
    " AND NOT EXISTS (SELECT 1 FROM notifier.retired r WHERE r.prompt_id = c.prompt_id)"
)


async def create_digests(
    conn: asyncpg.Connection, frequency: str, key: str, start: dt.datetime, end: dt.datetime
) -> int:
    """One digest row per subscriber with something new in the period; a period is never built twice."""
    done = await conn.execute(
        "INSERT INTO notifier.outbox (subscription_id, kind, period, period_start, period_end)"
        " SELECT s.subscription_id, 'digest', $2, $3, $4 FROM notifier.subscriptions s"
        " WHERE s.status = 'active' AND s.frequency = $1 AND s.confirmed_at < $4"
        " AND EXISTS (SELECT 1 FROM notifier.changes c"
        f"  WHERE c.received_at >= $3 AND c.received_at < $4 AND {_CHANGE_MATCHES})"
        " ON CONFLICT DO NOTHING",
        frequency,
        key,
        start,
        end,
    )
    return int(done.split()[-1])


async def digest_events(
    conn: asyncpg.Connection, sid: uuid.UUID, start: dt.datetime, end: dt.datetime
) -> list[PromptPublished]:
    """The latest revision of each prompt a subscriber follows that changed in the period."""
    rows = await conn.fetch(
        "SELECT DISTINCT ON (c.prompt_id) c.event FROM notifier.changes c, notifier.subscriptions s"
        f" WHERE s.subscription_id = $1 AND c.received_at >= $2 AND c.received_at < $3 AND {_CHANGE_MATCHES}"
        " ORDER BY c.prompt_id, c.revision DESC",
        sid,
        start,
        end,
    )
    return [PromptPublished.model_validate_json(r["event"]) for r in rows]


@dataclass(frozen=True)
class Claimed:
    """An outbox row claimed for sending, with what the mail needs."""

    id: int
    kind: str
    prompt_id: str | None
    revision: int | None
    period: str | None
    period_start: dt.datetime | None
    period_end: dt.datetime | None
    attempts: int
    subscription: Subscription
    event: PromptPublished | None


async def claim(conn: asyncpg.Connection, limit: int, lease_s: float, owner: uuid.UUID) -> list[Claimed]:
    """Lease up to `limit` due rows to `owner`; other senders (any replica) skip them until the lease
    runs out."""
    rows = await conn.fetch(
        "WITH due AS (SELECT id FROM notifier.outbox"
        "  WHERE sent_at IS NULL AND failed_at IS NULL AND not_before <= now()"
        "  AND (lease_until IS NULL OR lease_until < now())"
        "  ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED)"
        " UPDATE notifier.outbox o SET lease_until = now() + make_interval(secs => $2), lease_owner = $3"
        " FROM due WHERE o.id = due.id"
        " RETURNING o.id, o.kind, o.prompt_id, o.revision, o.period, o.period_start, o.period_end,"
        " o.attempts, o.subscription_id",
        limit,
        lease_s,
        owner,
    )
    if not rows:
        return []
    subs = {
        r["subscription_id"]: Subscription(**dict(r))
        for r in await conn.fetch(
            f"SELECT {_COLUMNS} FROM notifier.subscriptions WHERE subscription_id = ANY($1::uuid[])",
            list({r["subscription_id"] for r in rows}),
        )
    }
    keys = [(r["prompt_id"], r["revision"]) for r in rows if r["kind"] == "instant"]
    events = {}
    if keys:
        for r in await conn.fetch(
            "SELECT c.prompt_id, c.revision, c.event FROM notifier.changes c"
            " JOIN unnest($1::text[], $2::int[]) AS k(p, v) ON c.prompt_id = k.p AND c.revision = k.v",
            [k[0] for k in keys],
            [k[1] for k in keys],
        ):
            events[(r["prompt_id"], r["revision"])] = PromptPublished.model_validate(json.loads(r["event"]))
    return sorted(
        (
            Claimed(
                r["id"],
                r["kind"],
                r["prompt_id"],
                r["revision"],
                r["period"],
                r["period_start"],
                r["period_end"],
                r["attempts"],
                subs[r["subscription_id"]],
                events.get((r["prompt_id"], r["revision"])),
            )
            for r in rows
            if r["subscription_id"] in subs
        ),
        key=lambda c: c.id,
    )


async def renew(conn: asyncpg.Connection, row_id: int, owner: uuid.UUID, lease_s: float) -> bool:
    """Extend `owner`'s lease just before sending; False when the row is no longer ours to send."""
    return bool(
        await conn.fetchval(
            "UPDATE notifier.outbox SET lease_until = now() + make_interval(secs => $3)"
            " WHERE id = $1 AND lease_owner = $2 AND sent_at IS NULL AND failed_at IS NULL RETURNING true",
            row_id,
            owner,
            lease_s,
        )
    )


async def mark_sent(conn: asyncpg.Connection, row_id: int) -> None:
    await conn.execute(
        "UPDATE notifier.outbox SET sent_at = now(), lease_until = NULL, attempts = attempts + 1"
        " WHERE id = $1",
        row_id,
    )


async def release(conn: asyncpg.Connection, row_id: int, error: str, *, retry_in_s: float | None) -> None:
    """A failed attempt: try again after `retry_in_s`, or give up (None)."""
    await conn.execute(
        "UPDATE notifier.outbox SET attempts = attempts + 1, lease_until = NULL, last_error = $2,"
        " not_before = now() + make_interval(secs => coalesce($3, 0)),"
        " failed_at = CASE WHEN $3::float8 IS NULL THEN now() END WHERE id = $1",
        row_id,
        error[:500],
        retry_in_s,
    )


async def purge_sent(conn: asyncpg.Connection, days: int) -> int:
    """Old sent instant rows go; the consumed change itself (changes) is what prevents a repeat."""
    done = await conn.execute(
        "DELETE FROM notifier.outbox WHERE kind = 'instant' AND (sent_at < now() - make_interval(days => $1)"
        " OR failed_at < now() - make_interval(days => $1))",
        days,
    )
    return int(done.split()[-1])


async def stats(conn: asyncpg.Connection) -> dict[str, int]:
    """Counts for operators (never an address): alerts by status and frequency, outbox by state."""
    counts: dict[str, int] = {}
    for r in await conn.fetch(
        "SELECT status || ' ' || frequency AS k, count(*) AS n FROM notifier.subscriptions GROUP BY 1"
    ):
        counts[f"alerts {r['k']}"] = r["n"]
    row = await conn.fetchrow(
        "SELECT count(*) FILTER (WHERE sent_at IS NULL AND failed_at IS NULL) AS waiting,"
        " count(*) FILTER (WHERE sent_at IS NOT NULL) AS sent, count(*) FILTER (WHERE failed_at IS NOT NULL)"
        " AS failed FROM notifier.outbox"
    )
    counts.update({f"mails {k}": v for k, v in row.items()})
    counts["suppressed addresses"] = await conn.fetchval("SELECT count(*) FROM notifier.suppressed")
    return counts
