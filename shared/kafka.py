"""Kafka plumbing: broker factory, topic creation from the registry, and dead-lettering."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import logging

from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.errors import TopicAlreadyExistsError
from faststream.kafka import KafkaBroker
from pydantic import ValidationError

from .contracts import ALL_TOPICS, DeadLettered, Topic

__all__ = ["dead_letter", "ensure_topics", "make_broker", "validation_errors"]

log = logging.getLogger(__name__)


def make_broker(bootstrap_servers: str, client_id: str) -> KafkaBroker:
    """A broker whose producer waits for every replica and never duplicates on retry."""
    return KafkaBroker(
        bootstrap_servers.split(","),
        client_id=client_id,
        acks="all",
        enable_idempotence=True,
        logger=logging.getLogger(f"faststream.{client_id}"),
    )


async def ensure_topics(bootstrap_servers: str, topics: tuple[Topic, ...] = ALL_TOPICS) -> list[str]:
    """Create the registry's topics that do not exist yet; returns the names created."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap_servers.split(","))
    await admin.start()
    try:
        existing = set(await admin.list_topics())
        wanted = [t for t in topics if t.name not in existing]
        created = []
        for topic in wanted:
            try:
                await admin.create_topics([NewTopic(
                    topic.name, num_partitions=topic.partitions, replication_factor=1,
                    topic_configs=topic.config())])
                created.append(topic.name)
            except TopicAlreadyExistsError:  # another replica won the race: same outcome
                pass
        await _wait_until_visible(admin, {t.name: t.partitions for t in wanted})
        return created
    finally:
        await admin.close()


async def _wait_until_visible(admin: AIOKafkaAdminClient, partitions: dict[str, int],
                              timeout_s: float = 30.0) -> None:
    """Creation returns before every partition has a leader; callers produce straight away."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while partitions:
        described = await admin.describe_topics(list(partitions))
        ready = {d["topic"] for d in described if d["error_code"] == 0
                 and len([p for p in d["partitions"] if p["leader"] >= 0]) == partitions[d["topic"]]}
        partitions = {name: n for name, n in partitions.items() if name not in ready}
        if partitions and loop.time() > deadline:
            raise TimeoutError(f"topics not ready after {timeout_s:.0f}s: {', '.join(partitions)}")
        if partitions:
            await asyncio.sleep(0.1)


def validation_errors(exc: ValidationError) -> tuple[str, ...]:
    """One line per bad field, `path: message`, without echoing the input values."""
    return tuple(
        f"{'.'.join(str(p) for p in err['loc']) or '(body)'}: {err['msg']}" for err in exc.errors()
    )


def dead_letter(
    *, service: str, source_topic: str, value: bytes | None, key: bytes | None, reason: str,
    errors: tuple[str, ...] = (), partition: int | None = None, offset: int | None = None,
) -> DeadLettered:
    """The dead-letter record for input that could not be accepted (reason + original bytes)."""
    return DeadLettered(
        service=service, source_topic=source_topic, partition=partition, offset=offset,
        key_b64=base64.b64encode(key).decode() if key is not None else None,
        original_b64=base64.b64encode(value or b"").decode(), reason=reason, errors=errors,
        dead_lettered_at=dt.datetime.now(dt.UTC),
    )

