"""Thin Kafka subscriber: prompts.v1 → changes + outbox; malformed records → dead letters."""

from __future__ import annotations

import logging
from collections.abc import Awaitable, Callable
from typing import Any

from faststream import AckPolicy
from faststream.kafka import KafkaBroker
from faststream.kafka.annotations import KafkaMessage
from pydantic import ValidationError

from shared.contracts import DEAD_LETTERS, PROMPTS
from shared.kafka import dead_letter, validation_errors
from shared.service import Runtime

from .consume import parse_prompt_record

__all__ = ["register_handlers"]

log = logging.getLogger(__name__)
SERVICE = "notifier"


def register_handlers(broker: KafkaBroker, runtime: Runtime, group_id: str) -> None:
    """`runtime.state["apply"]` stores an event's effect; the offset is committed only after it."""

    @broker.subscriber(
        PROMPTS.name,
        group_id=group_id,
        ack_policy=AckPolicy.NACK_ON_ERROR,
        auto_offset_reset="earliest",
        title="notifier/prompts",
        description="Prompts for action: each new revision queues one mail per instant subscriber.",
    )
    async def on_prompt(msg: KafkaMessage) -> None:
        record = msg.raw_message
        try:
            event = parse_prompt_record(record.value, record.key)
        except (ValidationError, ValueError, UnicodeDecodeError) as exc:
            errors = validation_errors(exc) if isinstance(exc, ValidationError) else (str(exc),)
            letter = dead_letter(
                service=SERVICE,
                source_topic=record.topic,
                value=record.value,
                key=record.key,
                reason="malformed prompt event",
                errors=errors,
                partition=record.partition,
                offset=record.offset,
            )
            await broker.publish(
                letter.model_dump_json().encode(), topic=DEAD_LETTERS.name, key=record.topic.encode()
            )
            log.warning("prompt dead-lettered", extra={"offset": record.offset, "errors": errors})
            return
        apply: Callable[[Any], Awaitable[int]] = runtime.state["apply"]
        await apply(event)
