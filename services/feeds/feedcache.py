"""A feed's strong ETag from its inputs, known before rendering, and an LRU of rendered bodies by ETag.

Every feed document is a pure function of: the code and templates that render it, the format, the
settings it shows (base URL, tag authority, publisher, entry limit), the feed target (path, title,
selection, links) and the database state of the prompts it can see (`repository.FeedState`). The ETag
is a digest of exactly those, so a 304 needs one small query and no rendering, and two renderings
with one ETag are the same bytes (which is what makes a strong ETag, and the body cache, safe).
"""

from __future__ import annotations

import asyncio
import hashlib
import time
from collections import OrderedDict
from collections.abc import Awaitable, Callable, Hashable
from importlib.metadata import version
from pathlib import Path
from typing import Any, TypeVar

import shared.contracts

from .repository import FeedState
from .settings import FeedsSettings

__all__ = [
    "RENDER_VERSION",
    "BodyCache",
    "Flights",
    "ValidatorCache",
    "feed_etag",
    "local_writes",
    "note_local_write",
]


def _render_version() -> str:
    """A digest of everything that shapes a document's bytes besides its data: this package's code
    and templates, the contracts (category names) and the rendering libraries' versions."""
    here = Path(__file__).parent
    contracts = Path(shared.contracts.__file__).parent
    files = sorted([*here.rglob("*.py"), *here.glob("templates/*"), *contracts.rglob("*.py")])
    digest = hashlib.sha256()
    for path in files:
        digest.update(path.name.encode() + b"\0" + path.read_bytes() + b"\0")
    for lib in ("feedgen", "jinja2", "lxml"):
        digest.update(f"{lib}={version(lib)}\0".encode())
    return digest.hexdigest()[:16]


RENDER_VERSION = _render_version()


def feed_etag(target: object, fmt: str, settings: FeedsSettings, state: FeedState) -> str:
    """Strong ETag of `target`'s document in `fmt` given `state`. `target` is a views.FeedTarget, whose
    repr names every field (and its selection's street, unit and ward ids); the token in a private
    path is only hashed."""
    last = state.last_modified.isoformat() if state.last_modified else ""
    key = "\0".join(
        (
            RENDER_VERSION,
            fmt,
            settings.base_url,
            settings.tag_authority,
            settings.publisher,
            str(settings.feed_max_entries),
            repr(target),
            str(state.seq),
            str(state.count),
            last,
            state.counts or "",
        )
    )
    return f'"{hashlib.sha256(key.encode()).hexdigest()[:32]}"'


class BodyCache:
    """Least-recently-used rendered bodies by ETag, within a byte budget (0 disables it)."""

    def __init__(self, max_bytes: int) -> None:
        self.max_bytes = max_bytes
        self.size = 0
        self._bodies: OrderedDict[str, bytes] = OrderedDict()

    def __len__(self) -> int:
        return len(self._bodies)

    def get(self, etag: str) -> bytes | None:
        body = self._bodies.get(etag)
        if body is not None:
            self._bodies.move_to_end(etag)
        return body

    def put(self, etag: str, body: bytes) -> None:
        if len(body) > self.max_bytes // 4 or etag in self._bodies:  # one feed may not flush the rest
            return
        self._bodies[etag] = body
        self.size += len(body)
        while self.size > self.max_bytes:
            _, old = self._bodies.popitem(last=False)
            self.size -= len(old)


_local_writes = 0  # prompt changes committed by this process (read-your-writes before the NOTIFY)


def note_local_write() -> None:
    global _local_writes
    _local_writes += 1


def local_writes() -> int:
    return _local_writes


class ValidatorCache:
    """A feed's validators (ETag, headers, Last-Modified) by (target, format), kept while no prompt
    change has been fanned out since they were computed, so a conditional GET (and a 200 whose body is
    in the BodyCache) needs no query at all.

    `seen` is the last change seq this replica's listener fanned out (every write to feeds.prompts is
    a numbered change, NOTIFYed on commit) with this process's own count of writes (so a write here is
    seen at once, before its notification): an entry computed at `seen` is current while it has not
    moved. The TTL bounds staleness should the listener miss changes unawares (a silent network
    loss; below the feeds' max-age): an entry is current for `ttl_s` after it was computed or after
    the listener last confirmed it missed nothing (`fresh_at`, every few seconds while it is well),
    whichever is later.
    """

    def __init__(self, max_entries: int = 50_000, ttl_s: float = 5.0) -> None:
        self.max_entries, self.ttl_s = max_entries, ttl_s
        self._entries: OrderedDict[tuple[str, str], tuple[object, float, tuple[Any, ...]]] = OrderedDict()

    def get(
        self, key: tuple[str, str], seen: object, fresh_at: float = float("-inf")
    ) -> tuple[Any, ...] | None:
        found = self._entries.get(key)
        if found is None:
            return None
        seq, at, value = found
        if seq != seen or time.monotonic() - max(at, fresh_at) > self.ttl_s:
            del self._entries[key]
            return None
        return value

    def put(self, key: tuple[str, str], seen: object, value: tuple[Any, ...]) -> None:
        self._entries[key] = (seen, time.monotonic(), value)
        self._entries.move_to_end(key)
        while len(self._entries) > self.max_entries:
            self._entries.popitem(last=False)


T = TypeVar("T")


class Flights:
    """Concurrent look-ups of one key share the first one's result: after an invalidation, the 64
    connections asking for one feed cost one query (and at most one rendering), not 64 queued on the pool.

    The look-up runs as its own task, so a caller that goes away does not cancel it for the others.
    Callers must put in the key everything the result depends on (e.g. the validator cache's `seen`):
    a caller that arrives after a change it must see starts a new look-up.
    """

    def __init__(self) -> None:
        self._running: dict[Hashable, asyncio.Task[Any]] = {}

    def __len__(self) -> int:
        return len(self._running)

    async def run(self, key: Hashable, look_up: Callable[[], Awaitable[T]]) -> T:
        task = self._running.get(key)
        if task is None:
            task = asyncio.ensure_future(look_up())
            self._running[key] = task
            task.add_done_callback(lambda done: self._finished(key, done))
        return await asyncio.shield(task)

    def _finished(self, key: Hashable, task: asyncio.Task[Any]) -> None:
        if self._running.get(key) is task:
            del self._running[key]
        if not task.cancelled():
            task.exception()  # retrieved: when every caller went away, it is not "never retrieved"
