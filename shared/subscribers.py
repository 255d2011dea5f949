"""A topic's subscriber that decodes by the contract, dead-letters what breaks it and applies the rest."""

from __future__ import annotations

import asyncio
import itertools
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import Any, Protocol, TypeVar

import asyncpg
from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage
from faststream.kafka.subscriber.usecase import BatchSubscriber

from .contracts import ContractError, Topic
from .kafka import publish_dead_letter
from .service import Runtime

__all__ = [
    "POLL_WAIT_MS",
    "Applies",
    "batch_subscriber",
    "poll_without_sleeping",
    "rest_after_poll",
    "subscribe_contract",
    "subscribe_contract_batches",
    "subscribe_to_context",
]

# How long a batch consumer's poll waits for a record before it returns empty and polls again. It
# returns as soon as a record is fetched, so no record waits for this (see `poll_without_sleeping`).
POLL_WAIT_MS = 1000


async def rest_after_poll(started: float, records: int, max_records: int, rest_ms: int) -> None:
    """Pace a consumer off the live path: after a poll shorter than `max_records` (it is keeping up),
    wait until `rest_ms` after the poll `started` (time.monotonic()) before the next.

    The first record after a quiet spell is still applied at once; under a steady load the records
    that arrive meanwhile are applied together in the next poll. Each poll pays fixed costs (its
    transaction's commit, the offset commit, the broker's fetch), so on a machine shared with the
    live path fewer, larger polls leave it the CPU. A full poll (the consumer is behind) does not wait.
    """
    if rest_ms > 0 and records < max_records:
        left = started + rest_ms / 1000 - time.monotonic()
        if left > 0:
            await asyncio.sleep(left)


async def _the_record(msg: KafkaMessage) -> Any:
    """Hand the handler the Kafka record itself: the contract decodes its key and value.

    Asking for it as a `KafkaMessage` argument instead costs a thread hop per record: the dependency
    injector resolves such context arguments with a synchronous function run in a worker thread.
    """
    record = msg.raw_message
    assert not isinstance(record, tuple)  # a single-record subscriber: never a batch
    return record


def subscribe_contract(
    broker: KafkaBroker,
    topic: Topic,
    *,
    service: str,
    group_id: str,
    title: str,
    description: str,
    apply: Callable[[Any], Awaitable[object]],
    consumers: int = 1,
) -> None:
    """Subscribe `group_id` to `topic` from its start; each event (or Tombstone) goes to `apply`.

    A record that breaks the contract is dead-lettered and its offset committed; if `apply` raises,
    nothing is committed and the record is read again.

    `consumers` > 1 runs that many consumers of the group in this process (faststream's
    between-partitions mode): each owns whole partitions and commits its own offsets, so records of
    one key (one partition) are still applied one at a time and in order, while other partitions'
    records are applied meanwhile. That is what lets a backlog on one partition not delay the rest.
    """

    @broker.subscriber(
        topic.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        max_workers=consumers,
        auto_offset_reset="earliest",
        decoder=_the_record,
        title=title,
        description=description,
    )
    async def on_record(record: Any) -> None:
        try:
            event = topic.decode(record.key, record.value)
        except ContractError as exc:
            await publish_dead_letter(
                broker, service=service, record=record, reason=exc.reason, errors=exc.errors
            )
            return
        await apply(event)


async def _the_records(msg: KafkaMessage) -> Any:
    """A batch subscriber's records as polled (see `_the_record` for why not a `KafkaMessage` argument)."""
    records: Any = msg.raw_message  # a tuple from the broker, a list from faststream's test broker
    return tuple(records) if isinstance(records, (tuple, list)) else (records,)


