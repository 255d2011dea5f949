"""Kafka subscribers: street needs in (prompts out), resident responses in (impact counts)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage

from shared.contracts import RESIDENT_RESPONSES, STREET_NEEDS, ContractError, Tombstone
from shared.kafka import publish_dead_letter
from shared.service import Runtime

from .context import PrompterContext

__all__ = ["SERVICE", "register_handlers"]

SERVICE = "prompter"
log = logging.getLogger(__name__)


def register_handlers(broker: KafkaBroker, runtime: Runtime[PrompterContext], group_id: str) -> None:
    """Subscribe the prompter's consumers; effects go through the context's publisher."""

    @broker.subscriber(
        STREET_NEEDS.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="prompter/street-needs",
    )
    async def on_street_need(msg: KafkaMessage) -> None:
        """A need becomes (or changes) a prompt; a tombstone retires it; bad records are dead-lettered."""
        record = msg.raw_message
        assert not isinstance(record, tuple)  # a single-record subscriber: never a batch
        try:
            item = STREET_NEEDS.decode(record.key, record.value)
        except ContractError as exc:
            await publish_dead_letter(
                broker, service=SERVICE, record=record, reason=exc.reason, errors=exc.errors
            )
            return
        publisher = runtime.context.publisher
        if isinstance(item, Tombstone):
            await publisher.retire_need(item.key)
        else:
            await publisher.apply_need(item)

    @broker.subscriber(
        RESIDENT_RESPONSES.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="prompter/resident-responses",
    )
    async def on_resident_response(msg: KafkaMessage) -> None:
        """Count an "I can help" per prompt and ward, once per response id."""
        record = msg.raw_message
        assert not isinstance(record, tuple)  # a single-record subscriber: never a batch
        try:
            response = RESIDENT_RESPONSES.decode(record.key, record.value)
        except ContractError as exc:
            await publish_dead_letter(
                broker, service=SERVICE, record=record, reason=exc.reason, errors=exc.errors
            )
            return
        await runtime.context.publisher.count_response(response)
