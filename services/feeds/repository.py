"""All SQL of the feeds service (schema `feeds`)."""

from __future__ import annotations

import datetime as dt
import json
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from functools import cached_property
from typing import Any, cast

import asyncpg
import msgspec

from shared.contracts import PromptPublished, Sensitivity
from shared.db import text_array
from shared.gazetteer.selection import Selection

# PostgreSQL channel on which each committed change's seq is announced to every replica.
CHANNEL = "feeds_changes"
# ... and on which every committed change of an "I can help" count is (pages show the counts).
COUNTS_CHANNEL = "feeds_counts"
_CHANGES_LOCK = 0x6665_6564  # "feed": one advisory lock id for numbering changes
# An entry's JSON text, as stored and sent to live clients: msgspec's encoder, compact and UTF-8 as
# is, ~6x faster than json.dumps (5% of the service's CPU at 1,000 prompts/s); same values.
_encode = msgspec.json.Encoder()


def _json(entry: dict[str, Any]) -> str:
    return _encode.encode(entry).decode()


__all__ = [
    "BUMP_COUNT",
    "CHANNEL",
    "COUNTS_CHANNEL",
    "CapHead",
    "CapMessage",
    "Change",
    "FeedState",
    "add_response",
    "apply_published_all",
    "apply_retired",
    "cap_index",
    "cap_message",
    "changes_after",
    "counts_written",
    "create_subscription",
    "current_seq",
    "feed_snapshot",
    "feed_state",
    "find_subscription",
    "last_modified",
    "latest_caps",
    "note_counts_written",
    "prompt",
    "prompts_for",
    "purge_subscriptions",
    "response_counts",
    "unsubscribe",
]


@dataclass(frozen=True)
class Change:
    """A visible change of one prompt, numbered for SSE resumption."""

    seq: int
    prompt_id: str
    kind: str  # published | retired
    area_id: str
    area_kind: str
    street_ids: tuple[str, ...]
    sensitivity: str
    data: str  # the feed entry as JSON text, as stored: the SSE event's data, sent as it is

    @cached_property
    def entry(self) -> dict[str, Any]:
        # Parsed only when asked for: the listener reads every change, but few have a live client.
        return cast(dict[str, Any], json.loads(self.data))

    def visible_to(self, selection: Selection) -> bool:
        return selection.matches(
            area_id=self.area_id,
            area_kind=self.area_kind,
            street_ids=self.street_ids,
            sensitivity=self.sensitivity,
        )


@dataclass(frozen=True)
class CapHead:
    """A stored CAP message without its prompt: all a prompt's next message is decided from."""

    identifier: str
    prompt_id: str
    revision: int
    msg_type: str
    sent: dt.datetime
    refs: str | None


@dataclass(frozen=True)
class CapMessage(CapHead):
    """A stored CAP message, with the revision of the prompt it carries (what the document shows)."""

    event: PromptPublished


def _change(row: asyncpg.Record) -> Change:
    return Change(
        row["seq"],
        row["prompt_id"],
        row["kind"],
        row["area_id"],
        row["area_kind"],
        tuple(row["street_ids"]),
        row["sensitivity"],
        row["entry"],
    )


def _visible_at(prompt: PromptPublished, at: dt.datetime) -> dt.datetime:
    """Change time as stored: day precision for person categories (no hint of when a flag rose)."""
    at = at.astimezone(dt.UTC).replace(microsecond=0)
    if prompt.sensitivity is Sensitivity.PERSON:
        return dt.datetime.combine(at.date(), dt.time(), tzinfo=dt.UTC)
    return at


