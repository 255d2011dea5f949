"""Atom 1.0, RSS 2.0 and JSON Feed 1.1 documents: parsed by feedparser, checked by structure."""

from __future__ import annotations

import datetime as dt
import json

import feedparser
from lxml import etree

from services.feeds.entries import entry_from_prompt, tag_uri
from services.feeds.formats import FeedMeta, atom, json_feed, rss

BASE = "https://feeds.example.org"
A = "{http://www.w3.org/2005/Atom}"


def _meta(fmt: str, updated=None) -> FeedMeta:
    return FeedMeta(
        id=tag_uri("example.org,2026", "feed", "street/s-1"),
        title="Agar Grove",
        description="What neighbours could help with on Agar Grove.",
        home_page_url=f"{BASE}/streets/s-1",
        feed_url=f"{BASE}/streets/s-1.{fmt}",
        publisher="streetneeds",
        updated=updated,
    )


def _entries(prompt, person_prompt):
    return [
        entry_from_prompt(p, base_url=BASE, tag_authority="example.org,2026") for p in (prompt, person_prompt)
    ]


def test_atom_parses_cleanly_with_required_elements(prompt, person_prompt):
    body = atom(_meta("atom"), _entries(prompt, person_prompt))
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "atom10"
    assert parsed.feed.id.startswith("tag:example.org,2026:")
    assert parsed.feed.title == "Agar Grove"
    assert any(link.rel == "self" and link.href == f"{BASE}/streets/s-1.atom" for link in parsed.feed.links)
    first = parsed.entries[0]
    assert first.id == f"tag:example.org,2026:prompt/{prompt.prompt_id.replace(':', '%3A')}"
    assert first.title == prompt.title
    assert first.link == f"{BASE}/prompts/{prompt.prompt_id.replace(':', '%3A')}"
    assert "<paint>" in first.summary  # escaped in XML, text again once parsed
    assert "Saturday paint-out" in first.content[0].value

    root = etree.fromstring(body)
    assert root.tag == f"{A}feed"
    for child in ("id", "title", "updated", "author"):
        assert root.find(f"{A}{child}") is not None, child
    for entry in root.findall(f"{A}entry"):
        for child in ("id", "title", "updated", "summary", "content", "link"):
            assert entry.find(f"{A}{child}") is not None, child


def test_person_category_entries_show_the_release_day_only(prompt, person_prompt):
    root = etree.fromstring(atom(_meta("atom"), _entries(prompt, person_prompt)))
    updated = [e.findtext(f"{A}updated") for e in root.findall(f"{A}entry")]
    assert updated[0] == "2026-05-02T14:37:21+00:00"  # place: to the second, no fractions
    assert updated[1] == "2026-05-01T00:00:00+00:00"  # person: the release date, midnight UTC


def test_feed_updated_is_deterministic_and_follows_last_change(prompt, person_prompt):
    later = dt.datetime(2026, 5, 3, 9, 0, tzinfo=dt.UTC)
    entries = _entries(prompt, person_prompt)
    assert atom(_meta("atom", later), entries) == atom(_meta("atom", later), entries)
    root = etree.fromstring(atom(_meta("atom", later), entries))
    assert root.findtext(f"{A}updated") == "2026-05-03T09:00:00+00:00"
    empty = etree.fromstring(atom(_meta("atom"), []))
    assert empty.findtext(f"{A}updated")  # an empty feed is still valid Atom


def test_rss_parses_cleanly_with_non_permalink_guids(prompt, person_prompt):
    body = rss(_meta("rss"), _entries(prompt, person_prompt))
    parsed = feedparser.parse(body)
    assert parsed.bozo == 0, parsed.get("bozo_exception")
    assert parsed.version == "rss20"
    assert parsed.feed.title == "Agar Grove"
    assert parsed.feed.link == f"{BASE}/streets/s-1"
    assert parsed.entries[0].id.startswith("tag:example.org,2026:prompt/")

    channel = etree.fromstring(body).find("channel")
    for child in ("title", "link", "description"):
        assert channel.findtext(child), child
    items = channel.findall("item")
    assert len(items) == 2
    for item in items:
        assert item.find("guid").get("isPermaLink") == "false"
        assert item.findtext("title") and item.findtext("link") and item.findtext("description")
    self_link = channel.find("{http://www.w3.org/2005/Atom}link")
    assert self_link.get("rel") == "self" and self_link.get("href") == f"{BASE}/streets/s-1.rss"


def test_json_feed_has_the_1_1_required_fields(prompt, person_prompt):
    body = json_feed(_meta("json"), _entries(prompt, person_prompt))
    doc = json.loads(body)
    assert doc["version"] == "https://jsonfeed.org/version/1.1"
    assert doc["title"] and doc["home_page_url"] == f"{BASE}/streets/s-1"
    assert doc["feed_url"] == f"{BASE}/streets/s-1.json"
    for item in doc["items"]:
        assert isinstance(item["id"], str) and item["id"]
        assert item.get("content_text") or item.get("content_html")
        assert dt.datetime.fromisoformat(item["date_published"]).tzinfo is not None
        assert item["url"].startswith(f"{BASE}/prompts/")
    assert doc["items"][1]["date_published"] == "2026-05-01T00:00:00+00:00"
    # (feedparser's JSON Feed support is unreleased: 6.0.x parses XML only, so the fields are checked here.)
    assert set(doc) <= {
        "version",
        "title",
        "home_page_url",
        "feed_url",
        "description",
        "user_comment",
        "next_url",
        "icon",
        "favicon",
        "authors",
        "language",
        "expired",
        "hubs",
        "items",
    }


def test_feeds_never_carry_a_person_count_or_fine_time(person_prompt):
    entry = entry_from_prompt(person_prompt, base_url=BASE, tag_authority="example.org,2026")
    text = json.dumps(entry.as_json())
    assert "06:12" not in text and "T06" not in text
    assert entry.as_json()["updated"] == "2026-05-01"
