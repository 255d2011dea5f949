"""Folding a street-needs.v1 batch per key gives what one record per transaction gave."""

from __future__ import annotations

import datetime as dt

from aiokafka.structs import ConsumerRecord

from services.partners.changes import Change, Current, Removal, fold, parse
from shared.contracts import STREET_NEEDS, StreetNeedChanged
from tests.support import place_need

REMOVED_AT = dt.datetime(2026, 11, 22, 12, 0, tzinfo=dt.UTC)
KEY = "way/1:fly_tipping"


def _need(version: int, area_id: str = "way/1", count: int = 3) -> StreetNeedChanged:
    return place_need(area_id, version, count=count)


def _change(version: int, count: int = 3) -> Change:
    return Change(KEY, _need(version, count=count).model_dump(mode="json"))


def _record(offset: int, key: bytes | None, value: bytes | None) -> ConsumerRecord:
    return ConsumerRecord(STREET_NEEDS.name, 0, offset, 0, 0, key, value, None, 0, 0, ())


def _history(plan) -> list[tuple[str, int]]:
    return [(h.change, h.version) for h in plan.history]


def test_parse_keeps_kafka_order_and_names_why_records_are_rejected() -> None:
    good = _need(1)
    ops, rejected = parse(
        [
            _record(0, KEY.encode(), good.model_dump_json().encode()),
            _record(1, KEY.encode(), b"{not json"),
            _record(2, b"way/2:fly_tipping", good.model_dump_json().encode()),  # key of another area
            _record(3, None, None),
            _record(4, KEY.encode(), None),
        ]
    )
    assert ops == [Change(KEY, good.model_dump(mode="json")), Removal(KEY)]
    assert [(r.record.offset, r.reason) for r in rejected] == [
        (1, "value is not a valid StreetNeedChanged"),
        (2, "key does not match the value's {area_id}:{category}"),
        (3, "a record without a value names nothing to remove"),
    ]
    assert rejected[0].errors


def test_the_latest_version_wins_and_every_change_is_history() -> None:
    plan = fold([_change(1), _change(3, count=9), _change(2)], {}, REMOVED_AT)
    assert [n["version"] for n in plan.upserts] == [3] and plan.upserts[0]["count"] == 9
    assert _history(plan) == [("changed", 1), ("changed", 3), ("changed", 2)]
    assert plan.deletes == []


def test_a_change_seen_twice_in_a_batch_is_one_history_row_and_the_later_value_is_current() -> None:
    plan = fold([_change(1, count=3), _change(1, count=4)], {}, REMOVED_AT)
    assert _history(plan) == [("changed", 1)] and plan.history[0].payload["count"] == 3
    assert plan.upserts[0]["count"] == 4  # an equal version replaces, as the SQL guard (<=) does


def test_a_tombstone_removes_the_version_the_batch_left_current() -> None:
    plan = fold([_change(1), _change(2), Removal(KEY)], {}, REMOVED_AT)
    assert plan.deletes == [KEY] and plan.upserts == []
    assert _history(plan) == [("changed", 1), ("changed", 2), ("removed", 2)]
    assert plan.history[-1].changed_at == REMOVED_AT and plan.history[-1].payload is None


def test_a_tombstone_then_a_change_replaces_the_stored_state_whatever_its_version() -> None:
    stored = {KEY: Current("way/1", "fly_tipping", "street", "E05000001", 5)}
    plan = fold([_change(4), Removal(KEY), _change(1)], stored, REMOVED_AT)
    assert _history(plan) == [("changed", 4), ("removed", 5), ("changed", 1)]
    assert plan.deletes == [KEY] and [n["version"] for n in plan.upserts] == [1]


def test_a_tombstone_for_nothing_stored_records_nothing() -> None:
    plan = fold([Removal(KEY), Removal(KEY)], {}, REMOVED_AT)
    assert plan.history == [] and plan.upserts == []
