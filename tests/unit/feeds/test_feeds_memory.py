"""Feeds served from memory: validators current while the listener vouches for them, and one
database look-up shared by every request that wants the same feed at the same moment."""

from __future__ import annotations

import asyncio
import time

import pytest

from services.feeds.feedcache import Flights, ValidatorCache

KEY = ("target", "atom")


def test_validators_stay_current_while_the_listener_confirms_nothing_was_missed():
    cache = ValidatorCache(ttl_s=5.0)
    cache.put(KEY, (7, 0), ("etag",))
    entry = cache._entries[KEY]
    cache._entries[KEY] = (entry[0], time.monotonic() - 60, entry[2])  # computed a minute ago
    assert cache.get(KEY, (7, 0), fresh_at=time.monotonic()) == ("etag",)  # the listener just looked
    assert cache.get(KEY, (8, 0), fresh_at=time.monotonic()) is None  # a change: gone for good
    assert cache.get(KEY, (7, 0), fresh_at=time.monotonic()) is None


def test_without_the_listener_validators_expire_after_their_ttl():
    cache = ValidatorCache(ttl_s=5.0)
    cache.put(KEY, (7, 0), ("etag",))
    assert cache.get(KEY, (7, 0)) == ("etag",)
    entry = cache._entries[KEY]
    cache._entries[KEY] = (entry[0], time.monotonic() - 6, entry[2])
    assert cache.get(KEY, (7, 0), fresh_at=time.monotonic() - 5.5) is None  # the listener fell silent


async def test_concurrent_look_ups_of_one_key_share_one_and_later_ones_run_again():
    flights = Flights()
    gate = asyncio.Event()
    calls = []

    async def look_up(n: int) -> str:
        calls.append(n)
        await gate.wait()
        return f"result of {n}"

    waiting = [asyncio.create_task(flights.run("k", lambda n=n: look_up(n))) for n in range(20)]
    other = asyncio.create_task(flights.run("other key", lambda: look_up(99)))
    while len(calls) < 2:  # noqa: ASYNC110
        await asyncio.sleep(0)
    assert sorted(calls) == [0, 99] and len(flights) == 2
    waiting[0].cancel()  # the first caller goes away: the others still get the answer
    gate.set()
    results = await asyncio.gather(*waiting[1:], other)
    assert results == ["result of 0"] * 19 + ["result of 99"]
    assert len(flights) == 0
    assert await flights.run("k", lambda: look_up(5)) == "result of 5"  # done: a new look-up


async def test_a_failed_look_up_fails_every_caller_that_shared_it():
    flights = Flights()
    gate = asyncio.Event()

    async def broken() -> str:
        await gate.wait()
        raise ConnectionError("database gone")

    waiting = [asyncio.create_task(flights.run("k", broken)) for _ in range(3)]
    await asyncio.sleep(0)
    gate.set()
    for outcome in await asyncio.gather(*waiting, return_exceptions=True):
        assert isinstance(outcome, ConnectionError)
    assert len(flights) == 0
    with pytest.raises(ConnectionError):
        await flights.run("k", broken)  # not remembered: tried again
