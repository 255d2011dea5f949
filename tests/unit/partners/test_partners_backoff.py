"""Retry schedule: exponential, capped, jittered within bounds."""

from __future__ import annotations

import random

import pytest

from services.partners.backoff import backoff_delay, backoff_schedule


def test_each_delay_lies_in_the_upper_half_of_a_doubling_capped_ceiling() -> None:
    rng = random.Random(7)
    for attempt in range(1, 12):
        ceiling = min(3600.0, 60.0 * 2 ** (attempt - 1))
        for _ in range(50):
            assert ceiling / 2 <= backoff_delay(attempt, 60.0, 3600.0, rng) <= ceiling


def test_jitter_spreads_retries() -> None:
    rng = random.Random(1)
    assert len({round(backoff_delay(3, 60.0, 3600.0, rng), 6) for _ in range(20)}) > 1


def test_the_schedule_grows_then_holds_at_the_cap() -> None:
    schedule = backoff_schedule(8, 60.0, 600.0)
    assert len(schedule) == 7  # no wait after the last attempt: it is dead-lettered
    assert [hi for _, hi in schedule] == [60, 120, 240, 480, 600, 600, 600]


def test_attempts_are_one_based() -> None:
    with pytest.raises(ValueError):
        backoff_delay(0, 1.0, 2.0)