async def _record_change(
    conn: asyncpg.Connection,
    prompt_id: str,
    kind: str,
    area_id: str,
    area_kind: str,
    ward_code: str | None,
    street_ids: list[str],
    sensitivity: str,
    entry: dict[str, Any],
) -> Change:
    """Number the change, stamp the prompt with it (feeds' validators) and notify every replica's
    listener; call inside the effect's transaction.

    The lock, held to commit, makes sequence order the commit order: without it two writers (two
    partitions, two replicas) could commit seq 11 before seq 10, and a client resuming after 11
    would never see 10. NOTIFY is delivered only on commit, in commit order.
    """
    row = await conn.fetchrow(  # one round trip: the row is numbered only once the lock is held
        f"""WITH lock AS (SELECT pg_advisory_xact_lock($9)),
                c AS (INSERT INTO feeds.changes (prompt_id, kind, area_id, area_kind, ward_code, street_ids,
                          sensitivity, entry)
                      SELECT $1, $2, $3, $4, $5, $6, $7, $8 FROM lock RETURNING *),
                p AS (UPDATE feeds.prompts p SET seq = c.seq FROM c WHERE p.prompt_id = c.prompt_id)
           SELECT c.*, pg_notify('{CHANNEL}', c.seq::text) FROM c""",
        prompt_id,
        kind,
        area_id,
        area_kind,
        ward_code,
        street_ids,
        sensitivity,
        _json(entry),
        _CHANGES_LOCK,
    )
    return _change(row)


Cap = tuple[str, str, str | None]  # a place prompt's CAP message: (identifier, msg_type, refs)


