"""Feed ETags from their inputs (before rendering) and the LRU of rendered bodies."""

from __future__ import annotations

import dataclasses
import datetime as dt

from services.feeds.feedcache import BodyCache, feed_etag
from services.feeds.repository import FeedState
from services.feeds.settings import FeedsSettings
from services.feeds.views import FeedTarget
from shared.gazetteer.selection import Selection

SETTINGS = FeedsSettings(
    database_url="postgresql://x@localhost/x", kafka_bootstrap_servers="localhost:9092", _env_file=None
)
TARGET = FeedTarget(
    Selection("street", "Agar Grove", ("s-1",), ("u-1",), ("W1",)),
    "/streets/s-1",
    "Agar Grove",
    "What neighbours could help with.",
    "street/s-1",
    subscribe={"kind": "street", "street_id": "s-1"},
    notice_path="/streets/s-1/notice",
)
STATE = FeedState(12, 3, dt.datetime(2026, 5, 2, 14, 37, 21, tzinfo=dt.UTC), None)


def test_etag_is_strong_stable_and_moves_with_every_input():
    etag = feed_etag(TARGET, "atom", SETTINGS, STATE)
    assert etag.startswith('"') and len(etag) == 34
    assert feed_etag(TARGET, "atom", SETTINGS, FeedState(12, 3, STATE.last_modified)) == etag
    variants = [
        feed_etag(TARGET, "rss", SETTINGS, STATE),
        feed_etag(TARGET, "atom", SETTINGS.model_copy(update={"base_url": "https://other.example"}), STATE),
        feed_etag(TARGET, "atom", SETTINGS.model_copy(update={"feed_max_entries": 5}), STATE),
        feed_etag(TARGET, "atom", SETTINGS.model_copy(update={"publisher": "someone"}), STATE),
        feed_etag(TARGET, "atom", SETTINGS, dataclasses.replace(STATE, seq=13)),
        feed_etag(TARGET, "atom", SETTINGS, dataclasses.replace(STATE, count=2)),
        feed_etag(TARGET, "atom", SETTINGS, dataclasses.replace(STATE, last_modified=None)),
        feed_etag(TARGET, "atom", SETTINGS, dataclasses.replace(STATE, counts="abc")),
    ]
    changed = {
        "path": "/streets/s-2",
        "title": "Agar Place",
        "description": "x",
        "tag_key": "street/s-2",
        "private": True,
        "subscribe": None,
        "alerts": {"kind": "street", "street_id": "s-9"},
        "notice_path": None,
        "unsubscribe_path": "/u",
        "extra": {"k": 1},
        "selection": dataclasses.replace(TARGET.selection, unit_ids=("u-2",)),
    }
    assert set(changed) == {f.name for f in dataclasses.fields(FeedTarget)}  # every field is an input
    variants += [
        feed_etag(dataclasses.replace(TARGET, **{k: v}), "atom", SETTINGS, STATE) for k, v in changed.items()
    ]
    assert len({etag, *variants}) == len(variants) + 1


def test_body_cache_evicts_least_recently_used_within_its_budget():
    cache = BodyCache(40)
    for key in "abc":
        cache.put(key, key.encode() * 10)
    assert cache.get("a") == b"a" * 10  # a is now the most recent
    cache.put("d", b"d" * 10)
    cache.put("e", b"e" * 10)
    assert cache.get("b") is None  # the least recently used went first
    assert all(cache.get(k) is not None for k in "acde") and cache.size == 40
    cache.put("big", b"x" * 11)  # more than a quarter of the budget: never cached
    assert cache.get("big") is None
    off = BodyCache(0)
    off.put("a", b"a")
    assert off.get("a") is None and len(off) == 0
