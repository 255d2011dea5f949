"""A topic's subscriber that decodes by the contract, dead-letters what breaks it and applies the rest."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.message import KafkaMessage

from .contracts import ContractError, Topic
from .kafka import publish_dead_letter
from .service import Runtime

__all__ = ["Applies", "subscribe_contract", "subscribe_to_context"]


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


class Applies(Protocol):
    """A service context that stores a topic's events itself: `apply(event)`."""

    def apply(self, event: Any, /) -> Awaitable[object]: ...


A = TypeVar("A", bound=Applies)


def subscribe_to_context(
    broker: KafkaBroker,
    runtime: Runtime[A],
    group_id: str,
    consumers: int = 1,
    *,
    topic: Topic,
    title: str,
    description: str,
) -> None:
    """`subscribe_contract` for the service `runtime` runs, handing each event to its context's `apply`.

    The context is given at startup, after the subscriber is declared: it is looked up per event. A
    service binds its topic, title and description with `functools.partial` as its `register_handlers`.
    """
    subscribe_contract(
        broker,
        topic,
        service=runtime.name,
        group_id=group_id,
        title=title,
        description=description,
        apply=lambda event: runtime.context.apply(event),
        consumers=consumers,
    )