async def apply_published_all(
    conn: asyncpg.Connection, items: Sequence[tuple[PromptPublished, dict[str, Any], Cap | None]]
) -> list[Change | None]:
    """Upsert prompts of distinct ids by prompt_id+revision, inside the caller's transaction; per
    item, in order, its change, or None when it changes nothing (a redelivery, or an older revision).
    Each item is (prompt, its feed entry, its CAP message or None for person categories).

    The upserts, their CAP messages and their numbered changes are one statement: a poll of
    prompts.v1 pays one round trip, not one per prompt (at 1,000 prompts/s the per-prompt statement
    was a third of the service's CPU and PostgreSQL planned it anew each time). A conflicting row is
    locked whether or not it is updated, as FOR UPDATE did. Changes are numbered under the same lock
    as `_record_change` (so sequence order is commit order), in the items' order whatever order
    PostgreSQL draws the numbers in; a skipped revision only leaves a gap in the numbers. One
    notification carries the batch's last number: listeners read every change after what they have.
    """
    if not items:
        return []
    if len({prompt.prompt_id for prompt, _, _ in items}) < len(items):
        raise ValueError("one statement can store a prompt only once: split the batch where an id repeats")
    now = dt.datetime.now(dt.UTC)
    caps = [cap if cap is not None else (None, None, None) for _, _, cap in items]
    entries = [_json(entry) for _, entry, _ in items]
    rows = await conn.fetch(
        f"""WITH lock AS (SELECT pg_advisory_xact_lock($17)),
               input AS (
                   SELECT i, prompt_id, revision, area_id, area_kind, ward_code,
                       street_ids::text[] AS street_ids, category, sensitivity, event, changed_at,
                       identifier, msg_type, sent, refs, entry
                   FROM unnest($1::text[], $2::int[], $3::text[], $4::text[], $5::text[], $6::text[],
                       $7::text[], $8::text[], $9::json[], $10::timestamptz[], $11::text[], $12::text[],
                       $13::timestamptz[], $14::text[], $15::json[]) WITH ORDINALITY
                   AS t(prompt_id, revision, area_id, area_kind, ward_code, street_ids, category,
                       sensitivity, event, changed_at, identifier, msg_type, sent, refs, entry, i)),
               num AS (
                   SELECT row_number() OVER (ORDER BY seq) AS i, seq FROM (
                       SELECT nextval(pg_get_serial_sequence('feeds.changes', 'seq')) AS seq
                       FROM lock, generate_series(1, $16::int)) AS drawn),
               up AS (
                   INSERT INTO feeds.prompts AS p (prompt_id, revision, area_id, area_kind, ward_code,
                       street_ids, category, sensitivity, event, retired, changed_at, seq)
                   SELECT prompt_id, revision, area_id, area_kind, ward_code, street_ids, category,
                       sensitivity, event, false, changed_at, num.seq
                   FROM input JOIN num USING (i) ORDER BY i
                   ON CONFLICT (prompt_id) DO UPDATE SET revision = EXCLUDED.revision,
                       area_id = EXCLUDED.area_id, area_kind = EXCLUDED.area_kind,
                       ward_code = EXCLUDED.ward_code, street_ids = EXCLUDED.street_ids,
                       category = EXCLUDED.category, sensitivity = EXCLUDED.sensitivity,
                       event = EXCLUDED.event, retired = false, changed_at = EXCLUDED.changed_at,
                       seq = EXCLUDED.seq
                   WHERE p.retired OR p.revision < EXCLUDED.revision
                   RETURNING prompt_id, revision, seq),
               cap AS (
                   INSERT INTO feeds.cap_messages
                       (identifier, prompt_id, revision, msg_type, sent, refs, event)
                   SELECT input.identifier, up.prompt_id, up.revision, input.msg_type, input.sent,
                       input.refs, input.event
                   FROM up JOIN input USING (prompt_id) WHERE input.identifier IS NOT NULL
                   ORDER BY up.seq
                   ON CONFLICT (identifier) DO NOTHING),
               c AS (
                   INSERT INTO feeds.changes (seq, prompt_id, kind, area_id, area_kind, ward_code,
                       street_ids, sensitivity, entry)
                   SELECT up.seq, up.prompt_id, 'published', input.area_id, input.area_kind,
                       input.ward_code, input.street_ids, input.sensitivity, input.entry
                   FROM up JOIN input USING (prompt_id) ORDER BY up.seq
                   RETURNING seq, prompt_id),
               told AS (SELECT pg_notify('{CHANNEL}', max(seq)::text) FROM c HAVING count(*) > 0)
           SELECT c.prompt_id, c.seq FROM c, told""",
        [prompt.prompt_id for prompt, _, _ in items],
        [prompt.revision for prompt, _, _ in items],
        [prompt.area_id for prompt, _, _ in items],
        [prompt.area_kind for prompt, _, _ in items],
        [prompt.ward_code for prompt, _, _ in items],
        [text_array(prompt.street_ids) for prompt, _, _ in items],
        [str(prompt.category) for prompt, _, _ in items],
        [str(prompt.sensitivity) for prompt, _, _ in items],
        [prompt.model_dump_json() for prompt, _, _ in items],
        [_visible_at(prompt, now) for prompt, _, _ in items],
        [identifier for identifier, _, _ in caps],
        [msg_type for _, msg_type, _ in caps],
        [prompt.published_at.replace(microsecond=0) for prompt, _, _ in items],
        [refs for _, _, refs in caps],
        entries,
        len(items),
        _CHANGES_LOCK,
    )
    seqs = {row["prompt_id"]: row["seq"] for row in rows}
    # Made from what was written (the entries are not read back and parsed again).
    return [
        None
        if (seq := seqs.get(prompt.prompt_id)) is None
        else Change(
            seq,
            prompt.prompt_id,
            "published",
            prompt.area_id,
            prompt.area_kind,
            tuple(prompt.street_ids),
            str(prompt.sensitivity),
            data,
        )
        for (prompt, _, _), data in zip(items, entries, strict=True)
    ]


async def apply_retired(
    conn: asyncpg.Connection,
    prompt_id: str,
    retired_at: dt.datetime,
    cap: tuple[str, str | None] | None = None,
) -> Change | None:
    """Mark retired (idempotent), inside the caller's transaction; `cap` is (identifier, refs) of the
    Cancel for place categories."""
    row = await conn.fetchrow("SELECT * FROM feeds.prompts WHERE prompt_id = $1 FOR UPDATE", prompt_id)
    if row is None or row["retired"]:
        return None
    prompt = PromptPublished.model_validate_json(row["event"])
    await conn.execute(
        "UPDATE feeds.prompts SET retired = true, changed_at = $2 WHERE prompt_id = $1",
        prompt_id,
        _visible_at(prompt, retired_at),
    )
    if cap is not None and prompt.sensitivity is Sensitivity.PLACE:
        identifier, refs = cap
        await conn.execute(
            """INSERT INTO feeds.cap_messages
                   (identifier, prompt_id, revision, msg_type, sent, refs, event)
               VALUES ($1, $2, $3, 'Cancel', $4, $5, $6) ON CONFLICT (identifier) DO NOTHING""",
            identifier,
            prompt.prompt_id,
            prompt.revision,
            retired_at.replace(microsecond=0),
            refs,
            row["event"],
        )
    return await _record_change(
        conn,
        prompt.prompt_id,
        "retired",
        row["area_id"],
        row["area_kind"],
        row["ward_code"],
        row["street_ids"],
        row["sensitivity"],
        {"prompt_id": prompt.prompt_id},
    )


