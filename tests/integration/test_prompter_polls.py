"""The prompter applies a poll of street needs in one transaction, storing its needs a statement at a
time: the outcome (needs, history, prompt revisions, what reaches prompts.v1) is the same as applying
the records one by one, with a key met again, a stale version and a tombstone in the poll."""

from __future__ import annotations

import uuid
from collections.abc import Awaitable, Callable

import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from services.prompter.publisher import PromptPublisher
from shared.contracts import PROMPTS, PromptPublished, StreetNeedChanged, Tombstone
from tests.support import place_need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

ODD_STREET = 'way/1 "quoted", back\\slash {braced}'  # survives the array literal it travels in


def _items(prefix: str) -> list[StreetNeedChanged | Tombstone]:
    def need(area: str, version: int, count: int) -> StreetNeedChanged:
        return place_need(area, version, count=count).model_copy(update={"street_ids": (ODD_STREET,)})

    k, j, m = f"{prefix}-k", f"{prefix}-j", f"{prefix}-m"
    return [
        need(k, 1, 3),
        need(j, 1, 3),
        need(m, 1, 3),
        need(k, 2, 4),
        need(k, 1, 9),  # stale: ignored
        Tombstone(f"{j}:fly_tipping"),
        need(j, 2, 5),
        Tombstone(f"{m}:fly_tipping"),  # published and retired within the poll
    ]


async def _stored(publisher: PromptPublisher, prefix: str) -> dict[str, list[tuple[object, ...]]]:
    queries = {
        "needs": "SELECT replace(prompt_id, $1, ''), version, active, street_ids FROM prompter.needs"
        " WHERE prompt_id LIKE $1 || '%' ORDER BY 1",
        # one key has several history rows: in the order recorded (by id), which must match too
        "history": "SELECT replace(prompt_id, $1, ''), active, count FROM prompter.needs_history"
        " WHERE prompt_id LIKE $1 || '%' ORDER BY 1, id",
        "prompts": "SELECT replace(prompt_id, $1, ''), revision, status, first_published_on IS NOT NULL"
        " FROM prompter.prompts WHERE prompt_id LIKE $1 || '%' ORDER BY 1",
    }
    async with publisher.pool.acquire() as conn:
        return {name: [tuple(r) for r in await conn.fetch(sql, prefix)] for name, sql in queries.items()}


async def _published(
    kafka_bootstrap: str, apply: Callable[[], Awaitable[None]], prefixes: dict[str, int]
) -> dict[str, list[tuple]]:
    """Run `apply`, then read prompts.v1 from before it: per prefix, (key, event, revision) of the
    records written, each key's in the order written."""
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    found: dict[str, list[tuple]] = {p: [] for p in prefixes}
    try:
        parts = [TopicPartition(PROMPTS.name, p) for p in range(PROMPTS.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_end(*parts)
        await apply()
        while any(len(found[p]) < n for p, n in prefixes.items()):
            for records in (await consumer.getmany(timeout_ms=500)).values():
                for r in records:
                    prefix = next((p for p in prefixes if r.key.decode().startswith(p)), None)
                    if prefix is not None:
                        event = PROMPTS.decode(r.key, r.value)
                        revision = event.revision if isinstance(event, PromptPublished) else 0
                        found[prefix].append(
                            (r.key.decode().removeprefix(prefix), type(event).__name__, revision)
                        )
    finally:
        await consumer.stop()
    return {p: sorted(events, key=lambda e: e[0]) for p, events in found.items()}  # stable per key


async def test_a_poll_in_one_transaction_equals_its_records_one_by_one(
    publisher: PromptPublisher, kafka_bootstrap: str
) -> None:
    poll, single = f"poll{uuid.uuid4().hex[:8]}", f"single{uuid.uuid4().hex[:8]}"
    changed: dict[str, int] = {}

    async def apply() -> None:
        changed[poll] = await publisher.apply_needs(_items(poll))
        changed[single] = sum([await publisher.apply_needs([item]) for item in _items(single)])

    sent = await _published(kafka_bootstrap, apply, {poll: 7, single: 7})

    assert changed == {poll: 7, single: 7}  # k r1, j r1, m r1, k r2, j retired, j r2, m retired
    assert (
        sent[poll]
        == sent[single]
        == [
            ("-j:fly_tipping", "PromptPublished", 1),
            ("-j:fly_tipping", "PromptRetired", 0),
            ("-j:fly_tipping", "PromptPublished", 2),
            ("-k:fly_tipping", "PromptPublished", 1),
            ("-k:fly_tipping", "PromptPublished", 2),
            ("-m:fly_tipping", "PromptPublished", 1),
            ("-m:fly_tipping", "PromptRetired", 0),
        ]
    )
    stored = await _stored(publisher, poll)
    assert stored == await _stored(publisher, single)
    assert stored["needs"] == [
        ("-j:fly_tipping", 2, True, [ODD_STREET]),
        ("-k:fly_tipping", 2, True, [ODD_STREET]),
        ("-m:fly_tipping", 1, False, [ODD_STREET]),
    ]
    assert stored["prompts"] == [
        ("-j:fly_tipping", 2, "published", True),
        ("-k:fly_tipping", 2, "published", True),
        ("-m:fly_tipping", 1, "retired", True),  # it was published: it has a first publication date
    ]
    assert stored["history"] == [
        ("-j:fly_tipping", True, 3),
        ("-j:fly_tipping", False, None),
        ("-j:fly_tipping", True, 5),
        ("-k:fly_tipping", True, 3),
        ("-k:fly_tipping", True, 4),
        ("-m:fly_tipping", True, 3),
        ("-m:fly_tipping", False, None),
    ]
