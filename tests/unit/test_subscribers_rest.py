"""shared.subscribers.rest_after_poll: how long a consumer off the live path waits before its next poll."""

from __future__ import annotations

import pytest

from shared import subscribers


@pytest.fixture
def slept(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The waits asked for, at a clock standing still at 100.0 s."""
    asked: list[float] = []

    async def sleep(seconds: float) -> None:
        asked.append(seconds)

    monkeypatch.setattr(subscribers.asyncio, "sleep", sleep)
    monkeypatch.setattr(subscribers.time, "monotonic", lambda: 100.0)
    return asked


async def test_a_short_poll_waits_out_the_rest_from_when_it_started(slept: list[float]) -> None:
    await subscribers.rest_after_poll(started=99.9, records=1, max_records=500, rest_ms=250)
    assert slept == [pytest.approx(0.15)]


async def test_a_full_poll_does_not_wait(slept: list[float]) -> None:
    """The consumer is behind: the next poll follows at once."""
    await subscribers.rest_after_poll(started=99.9, records=500, max_records=500, rest_ms=250)
    assert slept == []


async def test_a_poll_that_took_longer_than_the_rest_does_not_wait(slept: list[float]) -> None:
    await subscribers.rest_after_poll(started=99.0, records=3, max_records=500, rest_ms=250)
    assert slept == []


async def test_no_rest_never_waits(slept: list[float]) -> None:
    await subscribers.rest_after_poll(started=100.0, records=1, max_records=500, rest_ms=0)
    assert slept == []
