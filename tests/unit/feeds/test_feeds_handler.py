"""The prompts subscriber's wiring, on faststream's in-memory broker: store or dead-letter."""

from __future__ import annotations

import base64
import json
from types import SimpleNamespace

from faststream.kafka import KafkaBroker, TestKafkaBroker

from services.feeds.handlers import register_handlers
from shared.contracts import DEAD_LETTERS, PROMPTS
from shared.service import Runtime


async def test_valid_prompts_are_applied_malformed_are_dead_lettered(make):
    broker = KafkaBroker()
    applied, letters = [], []
    runtime = Runtime(name="feeds", settings=None, broker=broker)  # type: ignore[arg-type]

    async def apply_all(events):
        applied.extend(events)

    runtime.provide(SimpleNamespace(apply_all=apply_all))  # the handler uses only the context's apply_all
    register_handlers(broker, runtime, "feeds-test")

    @broker.subscriber(DEAD_LETTERS.name)
    async def collect(body: dict) -> None:
        letters.append(body)

    prompt = make()
    async with TestKafkaBroker(broker) as test:
        await test.publish(
            prompt.model_dump_json().encode(), topic=PROMPTS.name, key=prompt.prompt_id.encode()
        )
        await test.publish(b'{"event_type": "prompt_published"}', topic=PROMPTS.name, key=b"bad")
        await test.publish(
            prompt.model_dump_json().encode(), topic=PROMPTS.name, key=prompt.prompt_id.encode()
        )

    assert applied == [prompt, prompt]
    assert len(letters) == 1
    assert letters[0]["service"] == "feeds" and letters[0]["source_topic"] == PROMPTS.name
    assert any("prompt_id: Field required" in e for e in letters[0]["errors"])
    assert json.loads(base64.b64decode(letters[0]["original_b64"])) == {"event_type": "prompt_published"}
