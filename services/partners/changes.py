"""One polled batch of street-needs.v1: validate each record, then fold the batch per key in Kafka order."""

from __future__ import annotations

import datetime as dt
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from aiokafka.structs import ConsumerRecord

from shared.contracts import STREET_NEEDS, ContractError, Tombstone

__all__ = ["Change", "Current", "HistoryRow", "Plan", "Rejected", "Removal", "fold", "parse"]


@dataclass(frozen=True, slots=True)
class Change:
    """A StreetNeedChanged value, as JSON-mode data (what is stored and sent)."""

    key: str
    need: dict[str, Any]

    @property
    def version(self) -> int:
        return int(self.need["version"])


# A tombstone: the key is no longer publishable (the contract's own Tombstone, one definition).
Removal = Tombstone


@dataclass(frozen=True, slots=True)
class Rejected:
    record: ConsumerRecord
    reason: str
    errors: tuple[str, ...] = ()


@dataclass(frozen=True, slots=True)
class Current:
    """The stored current state of a key, as far as a removal needs it."""

    area_id: str
    category: str
    area_kind: str
    ward_code: str | None
    version: int


@dataclass(frozen=True, slots=True)
class HistoryRow:
    key: str
    area_id: str
    category: str
    area_kind: str
    ward_code: str | None
    version: int
    change: str  # 'changed' or 'removed'
    payload: dict[str, Any] | None
    changed_at: dt.datetime


@dataclass(slots=True)
class Plan:
    """What one batch does to the database, equivalent to applying its records one by one."""

    deletes: list[str] = field(default_factory=list)  # keys whose stored state goes first
    upserts: list[dict[str, Any]] = field(default_factory=list)  # last state per key (version-guarded)
    history: list[HistoryRow] = field(default_factory=list)  # Kafka order, one per (key, version, change)


def parse(records: Iterable[ConsumerRecord]) -> tuple[list[Change | Removal], list[Rejected]]:
    """Valid changes and tombstones in Kafka order (decoded by the topic's contract), and the records
    to dead-letter with why."""
    ops: list[Change | Removal] = []
    rejected: list[Rejected] = []
    for record in records:
        try:
            event = STREET_NEEDS.decode(record.key, record.value)
        except ContractError as exc:
            rejected.append(Rejected(record, exc.reason, exc.errors))
            continue
        ops.append(
            event if isinstance(event, Tombstone) else Change(event.key, event.model_dump(mode="json"))
        )
    return ops, rejected


def _current(change: Change) -> Current:
    need = change.need
    return Current(
        need["area_id"], need["category"], need["area_kind"], need.get("ward_code"), need["version"]
    )


def fold(ops: Sequence[Change | Removal], stored: Mapping[str, Current], removed_at: dt.datetime) -> Plan:
    """Replay the batch per key in order, as one record per transaction would have done.

    `stored` must hold the stored state of every key the batch removes (a key absent from it has
    none). A change replaces the state unless an older version than the state's; a removal deletes
    the state and records a `removed` row for the version it removed, or does nothing without one.
    Every change gets a `changed` row (even one too old to become current), as before batching.
    """
    state: dict[str, Change | Current | None] = {}
    removed: set[str] = set()
    plan = Plan()
    seen: set[tuple[str, int, str]] = set()

    def record(row: HistoryRow) -> None:
        if (marker := (row.key, row.version, row.change)) not in seen:  # the first one wins, as in SQL
            seen.add(marker)
            plan.history.append(row)

    for op in ops:
        now = state[op.key] if op.key in state else stored.get(op.key)
        if isinstance(op, Change):
            need = op.need
            record(
                HistoryRow(
                    op.key,
                    need["area_id"],
                    need["category"],
                    need["area_kind"],
                    need.get("ward_code"),
                    op.version,
                    "changed",
                    need,
                    dt.datetime.fromisoformat(need["published_at"]),
                )
            )
            if now is None or now.version <= op.version:
                state[op.key] = op
            continue
        removed.add(op.key)
        state[op.key] = None
        if now is not None:
            gone = _current(now) if isinstance(now, Change) else now
            record(
                HistoryRow(
                    op.key,
                    gone.area_id,
                    gone.category,
                    gone.area_kind,
                    gone.ward_code,
                    gone.version,
                    "removed",
                    None,
                    removed_at,
                )
            )
    plan.deletes = sorted(removed)
    plan.upserts = [s.need for s in state.values() if isinstance(s, Change)]
    return plan
