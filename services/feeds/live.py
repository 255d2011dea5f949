"""In-process fan-out of prompt changes to Server-Sent Events clients, with resumption by event id.

The listener publishes each committed change here; every connected client has a bounded
asyncio queue. A client too slow to keep up is disconnected rather than slowing everyone: its
browser reconnects with Last-Event-ID and catches up from the database.
"""

from __future__ import annotations

import asyncio
import json
from collections.abc import AsyncIterator, Awaitable, Callable

from sse_starlette.event import ServerSentEvent

from shared.gazetteer.selection import Selection

from .repository import Change

__all__ = ["Hub", "sse_event", "stream"]


class Hub:
    def __init__(self, queue_size: int) -> None:
        self.queue_size = queue_size
        self._queues: set[asyncio.Queue[Change | None]] = set()

    @property
    def clients(self) -> int:
        return len(self._queues)

    def subscribe(self) -> asyncio.Queue[Change | None]:
        queue: asyncio.Queue[Change | None] = asyncio.Queue(self.queue_size)
        self._queues.add(queue)
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        self._queues.discard(queue)

    def publish(self, change: Change) -> None:
        for queue in list(self._queues):
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                self._queues.discard(queue)
                queue.get_nowait()  # make room for the end-of-stream marker
                queue.put_nowait(None)


def sse_event(change: Change) -> ServerSentEvent:
    """`prompt` (a published or revised entry) or `retired` (drop the entry with this prompt_id)."""
    event = "prompt" if change.kind == "published" else "retired"
    return ServerSentEvent(json.dumps(change.entry, ensure_ascii=False), event=event, id=str(change.seq))


async def stream(
    hub: Hub,
    selection: Selection,
    last_event_id: int | None,
    backlog: Callable[[int], Awaitable[list[Change]]],
    current: Callable[[], Awaitable[int]],
) -> AsyncIterator[ServerSentEvent]:
    """Replay what a resuming client missed, then live changes, each at most once, in order."""
    queue = hub.subscribe()  # before reading the backlog, so nothing falls between the two
    try:
        sent = last_event_id if last_event_id is not None else await current()
        while True:  # the backlog is read in pages
            page = await backlog(sent)
            if not page:
                break
            for change in page:
                sent = change.seq
                if change.visible_to(selection):
                    yield sse_event(change)
        while True:
            change = await queue.get()
            if change is None:
                return
            if change.seq <= sent:
                continue
            sent = change.seq
            if change.visible_to(selection):
                yield sse_event(change)
    finally:
        hub.unsubscribe(queue)
