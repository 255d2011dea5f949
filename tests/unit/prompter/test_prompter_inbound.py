"""The prompter's batch path: each key's records in order, keys overlapping, failures redelivered."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from aiokafka import ConsumerRecord

from services.prompter.inbound import apply_batch
from shared.contracts import STREET_NEEDS, StreetNeedChanged

DATA = Path(__file__).resolve().parents[2] / "data/prompter"
NEED = StreetNeedChanged.model_validate_json((DATA / "need_fly_tipping_street.json").read_bytes())


def _record(offset: int, key: str, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(
        STREET_NEEDS.name, 0, offset, 0, 0, key.encode(), value, None, 0, len(value or b""), ()
    )


def _need(area_id: str, version: int) -> bytes:
    return NEED.model_copy(update={"area_id": area_id, "version": version}).model_dump_json().encode()


class Sink:
    """Records calls; every apply waits until two keys are in flight, so serial handling would hang."""

    def __init__(self, fail_on: str | None = None) -> None:
        self.calls: list[tuple[str, str, int | None]] = []
        self.in_flight, self.most = 0, 0
        self.two = asyncio.Event()
        self.fail_on = fail_on

    async def apply_need(self, need):
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        if self.in_flight >= 2:
            self.two.set()
        await self.two.wait()
        self.in_flight -= 1
        if need.key == self.fail_on:
            raise RuntimeError("database away")
        self.calls.append(("apply", need.key, need.version))
        return True

    async def retire_need(self, prompt_id):
        self.calls.append(("retire", prompt_id, None))
        return True


async def test_keys_run_side_by_side_and_each_key_keeps_its_order():
    a, b = NEED.model_copy(update={"area_id": "way/1"}).key, NEED.model_copy(update={"area_id": "way/2"}).key
    records = [
        _record(0, a, _need("way/1", 1)),
        _record(1, b, _need("way/2", 1)),
        _record(2, a, _need("way/1", 2)),
        _record(3, a, None),
        _record(4, a, b'{"area_id": 1}'),
    ]
    sink, rejected = Sink(), []

    async def reject(record, exc):
        rejected.append((record.offset, exc.reason))

    await asyncio.wait_for(apply_batch(records, sink, reject), timeout=30)
    assert [c for c in sink.calls if c[1] == a] == [("apply", a, 1), ("apply", a, 2), ("retire", a, None)]
    assert [c for c in sink.calls if c[1] == b] == [("apply", b, 1)]
    assert sink.most == 2
    assert [offset for offset, _ in rejected] == [4]


async def test_a_failing_key_fails_the_batch_before_anything_is_dead_lettered():
    a, b = NEED.model_copy(update={"area_id": "way/1"}).key, NEED.model_copy(update={"area_id": "way/2"}).key
    records = [_record(0, a, _need("way/1", 1)), _record(1, b, _need("way/2", 1)), _record(2, a, b"{}")]
    rejected = []

    async def reject(record, exc):
        rejected.append(record.offset)

    with pytest.raises(ExceptionGroup) as caught:
        await asyncio.wait_for(apply_batch(records, Sink(fail_on=b), reject), timeout=30)
    assert caught.group_contains(RuntimeError)
    assert rejected == []
