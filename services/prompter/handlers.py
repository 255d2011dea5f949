"""Kafka subscribers: street needs in (prompts out), resident responses in (impact counts)."""

from __future__ import annotations

import logging

from faststream.kafka import KafkaBroker

from shared.contracts import RESIDENT_RESPONSES, STREET_NEEDS, ResidentResponded, StreetNeedChanged, Tombstone
from shared.service import Runtime
from shared.subscribers import subscribe_contract

from .context import PrompterContext

__all__ = ["SERVICE", "register_handlers"]

SERVICE = "prompter"
log = logging.getLogger(__name__)


def register_handlers(
    broker: KafkaBroker, runtime: Runtime[PrompterContext], group_id: str, consumers: int = 1
) -> None:
    """Subscribe the prompter's consumers; effects go through the context's publisher."""

    # The context is given at startup, so each handler reads it when a record arrives.
    async def on_street_need(item: StreetNeedChanged | Tombstone) -> None:
        publisher = runtime.context.publisher
        if isinstance(item, Tombstone):
            await publisher.retire_need(item.key)
        else:
            await publisher.apply_need(item)

    async def on_resident_response(response: ResidentResponded) -> None:
        await runtime.context.publisher.count_response(response)

    subscribe_contract(
        broker,
        STREET_NEEDS,
        service=SERVICE,
        group_id=group_id,
        title="prompter/street-needs",
        description="A need becomes (or changes) a prompt; a tombstone retires it.",
        apply=on_street_need,
        consumers=consumers,
    )
    subscribe_contract(
        broker,
        RESIDENT_RESPONSES,
        service=SERVICE,
        group_id=group_id,
        title="prompter/resident-responses",
        description='Count an "I can help" per prompt and ward, once per response id.',
        apply=on_resident_response,
    )