async def latest_caps(conn: asyncpg.Connection, prompt_ids: Iterable[str]) -> dict[str, CapHead]:
    """Each prompt's latest CAP message (by sent, then revision), read once for a poll of prompts.v1.

    Without the prompt it carries: deciding the next message needs only the head, and reading and
    parsing each prompt's previous revision was a tenth of the consumer's CPU under load."""
    # One index probe per prompt (cap_messages_latest), however many revisions it has had.
    rows = await conn.fetch(
        """SELECT m.* FROM unnest($1::text[]) AS k(prompt_id)
           CROSS JOIN LATERAL (SELECT identifier, prompt_id, revision, msg_type, sent, refs
                               FROM feeds.cap_messages c WHERE c.prompt_id = k.prompt_id
                               ORDER BY c.sent DESC, c.revision DESC LIMIT 1) m""",
        sorted(set(prompt_ids)),
    )
    return {
        row["prompt_id"]: CapHead(
            row["identifier"], row["prompt_id"], row["revision"], row["msg_type"], row["sent"], row["refs"]
        )
        for row in rows
    }


def _cap(row: asyncpg.Record) -> CapMessage:
    return CapMessage(
        row["identifier"],
        row["prompt_id"],
        row["revision"],
        row["msg_type"],
        row["sent"],
        row["refs"],
        PromptPublished.model_validate_json(row["event"]),
    )


_MATCH = """(NOT p.retired OR $4) AND (
    (p.area_kind = 'ward' AND p.area_id = ANY($3::text[]))
 OR (p.area_kind <> 'ward' AND (p.street_ids && $1::text[]
     OR (p.sensitivity = 'person' AND p.area_id = ANY($2::text[])))))"""


def _args(sel: Selection, include_retired: bool) -> tuple[list[str], list[str], list[str], bool]:
    return list(sel.street_ids), list(sel.unit_ids), list(sel.ward_codes), include_retired


async def prompts_for(conn: asyncpg.Connection, sel: Selection, limit: int) -> list[PromptPublished]:
    rows = await conn.fetch(
        f"SELECT p.event FROM feeds.prompts p WHERE {_MATCH} "
        "ORDER BY (p.event->>'published_at')::timestamptz DESC, p.prompt_id LIMIT $5",
        *_args(sel, False),
        limit,
    )
    return [PromptPublished.model_validate_json(r["event"]) for r in rows]


async def last_modified(conn: asyncpg.Connection, sel: Selection) -> dt.datetime | None:
    """Latest change (publication or retirement) of any prompt the selection covers."""
    changed_at: dt.datetime | None = await conn.fetchval(
        f"SELECT max(p.changed_at) FROM feeds.prompts p WHERE {_MATCH}", *_args(sel, True)
    )
    return changed_at


@dataclass(frozen=True)
class FeedState:
    """What a feed's rendering depends on in the database, from one small query (no prompt bodies).

    `seq` and `count` are over every prompt the selection can see, retired ones included: any
    publication, revision, retirement or move out of the selection changes one of them. `counts` is a
    digest of the "I can help" counts of its live prompts (only read for pages that show them).
    """

    seq: int
    count: int
    last_modified: dt.datetime | None
    counts: str | None = None


