"""One relay at a time: claiming the outbox takes the relays' lock in the same statement, and a relay
that does not get it reads nothing, so each key's versions reach Kafka in the order they were queued."""

from __future__ import annotations

import asyncpg
import pytest

from services.aggregator import repository as repo
from services.aggregator.main import MIGRATIONS
from shared.contracts import STREET_NEEDS
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(60)]


async def test_a_claim_reads_in_order_and_a_second_relay_reads_nothing_until_the_first_ends(
    fresh_database_url,
) -> None:
    first, second = [await asyncpg.connect(fresh_database_url) for _ in range(2)]
    try:
        await apply_migrations(first, "aggregator", MIGRATIONS)
        keys = [f"k{i}".encode() for i in range(5)]
        for key in keys:
            await first.execute(
                "INSERT INTO aggregator.outbox (topic, key, value) VALUES ($1, $2, $3)",
                STREET_NEEDS.name,
                key,
                b"v-" + key,
            )

        async with first.transaction():
            claimed = await repo.claim_outbox(first, 3)
            assert [r["key"] for r in claimed] == keys[:3], "the oldest rows, in the order queued"
            assert [r["value"] for r in claimed] == [b"v-" + k for k in keys[:3]]
            async with second.transaction():
                assert await repo.claim_outbox(second, 10) == [], "another relay holds the lock"
            await repo.delete_outbox(first, [r["id"] for r in claimed])

        # The lock went with the first relay's transaction: the next claim gets what is left.
        async with second.transaction():
            assert [r["key"] for r in await repo.claim_outbox(second, 10)] == keys[3:]
    finally:
        await first.close()
        await second.close()