def subscribe_contract_batches(
    broker: KafkaBroker,
    topic: Topic,
    *,
    service: str,
    group_id: str,
    title: str,
    description: str,
    apply: Callable[[Sequence[Any]], Awaitable[object]],
    max_records: int,
    rest_ms: int = 0,
) -> None:
    """Like `subscribe_contract`, but `apply` gets every valid event of one poll at once, in offset
    order per partition (so per key), and may store them in one transaction.

    A poll returns as soon as records are there (up to `max_records`, from any of the consumer's
    partitions): an idle consumer still applies a lone record at once, a busy one pays one
    transaction, one round of publish acknowledgements and one offset commit per poll instead of per
    record. Records that break the contract, or that the database refuses as data (`asyncpg.DataError`,
    found by applying the poll again one record at a time), are dead-lettered after the rest are
    applied. If `apply` raises anything else, nothing is committed: every partition of the poll is
    rewound to its first record and the whole poll comes again, so `apply` must be idempotent
    (re-applying a version is a no-op). `rest_ms`: see `rest_after_poll` (0, the default, never waits).
    """

    subscriber = batch_subscriber(
        broker,
        topic.name,
        group_id=group_id,
        max_records=max_records,
        title=title,
        description=description,
        decoder=_the_records,
    )

    @subscriber
    async def on_records(records: Any) -> None:
        started = time.monotonic()
        decoded: list[tuple[Any, Any]] = []
        broken: list[tuple[Any, str, tuple[str, ...]]] = []
        for record in records:
            try:
                decoded.append((record, topic.decode(record.key, record.value)))
            except ContractError as exc:
                broken.append((record, exc.reason, exc.errors))
        if decoded:
            try:
                await apply([event for _, event in decoded])
            except asyncpg.DataError:
                # A record the contract let through but the database refuses (a value out of a
                # column's range) would fail the whole poll on every retry and stop every partition
                # of this consumer. Apply the poll one record at a time and dead-letter what is
                # refused; any other error still fails the poll, to be read again.
                for record, event in decoded:
                    try:
                        await apply([event])
                    except asyncpg.DataError as exc:
                        broken.append((record, f"refused by the database: {type(exc).__name__}", (str(exc),)))
        for record, reason, errors in broken:
            await publish_dead_letter(broker, service=service, record=record, reason=reason, errors=errors)
        await rest_after_poll(started, len(records), max_records, rest_ms)


def batch_subscriber(
    broker: KafkaBroker,
    topic: str,
    *,
    group_id: str,
    max_records: int,
    title: str,
    description: str | None = None,
    decoder: Callable[[KafkaMessage], Awaitable[Any]] | None = None,
) -> BatchSubscriber:
    """A subscriber to `topic` that is given a poll's records at once (up to `max_records`), from the
    earliest offset for a new group, polling as `poll_without_sleeping` says.

    NACK_ON_ERROR on a batch: success commits the consumer's positions (past the whole batch); an
    exception seeks every partition back to the batch's first record there, so it all comes again."""
    subscriber = broker.subscriber(
        topic,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        batch=True,
        max_records=max_records,
        batch_timeout_ms=POLL_WAIT_MS,
        title=title,
        description=description,
        decoder=decoder,
    )
    poll_without_sleeping(subscriber, max_records)
    return subscriber


def poll_without_sleeping(subscriber: Any, max_records: int) -> None:
    """Make a batch subscriber's poll wait up to POLL_WAIT_MS for records and return at once when they
    come, and, when none came, poll again at once.

    faststream's batch subscriber (0.7) sleeps as long as its poll waited after every empty poll, so
    a record that arrives during the sleep waits for its end; and keeping that sleep short (5 ms, as
    here before) woke every idle consumer ~200 times a second, ~4% of a core each on a 2-core
    machine. aiokafka's `getmany` already waits for the first record fetched; nothing more is needed.
    The subscriber's consume loop calls `get_msg` per poll: this one is set on the instance.
    """

    async def get_msg(consumer: Any) -> tuple[Any, ...]:
        fetched = await consumer.getmany(timeout_ms=POLL_WAIT_MS, max_records=max_records)
        return tuple(itertools.chain.from_iterable(fetched.values()))

    subscriber.get_msg = get_msg


class Applies(Protocol):
    """A service context that stores a topic's events itself, a poll at a time: `apply_all(events)`."""

    def apply_all(self, events: Sequence[Any], /) -> Awaitable[object]: ...


A = TypeVar("A", bound=Applies)


def subscribe_to_context(
    broker: KafkaBroker,
    runtime: Runtime[A],
    group_id: str,
    max_records: int = 500,
    rest_ms: int = 0,
    *,
    topic: Topic,
    title: str,
    description: str,
) -> None:
    """`subscribe_contract_batches` for the service `runtime` runs: each poll's events go to its
    context's `apply_all`.

    The context is given at startup, after the subscriber is declared: it is looked up per event. A
    service binds its topic, title and description with `functools.partial` as its `register_handlers`.
    """
    subscribe_contract_batches(
        broker,
        topic,
        service=runtime.name,
        group_id=group_id,
        title=title,
        description=description,
        apply=lambda events: runtime.context.apply_all(events),
        max_records=max_records,
        rest_ms=rest_ms,
    )
