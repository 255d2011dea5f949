"""One consumed batch in one transaction: fold, refresh the place view, queue changes, move offsets."""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import asyncpg
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from shared.contracts import (
    CATALOGUE,
    DEAD_LETTERS,
    SIGNALS_ANONYMISED,
    STREET_NEEDS,
    Sensitivity,
    SignalAnonymised,
    info,
)
from shared.kafka import dead_letter, validation_errors

from . import repository as repo
from .areas import Areas
from .state import place_stats, reduce_batch
from .views import LIVE, diff, place_views, place_withheld

__all__ = [
    "PLACE_CATEGORIES", "BatchOutcome", "parse_records", "process_batch", "refresh_forever",
    "refresh_place",
]

log = logging.getLogger(__name__)
PLACE_CATEGORIES = tuple(sorted(str(c) for c, i in CATALOGUE.items() if i.sensitivity is Sensitivity.PLACE))


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    events: int
    dead_lettered: int
    changes: int


def parse_records(
    records: Iterable[ConsumerRecord],
) -> tuple[list[SignalAnonymised], list[tuple[bytes, bytes]]]:
    """Valid events, and dead-letter (key, value) pairs for what is not a valid SignalAnonymised."""
    events, dead = [], []
    for rec in records:
        try:
            if rec.value is None:
                raise ValueError("empty value")
            event = SignalAnonymised.model_validate_json(rec.value)
            if event.sensitivity is not info(event.category).sensitivity:
                raise ValueError(f"sensitivity {event.sensitivity} contradicts category {event.category}")
            events.append(event)
        except (ValidationError, ValueError) as exc:
            errors = validation_errors(exc) if isinstance(exc, ValidationError) else (str(exc),)
            letter = dead_letter(service="aggregator", source_topic=rec.topic, value=rec.value,
                                 key=rec.key, reason="not a valid SignalAnonymised", errors=errors,
                                 partition=rec.partition, offset=rec.offset)
            dead.append((rec.topic.encode(), letter.model_dump_json().encode()))
    return events, dead


async def refresh_place(conn: asyncpg.Connection, areas: Areas, streets: Iterable[str] | None,
                        now: dt.datetime, trend_days: int) -> int:
    """Recompute the place view of the areas covering `streets` (all areas when None); queue changes.

    Runs inside the caller's transaction, under per-area locks so that replicas consuming different
    partitions serialise on an area they share and the later one sees the other's committed rows.
    """
    if streets is None:
        previous_all = await repo.load_previous(conn, sensitivity="place")
        area_ids = {a.area_id for a in areas.place_area_of.values()} | {k[0] for k in previous_all}
        member_streets: set[str] | None = None
    else:
        streets = set(streets)
        area_ids = {areas.place_area_of[s].area_id for s in streets if s in areas.place_area_of}
        member_streets = set(streets)
        for area_id in area_ids:
            member_streets.update(areas.area(area_id).street_ids)
    if not area_ids and not member_streets:
        return 0
    await repo.lock_areas(conn, area_ids)
    rows = await repo.rows(conn, streets=sorted(member_streets) if member_streets is not None else None,
                           categories=PLACE_CATEGORIES)
    stats = place_stats(rows, now, trend_days)
    views = place_views(stats, areas, area_ids)
    previous = await repo.load_previous(conn, sensitivity="place", area_ids=sorted(area_ids))
    scope = set(views) | {k for k, p in previous.items() if p.live}
    changes = diff(views, previous, scope, now)
    await repo.write_changes(conn, changes, areas, STREET_NEEDS.name)
    await repo.record_withheld(conn, LIVE, place_withheld(stats, areas))
    return len(changes)


async def process_batch(conn: asyncpg.Connection, records: Sequence[ConsumerRecord],
                        moves: dict[int, tuple[int | None, int, int]], areas: Areas, *,
                        now: dt.datetime, trend_days: int) -> BatchOutcome:
    """Apply a batch exactly once: its effect and the new positions commit together or not at all."""
    events, dead = parse_records(records)
    delta = reduce_batch(events)
    async with conn.transaction():
        await repo.apply_delta(conn, delta)
        touched = delta.touched() | await repo.streets_of_withdrawals(conn, delta.withdrawn)
        place_streets = {s for s, c in touched if info(c).sensitivity is Sensitivity.PLACE}
        changes = await refresh_place(conn, areas, place_streets, now, trend_days) if place_streets else 0
        await repo.insert_dead_letters(conn, DEAD_LETTERS.name, dead)
        await repo.claim_offsets(conn, SIGNALS_ANONYMISED.name, moves)
    if dead:
        log.warning("dead-lettered invalid signals", extra={"count": len(dead)})
    return BatchOutcome(len(events), len(dead), changes)


async def refresh_forever(pool: asyncpg.Pool, areas: Areas, *, interval: float, trend_days: int) -> None:
    """Re-evaluate every place area now and then: signals expire and trend windows slide without events."""
    while True:
        await asyncio.sleep(interval)
        try:
            async with pool.acquire() as conn, conn.transaction():
                await refresh_place(conn, areas, None, dt.datetime.now(dt.UTC), trend_days)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception("place view refresh failed; will retry")