# What a feed's ETag rests on, over `m` (the prompts the selection can see, retired ones included).
_STATE = "coalesce(max(m.seq), 0) AS seq, count(*) AS n, max(m.changed_at) AS last_modified"
_COUNTS = """(SELECT md5(coalesce(string_agg(r.prompt_id || '=' || r.responses, ',' ORDER BY r.prompt_id),
                                 ''))
              FROM feeds.response_counts r JOIN m USING (prompt_id) WHERE NOT m.retired)"""
_NEWEST = "(m.event->>'published_at')::timestamptz DESC, m.prompt_id"


def _state(row: asyncpg.Record, with_counts: bool) -> FeedState:
    return FeedState(row["seq"], row["n"], row["last_modified"], row["counts"] if with_counts else None)


async def feed_state(conn: asyncpg.Connection, sel: Selection, *, with_counts: bool) -> FeedState:
    """The feed's state without reading a prompt body (all a conditional GET needs)."""
    row = await conn.fetchrow(
        f"""WITH m AS (SELECT p.prompt_id, p.seq, p.changed_at, p.retired FROM feeds.prompts p WHERE {_MATCH})
            SELECT {_STATE}, {_COUNTS if with_counts else "NULL"} AS counts FROM m""",
        *_args(sel, True),
    )
    return _state(row, with_counts)


async def feed_snapshot(
    conn: asyncpg.Connection, sel: Selection, limit: int, *, with_counts: bool
) -> tuple[FeedState, list[str], dict[str, int]]:
    """The state, the newest `limit` live prompts (PromptPublished JSON, parsed only if rendered) and
    (with_counts) their "I can help" counts, from one statement, hence one snapshot: the body rendered
    from them is exactly what the state names."""
    counts = (
        """(SELECT coalesce(jsonb_object_agg(r.prompt_id, r.responses), '{}')
                  FROM feeds.response_counts r JOIN live USING (prompt_id))"""
        if with_counts
        else "NULL"
    )
    row = await conn.fetchrow(
        f"""WITH m AS (SELECT p.prompt_id, p.seq, p.changed_at, p.retired, p.event FROM feeds.prompts p
                       WHERE {_MATCH}),
                live AS (SELECT m.prompt_id, m.event FROM m WHERE NOT m.retired ORDER BY {_NEWEST} LIMIT $5)
            SELECT {_STATE}, {_COUNTS if with_counts else "NULL"} AS counts,
                   (SELECT array_agg(m.event::text ORDER BY {_NEWEST}) FROM live m) AS events,
                   {counts} AS responses
            FROM m""",
        *_args(sel, True),
        limit,
    )
    return _state(row, with_counts), row["events"] or [], json.loads(row["responses"]) if with_counts else {}


async def prompt(conn: asyncpg.Connection, prompt_id: str) -> tuple[PromptPublished, bool] | None:
    row = await conn.fetchrow("SELECT event, retired FROM feeds.prompts WHERE prompt_id = $1", prompt_id)
    return (PromptPublished.model_validate_json(row["event"]), row["retired"]) if row else None


async def changes_after(conn: asyncpg.Connection, seq: int, limit: int = 1000) -> list[Change]:
    rows = await conn.fetch("SELECT * FROM feeds.changes WHERE seq > $1 ORDER BY seq LIMIT $2", seq, limit)
    return [_change(r) for r in rows]


async def current_seq(conn: asyncpg.Connection) -> int:
    seq: int = await conn.fetchval("SELECT coalesce(max(seq), 0) FROM feeds.changes")
    return seq


async def cap_index(conn: asyncpg.Connection, cancel_visible_days: int) -> list[CapMessage]:
    """The latest CAP message of each place prompt: active ones, and recent Cancels."""
    rows = await conn.fetch(
        """SELECT DISTINCT ON (m.prompt_id) m.* FROM feeds.cap_messages m
           ORDER BY m.prompt_id, m.sent DESC, m.revision DESC, (m.msg_type = 'Cancel') DESC"""
    )
    cutoff = dt.datetime.now(dt.UTC) - dt.timedelta(days=cancel_visible_days)
    out = [_cap(r) for r in rows if r["msg_type"] != "Cancel" or r["sent"] >= cutoff]
    return sorted(out, key=lambda m: (m.sent, m.identifier), reverse=True)


