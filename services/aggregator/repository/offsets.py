"""Consumer offsets (aggregator.consumer_offsets): stored in the transaction that applies the batch."""

from __future__ import annotations

from collections.abc import Iterable, Mapping

import asyncpg


class StaleOffsets(RuntimeError):
    """The stored position is not the one this consumer read from: another replica moved on."""


async def load_offsets(conn: asyncpg.Connection, topic: str, partitions: Iterable[int]) -> dict[int, int]:
    rows = await conn.fetch(
        "SELECT partition, next_offset FROM aggregator.consumer_offsets"
        " WHERE topic = $1 AND partition = ANY($2)",
        topic,
        list(partitions),
    )
    return {r["partition"]: r["next_offset"] for r in rows}


async def insert_offsets(conn: asyncpg.Connection, topic: str, starts: Mapping[int, int]) -> None:
    """Store the starting position of partitions that have none yet."""
    await conn.executemany(
        "INSERT INTO aggregator.consumer_offsets (topic, partition, next_offset) VALUES ($1, $2, $3)"
        " ON CONFLICT DO NOTHING",
        [(topic, p, o) for p, o in sorted(starts.items())],
    )


async def claim_offsets(
    conn: asyncpg.Connection, topic: str, moves: Mapping[int, tuple[int | None, int, int]]
) -> None:
    """Move each partition (expected position, new position, records applied), or raise StaleOffsets.

    The compare-and-set fences out a replica that lost a partition but still finishes a batch:
    its transaction rolls back instead of counting the batch a second time.
    """
    parts = sorted(moves)
    expected = [moves[p][0] for p in parts]
    new = [moves[p][1] for p in parts]
    applied = [moves[p][2] for p in parts]
    done = await conn.fetchval(
        """WITH input AS (
               SELECT * FROM unnest($2::int[], $3::bigint[], $4::bigint[], $5::bigint[])
                   AS t(p, expected, new, n)),
           updated AS (
               UPDATE aggregator.consumer_offsets o
               SET next_offset = i.new, records = o.records + i.n, updated_at = now()
               FROM input i WHERE o.topic = $1 AND o.partition = i.p AND o.next_offset = i.expected
               RETURNING 1),
           inserted AS (
               INSERT INTO aggregator.consumer_offsets (topic, partition, next_offset, records)
               SELECT $1, p, new, n FROM input WHERE expected IS NULL
               ON CONFLICT DO NOTHING RETURNING 1)
           SELECT (SELECT count(*) FROM updated) + (SELECT count(*) FROM inserted)""",
        topic,
        parts,
        expected,
        new,
        applied,
    )
    if done != len(parts):
        raise StaleOffsets(f"{topic}: stored positions moved for some of partitions {parts}")
