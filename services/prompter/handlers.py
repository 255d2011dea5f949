"""Kafka subscribers: street needs in (prompts out), resident responses in (impact counts)."""

from __future__ import annotations

import logging
from collections.abc import Sequence

from faststream.kafka import KafkaBroker

from shared.contracts import RESIDENT_RESPONSES, STREET_NEEDS, ResidentResponded, StreetNeedChanged, Tombstone
from shared.service import Runtime
from shared.subscribers import subscribe_contract, subscribe_contract_batches

from .context import PrompterContext

__all__ = ["SERVICE", "register_handlers"]

SERVICE = "prompter"
log = logging.getLogger(__name__)


def register_handlers(
    broker: KafkaBroker, runtime: Runtime[PrompterContext], group_id: str, batch_max_records: int = 500
) -> None:
    """Subscribe the prompter's consumers; effects go through the context's publisher."""

    # The context is given at startup, so each handler reads it when records arrive.
    async def on_street_needs(items: Sequence[StreetNeedChanged | Tombstone]) -> None:
        await runtime.context.publisher.apply_needs(items)

    async def on_resident_response(response: ResidentResponded) -> None:
        await runtime.context.publisher.count_response(response)

    # In polled batches, one transaction each: at 1,000 signals/s one record at a time left the
    # prompter behind (issue #12), paying a transaction, a publish round trip and an offset commit each.
    subscribe_contract_batches(
        broker,
        STREET_NEEDS,
        service=SERVICE,
        group_id=group_id,
        title="prompter/street-needs",
        description="Needs become (or change) prompts; tombstones retire them.",
        apply=on_street_needs,
        max_records=batch_max_records,
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
