"""What the aggregator holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Depends

from shared.service import running_context

from .areas import Areas
from .consumer import SignalConsumer

__all__ = ["AggregatorContext", "Context"]


@dataclass(frozen=True)
class AggregatorContext:
    pool: asyncpg.Pool
    areas: Areas  # streets, wards and publication units with their shapes, for the process's life
    producer: AIOKafkaProducer  # the outbox relay's (it publishes tombstones)
    consumer: SignalConsumer


# What a route declares to be given the context: `context: Context`.
Context = Annotated[AggregatorContext, Depends(running_context)]
