"""Drive a sink from a signal stream: as fast as possible in batches (bulk), or paced (live).

Live pacing continues the simulation compressed in time: each signal is stamped with the moment it
is sent (never in the future), in the model's order, so raises are followed by their withdrawals
minutes later instead of days - what a demo needs to show needs opening and closing.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

from shared.contracts import CouncilSignal

from .sinks import Sink, Tally

__all__ = ["Progress", "send_bulk", "send_paced"]

LIVE_TICK_S = 0.1


@dataclass
class Progress:
    signals: int = 0
    seconds: float = 0.0
    tally: Tally = field(default_factory=Tally)

    def add(self, n: int, tally: Tally) -> None:
        self.signals += n
        self.tally.update(tally)

    def summary(self) -> str:
        rate = self.signals / self.seconds if self.seconds else 0.0
        outcomes = ", ".join(f"{k} {v}" for k, v in sorted(self.tally.items()) if v)
        return f"{self.signals} signals in {self.seconds:.1f}s ({rate:.0f}/s): {outcomes or 'nothing sent'}"


async def send_bulk(
    stream: Iterator[CouncilSignal],
    sink: Sink,
    *,
    limit: int | None,
    batch_size: int = 1000,
    progress: Progress | None = None,
) -> Progress:
    """Send up to `limit` signals (all, if None; the stream must then end) in batches."""
    progress = progress or Progress()
    started = time.monotonic()
    batch: list[CouncilSignal] = []
    sent = 0
    for signal in stream:
        batch.append(signal)
        sent += 1
        if len(batch) >= batch_size:
            progress.add(len(batch), await sink.send(batch))
            batch = []
        if limit is not None and sent >= limit:
            break
    if batch:
        progress.add(len(batch), await sink.send(batch))
    progress.seconds += time.monotonic() - started
    return progress


async def send_paced(
    stream: Iterator[CouncilSignal],
    sink: Sink,
    *,
    rate: float,
    limit: int | None = None,
    duration_s: float | None = None,
    progress: Progress | None = None,
) -> Progress:
    """Send `rate` signals a second, restamped to the time of sending, until `limit` or `duration_s`."""
    if rate <= 0:
        raise ValueError("rate must be positive")
    progress = progress or Progress()
    started = time.monotonic()
    sent = 0
    while limit is None or sent < limit:
        elapsed = time.monotonic() - started
        if duration_s is not None and elapsed >= duration_s:
            break
        due = int(elapsed * rate) + 1 - sent
        if limit is not None:
            due = min(due, limit - sent)
        now = dt.datetime.now(dt.UTC)
        batch = [s.model_copy(update={"occurred_at": now}) for s in _take(stream, max(due, 0))]
        if due > 0 and not batch:
            break
        if batch:
            progress.add(len(batch), await sink.send(batch))
            sent += len(batch)
        await asyncio.sleep(max(0.0, (sent / rate) - (time.monotonic() - started)) or LIVE_TICK_S / 10)
    progress.seconds += time.monotonic() - started
    return progress


def _take(stream: Iterator[CouncilSignal], n: int) -> list[CouncilSignal]:
    out: list[CouncilSignal] = []
    if n <= 0:
        return out
    for signal in stream:
        out.append(signal)
        if len(out) >= n:
            break
    return out
