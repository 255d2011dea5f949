"""The peer: Quix Streams counting distinct active subjects per (street, category) in a window.

Same input as the aggregator (`signals-anonymised.v1`, keyed by street), same broker. Per street
key, a 7-day tumbling window (the shortest place lifetime; Kafka timestamps) reduces the events
into {category: {subject_key: 1}}: `raised` adds the subject, `withdrawn` removes it. Every update
emits {street_id, category, count} for the event's category to an output topic. State lives in
RocksDB with Quix's changelog topic (its durability). Settings come from PEER_* env; PEER_GUARANTEE
is Quix's `processing_guarantee`, "at-least-once" (its default) or "exactly-once" (Kafka transactions:
outputs, changelog and offsets commit together, as the aggregator's state and offsets do).

Run: `python bench/aggregator_peer/quix_count.py` (stops on SIGTERM).
"""

from __future__ import annotations

import datetime as dt
import os

from quixstreams import Application

from shared.contracts import SIGNALS_ANONYMISED

WINDOW = dt.timedelta(days=7)


def initializer(value: dict) -> dict:
    return reducer({"subjects": {}, "last": None}, value)


def reducer(agg: dict, value: dict) -> dict:
    category = value["category"]
    subjects = agg["subjects"].setdefault(category, {})
    if value["action"] == "raised":
        subjects[value["subject_key"]] = 1
    else:
        subjects.pop(value["subject_key"], None)
    agg["last"] = category
    return agg


def emitted(window: dict, key: str, _timestamp: int, _headers) -> dict:
    agg = window["value"]
    return {"street_id": key, "category": agg["last"], "count": len(agg["subjects"][agg["last"]])}


def main() -> None:
    guarantee = os.environ.get("PEER_GUARANTEE", "at-least-once")
    if guarantee not in ("at-least-once", "exactly-once"):
        raise SystemExit(f"PEER_GUARANTEE must be at-least-once or exactly-once, not {guarantee!r}")
    app = Application(
        broker_address=os.environ["PEER_BOOTSTRAP"],
        consumer_group=os.environ["PEER_GROUP"],
        auto_offset_reset="earliest",
        commit_interval=1.0,
        processing_guarantee="exactly-once" if guarantee == "exactly-once" else "at-least-once",
        state_dir=os.environ["PEER_STATE_DIR"],
        loglevel="WARNING",
    )
    source = app.topic(SIGNALS_ANONYMISED.name, key_deserializer="str", value_deserializer="json")
    output = app.topic(os.environ["PEER_OUTPUT_TOPIC"], key_serializer="str", value_serializer="json")
    sdf = app.dataframe(source)
    sdf = sdf.tumbling_window(WINDOW).reduce(reducer, initializer).current()
    sdf = sdf.apply(emitted, metadata=True)
    sdf.to_topic(output)
    app.run()


if __name__ == "__main__":
    main()