async def cap_message(conn: asyncpg.Connection, identifier: str) -> CapMessage | None:
    row = await conn.fetchrow("SELECT * FROM feeds.cap_messages WHERE identifier = $1", identifier)
    return _cap(row) if row else None


async def create_subscription(conn: asyncpg.Connection, token_sha256: bytes, sel: Selection) -> None:
    await conn.execute(
        """INSERT INTO feeds.subscriptions (token_sha256, kind, label, street_ids, unit_ids, ward_codes)
           VALUES ($1, $2, $3, $4, $5, $6)""",
        token_sha256,
        sel.kind,
        sel.label,
        list(sel.street_ids),
        list(sel.unit_ids),
        list(sel.ward_codes),
    )


async def find_subscription(conn: asyncpg.Connection, token_sha256: bytes) -> tuple[Selection, bool] | None:
    """(selection, active) for a token hash, or None if it never existed; marks an active one read
    today (one write a day at most: feeds are polled often)."""
    row = await conn.fetchrow(
        "SELECT *, last_read_on < current_date AS unread_today "
        "FROM feeds.subscriptions WHERE token_sha256 = $1",
        token_sha256,
    )
    if row is None:
        return None
    if row["unread_today"] and row["unsubscribed_on"] is None:
        await conn.execute(
            "UPDATE feeds.subscriptions SET last_read_on = current_date "
            "WHERE token_sha256 = $1 AND last_read_on < current_date",
            token_sha256,
        )
    sel = Selection(
        row["kind"], row["label"], tuple(row["street_ids"]), tuple(row["unit_ids"]), tuple(row["ward_codes"])
    )
    return sel, row["unsubscribed_on"] is None


async def unsubscribe(conn: asyncpg.Connection, token_sha256: bytes) -> bool:
    """End a subscription; its definition is dropped (nothing kept about what was followed)."""
    status: str = await conn.execute(
        """UPDATE feeds.subscriptions SET unsubscribed_on = current_date, street_ids = '{}',
               unit_ids = '{}', ward_codes = '{}', label = ''
           WHERE token_sha256 = $1 AND unsubscribed_on IS NULL""",
        token_sha256,
    )
    return status.endswith(" 1")


async def purge_subscriptions(conn: asyncpg.Connection, older_than_days: int) -> int:
    """Delete subscriptions (active or ended) whose feed was not read in the last `older_than_days`."""
    status = await conn.execute(
        "DELETE FROM feeds.subscriptions WHERE last_read_on < current_date - $1::int", older_than_days
    )
    return int(status.split()[-1])


_counts_written = 0  # count changes committed by this process (read-your-writes before the NOTIFY)


def counts_written() -> int:
    return _counts_written


def note_counts_written() -> None:
    """Call once a count change has committed (or may have: a spare invalidation is harmless)."""
    global _counts_written
    _counts_written += 1


# Increments a prompt's "I can help" count and tells every replica's listener, on commit.
BUMP_COUNT = f"""WITH c AS (INSERT INTO feeds.response_counts (prompt_id, responses) VALUES ($1, 1)
                       ON CONFLICT (prompt_id) DO UPDATE SET responses = response_counts.responses + 1
                       RETURNING responses)
                SELECT c.responses, pg_notify('{COUNTS_CHANNEL}', '') FROM c"""


async def add_response(conn: asyncpg.Connection, prompt_id: str) -> int:
    try:
        count: int = (await conn.fetchrow(BUMP_COUNT, prompt_id))["responses"]
        return count
    finally:
        note_counts_written()


async def response_counts(conn: asyncpg.Connection, prompt_ids: list[str]) -> dict[str, int]:
    """ "I can help" counts of these prompts (those with none are left out)."""
    rows = await conn.fetch(
        "SELECT prompt_id, responses FROM feeds.response_counts WHERE prompt_id = ANY($1::text[])", prompt_ids
    )
    return {r["prompt_id"]: r["responses"] for r in rows}
