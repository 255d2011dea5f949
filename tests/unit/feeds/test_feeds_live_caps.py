"""SSE hardening (issue 11, Medium 6): connection caps in all and per client; a Last-Event-ID (0
included) further back than the replay window gets one `refresh` event instead of the whole history."""

from __future__ import annotations

import asyncio
import json

import pytest

from services.feeds.live import Hub, stream
from services.feeds.repository import Change
from shared.gazetteer.selection import Areas
from shared.http import Problem


def _change(seq: int, street: str) -> Change:
    return Change(seq, f"p{seq}", "published", street, "street", (street,), "place", json.dumps({"n": seq}))


def test_connections_are_capped_per_client_and_in_all() -> None:
    hub = Hub(8, max_clients=3, max_per_client=2)
    first = hub.admit("198.51.100.7")
    hub.admit("198.51.100.7")
    with pytest.raises(Problem) as per_client:
        hub.admit("198.51.100.7")
    assert per_client.value.status == 429
    hub.admit("203.0.113.9")
    with pytest.raises(Problem) as in_all:
        hub.admit("192.0.2.1")
    assert in_all.value.status == 503
    first()
    first()  # releasing twice counts once
    assert hub.connections == 2
    hub.admit("192.0.2.1")


@pytest.mark.parametrize("last_event_id", [0, 5])
async def test_an_old_resume_point_gets_one_refresh_not_the_history(
    gazetteer, ids, last_event_id: int
) -> None:
    street = ids["agar_grove"]
    sel = Areas(gazetteer).for_streets([street])
    log = [_change(seq, street) for seq in range(1, 5001)]
    pages: list[int] = []

    async def backlog(after: int) -> list[Change]:
        pages.append(after)
        return [c for c in log if c.seq > after][:500]

    async def current() -> int:
        return log[-1].seq

    hub = Hub(8)
    released: list[bool] = []
    events = stream(hub, sel, last_event_id, backlog, current, release=lambda: released.append(True))
    first = await anext(events)
    assert first.event == "refresh" and first.id == "5000"
    hub.publish(_change(5001, street))
    live = await asyncio.wait_for(anext(events), 5)
    assert live.id == "5001"
    assert pages == [5000]  # no page of the old history was read
    await events.aclose()
    assert released == [True]


async def test_a_recent_resume_point_is_replayed(gazetteer, ids) -> None:
    street = ids["agar_grove"]
    sel = Areas(gazetteer).for_streets([street])
    log = [_change(seq, street) for seq in range(1, 11)]

    async def backlog(after: int) -> list[Change]:
        return [c for c in log if c.seq > after]

    async def current() -> int:
        return log[-1].seq

    events = stream(Hub(8), sel, 8, backlog, current)
    assert [(await anext(events)).id for _ in range(2)] == ["9", "10"]
    await events.aclose()


async def test_from_the_start_is_replayed_when_the_history_is_short(gazetteer, ids) -> None:
    street = ids["agar_grove"]
    sel = Areas(gazetteer).for_streets([street])
    log = [_change(seq, street) for seq in range(1, 4)]

    async def backlog(after: int) -> list[Change]:
        return [c for c in log if c.seq > after]

    async def current() -> int:
        return log[-1].seq

    events = stream(Hub(8), sel, 0, backlog, current)
    assert [(await anext(events)).id for _ in range(3)] == ["1", "2", "3"]
    await events.aclose()
