"""Apply one polled batch of street needs: keys side by side, each key's records in order."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable, Sequence
from typing import Protocol

from aiokafka import ConsumerRecord

from shared.contracts import STREET_NEEDS, ContractError, StreetNeedChanged, Tombstone

__all__ = ["MAX_IN_FLIGHT", "NeedSink", "apply_batch"]

log = logging.getLogger(__name__)
# Keys applied at once: each holds a pooled connection while its prompt's publish is acknowledged,
# so this stays below the pool's size (10) to leave connections for the API and the reconcile loop.
MAX_IN_FLIGHT = 6

Reject = Callable[[ConsumerRecord, ContractError], Awaitable[None]]


class NeedSink(Protocol):
    async def apply_need(self, need: StreetNeedChanged) -> bool: ...

    async def retire_need(self, prompt_id: str) -> bool: ...


async def apply_batch(records: Sequence[ConsumerRecord], sink: NeedSink, reject: Reject) -> None:
    """Apply every valid record and dead-letter the rest; raises (the batch comes again) if any fails.

    One key's records stay in offset order (a prompt's revisions never fork); different keys touch
    different need rows, so they run concurrently and their publish round trips overlap. Re-applying a
    redelivered batch is harmless: stale versions are ignored and unchanged prompts are not republished.
    """
    by_key: dict[str, list[StreetNeedChanged | Tombstone]] = {}
    rejected: list[tuple[ConsumerRecord, ContractError]] = []
    for record in records:
        try:
            item = STREET_NEEDS.decode(record.key, record.value)
        except ContractError as exc:
            rejected.append((record, exc))
            continue
        by_key.setdefault(item.key, []).append(item)

    gate = asyncio.Semaphore(MAX_IN_FLIGHT)

    async def apply_key(items: list[StreetNeedChanged | Tombstone]) -> None:
        async with gate:
            for item in items:
                if isinstance(item, Tombstone):
                    await sink.retire_need(item.key)
                else:
                    await sink.apply_need(item)

    # A TaskGroup cancels the other keys if one fails: their transactions roll back, and the batch
    # is redelivered whole.
    async with asyncio.TaskGroup() as group:
        for items in by_key.values():
            group.create_task(apply_key(items))
    for record, error in rejected:
        await reject(record, error)
