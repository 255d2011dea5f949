"""What the aggregator holds while it runs, built at startup; routes take it via `aggregator_context`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from aiokafka import AIOKafkaProducer
from fastapi import Request

from .areas import Areas
from .consumer import SignalConsumer

__all__ = ["AggregatorContext", "aggregator_context"]


@dataclass(frozen=True)
class AggregatorContext:
    pool: asyncpg.Pool
    areas: Areas  # streets, wards and publication units with their shapes, for the process's life
    producer: AIOKafkaProducer  # the outbox relay's (it publishes tombstones)
    consumer: SignalConsumer


def aggregator_context(request: Request) -> AggregatorContext:
    """FastAPI dependency: the running aggregator's context."""
    context: AggregatorContext = request.app.state.runtime.context
    return context
