"""In-process fan-out of prompt changes to Server-Sent Events clients, with resumption by event id.

The listener publishes each committed change here; every connected client has a bounded
asyncio queue, and is given only the changes its selection sees (a street's page is not woken, nor
its queue filled, by every other street's changes: a consumer transaction commits hundreds at once
under load). A client too slow to keep up is disconnected rather than slowing everyone: its
browser reconnects with Last-Event-ID and catches up from the database.

Connections are capped, in all and per client (`Hub.admit`: 503 and 429 beyond). A resume point
more than `REPLAY_LIMIT` changes old (0 included), or past the newest change, is not followed from:
the client gets one `refresh` event (reload the feed's current state, e.g. its JSON Feed) and
continues live from now.
"""

from __future__ import annotations

import asyncio
import json
from collections import Counter
from collections.abc import AsyncIterator, Awaitable, Callable

from sse_starlette.event import ServerSentEvent

from shared.gazetteer.selection import Selection
from shared.http import Problem

from .repository import Change

__all__ = ["MAX_CLIENTS", "MAX_PER_CLIENT", "REPLAY_LIMIT", "Hub", "refresh_event", "sse_event", "stream"]

MAX_CLIENTS = 2000  # open event streams per replica
MAX_PER_CLIENT = 4  # per client (address, IPv6 /64): a few tabs, not a flood
REPLAY_LIMIT = 1000  # changes a resuming client is sent one by one; older resume points refresh


class Hub:
    def __init__(
        self, queue_size: int, *, max_clients: int = MAX_CLIENTS, max_per_client: int = MAX_PER_CLIENT
    ) -> None:
        self.queue_size = queue_size
        self.max_clients, self.max_per_client = max_clients, max_per_client
        self._queues: dict[asyncio.Queue[Change | None], Selection] = {}
        self._open: Counter[str] = Counter()
        # Set by the listener, read by views.feed_response's validator cache: the last change seq fanned
        # out (None until caught up after a (re)connection), the number of "I can help" count changes
        # notified (and of connections, whose gaps may have missed some), and when it last confirmed that
        # nothing was missed (time.monotonic()).
        self.seen_seq: int | None = None
        self.counts_seen = 0
        self.caught_up_at = float("-inf")

    def admit(self, client: str) -> Callable[[], None]:
        """Count one more stream for `client`, or raise a 503/429 Problem; returns its release."""
        if sum(self._open.values()) >= self.max_clients:
            raise Problem(
                503, "Too many live connections", "try again shortly", headers={"Retry-After": "30"}
            )
        if self._open[client] >= self.max_per_client:
            raise Problem(
                429,
                "Too many live connections from you",
                f"at most {self.max_per_client} open event streams per client",
                headers={"Retry-After": "30"},
            )
        self._open[client] += 1
        released = False

        def release() -> None:
            nonlocal released
            if not released:
                released = True
                self._open[client] -= 1
                if self._open[client] <= 0:
                    del self._open[client]

        return release

    @property
    def connections(self) -> int:
        return sum(self._open.values())

    @property
    def clients(self) -> int:
        return len(self._queues)

    def subscribe(self, selection: Selection) -> asyncio.Queue[Change | None]:
        """A queue of the changes `selection` sees, from now on; None in it ends the stream."""
        queue: asyncio.Queue[Change | None] = asyncio.Queue(self.queue_size)
        self._queues[queue] = selection
        return queue

    def unsubscribe(self, queue: asyncio.Queue[Change | None]) -> None:
        self._queues.pop(queue, None)

    def publish(self, change: Change) -> None:
        for queue, selection in list(self._queues.items()):
            if not change.visible_to(selection):
                continue
            try:
                queue.put_nowait(change)
            except asyncio.QueueFull:
                del self._queues[queue]
                queue.get_nowait()  # make room for the end-of-stream marker
                queue.put_nowait(None)


def sse_event(change: Change) -> ServerSentEvent:
    """`prompt` (a published or revised entry) or `retired` (drop the entry with this prompt_id)."""
    event = "prompt" if change.kind == "published" else "retired"
    return ServerSentEvent(change.data, event=event, id=str(change.seq))


def refresh_event(seq: int) -> ServerSentEvent:
    """Tell a client whose resume point is too old or unknown to reload the current state; live from `seq`."""
    data = json.dumps(
        {"reason": "the resume point is older than this stream replays, or unknown; reload the feed"}
    )
    return ServerSentEvent(data, event="refresh", id=str(seq))


async def stream(
    hub: Hub,
    selection: Selection,
    last_event_id: int | None,
    backlog: Callable[[int], Awaitable[list[Change]]],
    current: Callable[[], Awaitable[int]],
    *,
    release: Callable[[], None] = lambda: None,
    replay_limit: int = REPLAY_LIMIT,
) -> AsyncIterator[ServerSentEvent]:
    """Replay what a resuming client missed, then live changes, each at most once, in order."""
    queue = hub.subscribe(selection)  # before reading the backlog, so nothing falls between the two
    try:
        sent = last_event_id if last_event_id is not None else await current()
        if last_event_id is not None:
            now = await current()
            # 0 ("from the start") is no exception: at most replay_limit changes are ever replayed. An id
            # past the newest change was never sent from this history (a restored database, a made-up
            # id): following from it would skip every change up to it, so it refreshes too.
            if now - last_event_id > replay_limit or last_event_id > now:
                sent = now
                yield refresh_event(now)
        while True:  # the backlog is read in pages
            page = await backlog(sent)
            if not page:
                break
            for change in page:
                sent = change.seq
                if change.visible_to(selection):
                    yield sse_event(change)
        while True:
            update = await queue.get()
            if update is None:
                return
            if update.seq <= sent:
                continue
            sent = update.seq
            yield sse_event(update)  # the hub queued only what the selection sees
    finally:
        hub.unsubscribe(queue)
        release()
