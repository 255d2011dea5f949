"""Fixtures shared by integration tests of more than one module."""

from __future__ import annotations

import uuid
from collections.abc import AsyncIterator

import pytest
from aiokafka import AIOKafkaProducer

from services.prompter.main import create_app
from services.prompter.publisher import PromptPublisher
from services.prompter.settings import PrompterSettings


@pytest.fixture
async def publisher(fresh_database_url: str, kafka_bootstrap: str) -> AsyncIterator[PromptPublisher]:
    """The publisher of a running prompter (its own database and consumer group)."""
    settings = PrompterSettings(
        database_url=fresh_database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        group_id=f"prompter-test-{uuid.uuid4().hex}",
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app.state.runtime.context.publisher


@pytest.fixture(scope="module")
async def producer(kafka_bootstrap: str) -> AsyncIterator[AIOKafkaProducer]:
    """A producer that waits for every replica's ack, as the services' own do (one per module)."""
    p = AIOKafkaProducer(bootstrap_servers=kafka_bootstrap, acks="all")
    await p.start()
    yield p
    await p.stop()
