"""The outbox (aggregator.outbox): records to produce, in order, written with the state they describe."""

from __future__ import annotations

from collections.abc import Sequence

import asyncpg

# The relays LISTEN here; a statement that queues rows notifies in the same statement (delivered at
# commit, once per transaction however many statements queued).
CHANNEL = "aggregator_outbox"


def queued(topic: str, keys: str, values: str) -> str:
    """A data-modifying CTE, `queued`, appending to the outbox the (`topic`, key, value) rows of
    these parameters (a text, two bytea[]); ids follow the order given (the relay's order). Its
    statement ends in `NOTIFY_QUEUED`."""
    return f"""queued AS (
               INSERT INTO aggregator.outbox (topic, key, value)
               SELECT {topic}, k, v
               FROM unnest({keys}::bytea[], {values}::bytea[]) WITH ORDINALITY AS t(k, v, i)
               ORDER BY i RETURNING 1)"""


# Wakes every relay once the transaction commits (not before), if `queued` appended anything.
NOTIFY_QUEUED = f"SELECT pg_notify('{CHANNEL}', '') WHERE EXISTS (SELECT FROM queued)"


async def _queue(
    conn: asyncpg.Connection, topic: str, keys: Sequence[bytes | None], values: Sequence[bytes | None]
) -> None:
    """Append to the outbox in one statement that also wakes the relays (`queued`)."""
    if not keys:
        return
    await conn.execute(f"WITH {queued('$1', '$2', '$3')} {NOTIFY_QUEUED}", topic, list(keys), list(values))


async def insert_dead_letters(
    conn: asyncpg.Connection, topic: str, items: Sequence[tuple[bytes, bytes]]
) -> None:
    if items:
        await _queue(conn, topic, [k for k, _ in items], [v for _, v in items])


async def claim_outbox(conn: asyncpg.Connection, limit: int) -> list[asyncpg.Record]:
    """Up to `limit` queued rows in order, if this transaction takes the relays' lock; none if
    another relay holds it (one relays at a time, keeping each key's versions in order).

    The lock is taken by the same statement: an uncorrelated subquery runs once, before the scan,
    and the scan only runs when it got the lock (PostgreSQL's one-time filter). Taken apart, it was
    one more round trip per relay, ~0.1-0.5 ms each on a loaded 2-core machine, on the live path."""
    found: list[asyncpg.Record] = await conn.fetch(
        """SELECT id, topic, key, value FROM aggregator.outbox
           WHERE (SELECT pg_try_advisory_xact_lock(hashtextextended('aggregator.outbox', 0)))
           ORDER BY id LIMIT $1""",
        limit,
    )
    return found


async def delete_outbox(conn: asyncpg.Connection, ids: Sequence[int]) -> None:
    await conn.execute("DELETE FROM aggregator.outbox WHERE id = ANY($1::bigint[])", list(ids))
