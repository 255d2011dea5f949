"""Subjects across key rotation, and purging their pseudonyms (docs/privacy.md rules 1 and 9): the SQL.

Ingest sends each event's pseudonym under the current secret (`subject_key`, version `key_version`) and
under every older listed secret (`previous_keys`). Here an older pseudonym becomes an alias of the
newest one seen for the subject, and every stored row under an alias is re-keyed to it — signals,
withdrawals, ledger — so that one person is one subject: a withdrawal under the new key ends a raise
made under the old one, a re-raise is counted once, and there is one epsilon budget. An event that
still carries only an old pseudonym (a replica not yet rotated, a replay) is mapped through the aliases.
Keeping every alias pointing straight at the newest key (never at another alias) makes the mapping
one lookup, and the result the same in whatever order replicas or replays link the generations.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

import asyncpg

from shared.contracts import CATALOGUE, SignalAnonymised

if TYPE_CHECKING:
    from .decoding import FastSignal  # the hot path's SignalAnonymised (same fields)

__all__ = ["PurgeCounts", "canonical_events", "purge", "without_pseudonyms"]

_HEX64 = re.compile(rb"[0-9a-fA-F]{64}")


def without_pseudonyms(value: bytes | None) -> bytes | None:
    """A record's bytes with anything shaped like a pseudonym removed (for dead letters)."""
    return None if value is None else _HEX64.sub(b"(pseudonym removed)", value)


async def _link(conn: asyncpg.Connection, events: Sequence[SignalAnonymised | FastSignal]) -> list[str]:
    """Record the aliases the events carry and re-key stored rows; returns the alias keys touched."""
    best: dict[str, tuple[int, str]] = {}  # alias -> (version, newest key), the newest within the batch
    for e in events:
        for old in e.previous_keys:
            if old != e.subject_key and best.get(old, (0, ""))[0] < e.key_version:
                best[old] = (e.key_version, e.subject_key)
    if not best:
        return []
    aliases = sorted(best)
    # Only aliases new or moved to a newer key come back: once every subject is linked (each event
    # after a rotation carries its old pseudonyms) a batch costs this one statement.
    changed = [
        r["alias_key"]
        for r in await conn.fetch(
            """INSERT INTO aggregator.subject_aliases (alias_key, subject_key, key_version)
               SELECT * FROM unnest($1::text[], $2::text[], $3::int[])
               ON CONFLICT (alias_key) DO UPDATE SET subject_key = EXCLUDED.subject_key,
                   key_version = EXCLUDED.key_version
               WHERE subject_aliases.key_version < EXCLUDED.key_version
               RETURNING alias_key""",
            aliases,
            [best[a][1] for a in aliases],
            [best[a][0] for a in aliases],
        )
    ]
    if not changed:
        return []
    # Collapse chains: an alias whose target is itself an alias points at that one's target.
    for _ in range(8):
        status = await conn.execute(
            """UPDATE aggregator.subject_aliases a
               SET subject_key = b.subject_key, key_version = b.key_version
               FROM aggregator.subject_aliases b
               WHERE a.subject_key = b.alias_key AND a.alias_key <> b.subject_key
                 AND (a.alias_key = ANY($1::text[]) OR b.alias_key = ANY($1::text[]))""",
            changed,
        )
        if status.endswith(" 0"):
            break
    await _rekey(conn, changed)
    return changed


async def _rekey(conn: asyncpg.Connection, keys: list[str]) -> None:
    """Move every stored row under an alias among `keys` to its subject (later times / more spent win)."""
    await conn.execute(
        """WITH moved AS (
               DELETE FROM aggregator.signals s USING aggregator.subject_aliases a
               WHERE s.subject_key = a.alias_key AND a.alias_key = ANY($1::text[])
               RETURNING s.street_id, s.category, a.subject_key, s.raised_at)
           INSERT INTO aggregator.signals (street_id, category, subject_key, raised_at)
           SELECT street_id, category, subject_key, max(raised_at) FROM moved GROUP BY 1, 2, 3
           ON CONFLICT (street_id, category, subject_key)
           DO UPDATE SET raised_at = GREATEST(signals.raised_at, EXCLUDED.raised_at)""",
        keys,
    )
    await conn.execute(
        """WITH moved AS (
               DELETE FROM aggregator.withdrawals w USING aggregator.subject_aliases a
               WHERE w.subject_key = a.alias_key AND a.alias_key = ANY($1::text[])
               RETURNING a.subject_key, w.category, w.withdrawn_at)
           INSERT INTO aggregator.withdrawals (subject_key, category, withdrawn_at)
           SELECT subject_key, category, max(withdrawn_at) FROM moved GROUP BY 1, 2
           ON CONFLICT (subject_key, category)
           DO UPDATE SET withdrawn_at = GREATEST(withdrawals.withdrawn_at, EXCLUDED.withdrawn_at)""",
        keys,
    )
    # Two generations charged for the same month were one person counted twice: keep one charge.
    await conn.execute(
        """WITH moved AS (
               DELETE FROM aggregator.epsilon_ledger l USING aggregator.subject_aliases a
               WHERE l.subject_key = a.alias_key AND a.alias_key = ANY($1::text[])
               RETURNING a.subject_key, l.period, l.epsilon)
           INSERT INTO aggregator.epsilon_ledger (subject_key, period, epsilon)
           SELECT subject_key, period, max(epsilon) FROM moved GROUP BY 1, 2
           ON CONFLICT (subject_key, period)
           DO UPDATE SET epsilon = GREATEST(epsilon_ledger.epsilon, EXCLUDED.epsilon)""",
        keys,
    )


