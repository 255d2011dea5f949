"""Kafka subscribers: street needs in (prompts out), resident responses in (impact counts)."""

from __future__ import annotations

import logging

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.contracts import DEAD_LETTERS, RESIDENT_RESPONSES, STREET_NEEDS, ResidentResponded
from shared.kafka import dead_letter, validation_errors
from shared.service import Runtime

from .inbound import Rejected, Tombstone, read_need

__all__ = ["SERVICE", "register_handlers"]

SERVICE = "prompter"
log = logging.getLogger(__name__)


async def _dead_letter(broker: KafkaBroker, msg: KafkaMessage, reason: str, errors: tuple[str, ...]) -> None:
    record = msg.raw_message
    letter = dead_letter(
        service=SERVICE,
        source_topic=record.topic,
        value=record.value,
        key=record.key,
        reason=reason,
        errors=errors,
        partition=record.partition,
        offset=record.offset,
    )
    await broker.publish(
        letter.model_dump_json().encode(), topic=DEAD_LETTERS.name, key=record.topic.encode()
    )
    log.warning(
        "dead-lettered",
        extra={
            "topic": record.topic,
            "reason": reason,
            "partition": record.partition,
            "offset": record.offset,
        },
    )


def register_handlers(broker: KafkaBroker, runtime: Runtime, group_id: str) -> None:
    """Subscribe the prompter's consumers; effects go through `runtime.state["publisher"]`."""

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
        try:
            item = read_need(record.key, record.value)
        except Rejected as exc:
            await _dead_letter(broker, msg, exc.reason, exc.errors)
            return
        publisher = runtime.state["publisher"]
        if isinstance(item, Tombstone):
            await publisher.retire_need(item.prompt_id)
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
        try:
            response = ResidentResponded.model_validate_json(msg.raw_message.value or b"")
        except ValidationError as exc:
            await _dead_letter(broker, msg, "value is not a valid ResidentResponded", validation_errors(exc))
            return
        await runtime.state["publisher"].count_response(response)