async def canonical_events(
    conn: asyncpg.Connection,
    events: Sequence[SignalAnonymised | FastSignal],
    relinked: list[str] | None = None,
) -> list[SignalAnonymised | FastSignal]:
    """The events with each subject under its newest pseudonym; links and re-keys rotated subjects
    (the alias keys whose rows moved are added to `relinked`)."""
    changed = await _link(conn, events)
    if relinked is not None:
        relinked.extend(changed)
    if not await conn.fetchval("SELECT EXISTS (SELECT 1 FROM aggregator.subject_aliases)"):
        return list(events)  # no rotation ever: nothing to map
    found = await conn.fetch(
        "SELECT alias_key, subject_key FROM aggregator.subject_aliases WHERE alias_key = ANY($1::text[])",
        sorted({e.subject_key for e in events}),
    )
    newest = {r["alias_key"]: r["subject_key"] for r in found}
    return [
        e.model_copy(update={"subject_key": newest[e.subject_key], "previous_keys": ()})
        if e.subject_key in newest
        else e
        for e in events
    ]


class PurgeCounts(dict[str, int]):
    """Rows deleted per table."""


async def purge(conn: asyncpg.Connection, now: dt.datetime, keep_days: int) -> PurgeCounts:
    """Delete pseudonyms no longer needed (docs/privacy.md, retention), in one transaction.

    - signal rows that ended (expired, or withdrawn) more than `keep_days` ago: no release still to
      be made and no place trend window can count them;
    - withdrawals older than their category's lifetime plus `keep_days`: every raise they could end
      has expired;
    - ledger rows of calendar years before this one (the cap is per year);
    - aliases whose subject has no row left.
    """
    cutoff = now - dt.timedelta(days=keep_days)
    pairs = sorted((str(c), dt.timedelta(days=i.lifetime_days)) for c, i in CATALOGUE.items())
    cats, lifetimes = [c for c, _ in pairs], [t for _, t in pairs]
    out = PurgeCounts()
    async with conn.transaction():
        status = await conn.execute(
            """DELETE FROM aggregator.signals s
               USING unnest($1::text[], $2::interval[]) AS l(category, lifetime)
               WHERE s.category = l.category AND (
                   s.raised_at + l.lifetime < $3
                   OR EXISTS (SELECT 1 FROM aggregator.withdrawals x
                              WHERE x.subject_key = s.subject_key AND x.category = s.category
                                AND x.withdrawn_at >= s.raised_at AND x.withdrawn_at < $3))""",
            cats,
            lifetimes,
            cutoff,
        )
        out["signals"] = int(status.split()[-1])
        status = await conn.execute(
            """DELETE FROM aggregator.withdrawals w
               USING unnest($1::text[], $2::interval[]) AS l(category, lifetime)
               WHERE w.category = l.category AND w.withdrawn_at + l.lifetime < $3""",
            cats,
            lifetimes,
            cutoff,
        )
        out["withdrawals"] = int(status.split()[-1])
        status = await conn.execute(
            "DELETE FROM aggregator.epsilon_ledger WHERE period < $1", f"{now.year:04d}-01"
        )
        out["epsilon_ledger"] = int(status.split()[-1])
        status = await conn.execute(
            """DELETE FROM aggregator.subject_aliases a
               WHERE NOT EXISTS (SELECT 1 FROM aggregator.signals s WHERE s.subject_key = a.subject_key)
                 AND NOT EXISTS (SELECT 1 FROM aggregator.withdrawals w WHERE w.subject_key = a.subject_key)
                 AND NOT EXISTS (SELECT 1 FROM aggregator.epsilon_ledger l
                                 WHERE l.subject_key = a.subject_key)"""
        )
        out["subject_aliases"] = int(status.split()[-1])
        await conn.execute("DELETE FROM aggregator.place_cells")  # kept counts of rows now gone
    return out
