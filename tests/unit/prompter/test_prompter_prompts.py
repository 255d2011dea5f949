"""Prompt content and its hash (which decides republishing), and reading street-needs records."""

from __future__ import annotations

import datetime as dt
import hashlib
import json
import random
from pathlib import Path

import pytest

from services.prompter.matching import NO_PLACES, Area, Opportunity
from services.prompter.prompts import Draft, compose, published, retired
from shared.contracts import (
    STREET_NEEDS,
    Category,
    ContractError,
    OpportunityLink,
    PromptPublished,
    StreetNeedChanged,
    Tombstone,
)

DATA = Path(__file__).resolve().parents[2] / "data/prompter"
TODAY = dt.date(2026, 11, 20)
RAW = (DATA / "need_fly_tipping_street.json").read_bytes()
NEED = StreetNeedChanged.model_validate_json(RAW)


def _opp(title="Camden Road clean-up", **kw) -> Opportunity:
    return Opportunity(
        id="o1",
        title=title,
        organisation="Friends of Camden Road",
        categories=frozenset({Category.FLY_TIPPING}),
        area=Area(street_ids=("way/2001",)),
        **kw,
    )


def test_same_inputs_same_hash_even_with_a_newer_need_version():
    later = NEED.model_copy(
        update={"version": 8, "published_at": dt.datetime(2026, 11, 21, tzinfo=dt.UTC), "trend": "steady"}
    )
    assert (
        compose(NEED, [_opp()], NO_PLACES, TODAY).content_hash
        == compose(later, [_opp()], NO_PLACES, TODAY).content_hash
    )


def test_hash_changes_with_count_or_opportunity():
    base = compose(NEED, [_opp()], NO_PLACES, TODAY).content_hash
    assert compose(NEED.model_copy(update={"count": 4}), [_opp()], NO_PLACES, TODAY).content_hash != base
    assert compose(NEED, [_opp(title="Big clean-up")], NO_PLACES, TODAY).content_hash != base
    assert compose(NEED, [], NO_PLACES, TODAY).content_hash != base
    assert compose(NEED, [_opp(times="Saturdays 10am")], NO_PLACES, TODAY).content_hash != base


def _stored_hash(draft: Draft) -> str:
    """How content hashes were computed when the stored ones were: they must still match, or every
    prompt re-evaluated after an upgrade would be published again with nothing changed."""
    content = {
        "title": draft.title,
        "body": draft.body,
        "opportunities": [o.model_dump(mode="json") for o in draft.opportunities],
    }
    canonical = json.dumps(content, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode()).hexdigest()


def test_content_hashes_are_those_already_stored():
    rng = random.Random(12)
    # Control characters, quotes, backslashes, non-ASCII, line and paragraph separators, emoji.
    alphabet = [chr(c) for c in [*range(0x80), 0xA0, 0xE9, 0x2028, 0x2029, 0xFFFD, 0x1F600]]

    def text() -> str:
        return "".join(rng.choice(alphabet) for _ in range(rng.randint(0, 24)))

    for _ in range(2_000):
        links = tuple(
            OpportunityLink(
                opportunity_id=text(),
                title=text(),
                organisation=text(),
                url=rng.choice([None, text()]),
                kind=rng.choice(["local", "platform"]),
                dbs_needed=rng.choice([None, True, False]),
            )
            for _ in range(rng.randint(0, 3))
        )
        draft = Draft(text(), text(), links)
        assert draft.content_hash == _stored_hash(draft)
    draft = compose(NEED, [_opp()], NO_PLACES, TODAY)
    assert draft is not None and draft.content_hash == _stored_hash(draft)


def test_published_event_is_keyed_and_minute_coarsened():
    draft = compose(NEED, [_opp()], NO_PLACES, TODAY)
    event = published(NEED, draft, 2, dt.datetime(2026, 11, 20, 10, 30, 45, 123, tzinfo=dt.UTC))
    assert isinstance(event, PromptPublished)
    assert (event.prompt_id, event.key, event.revision) == ("way/2001:fly_tipping",) * 2 + (2,)
    assert event.published_at == dt.datetime(2026, 11, 20, 10, 30, tzinfo=dt.UTC)
    assert [o.opportunity_id for o in event.opportunities] == ["o1"]


def test_retired_event_splits_the_key():
    event = retired("unit:40:7:isolation", dt.datetime(2026, 11, 20, 10, 30, 45, tzinfo=dt.UTC))
    assert (event.area_id, event.category) == ("unit:40:7", Category.ISOLATION)


def test_decode_need_accepts_the_golden_message():
    assert STREET_NEEDS.decode(b"way/2001:fly_tipping", RAW) == NEED


@pytest.mark.parametrize("value", [None, b""])
def test_decode_need_tombstone(value):
    assert STREET_NEEDS.decode(b"way/2001:fly_tipping", value) == Tombstone("way/2001:fly_tipping")


@pytest.mark.parametrize(
    ("key", "value", "reason"),
    [
        (b"way/2001:fly_tipping", b"{not json", "not a valid StreetNeedChanged"),
        (
            b"way/2001:fly_tipping",
            json.dumps({**json.loads(RAW), "count": None}).encode(),
            "not a valid StreetNeedChanged",
        ),
        (b"way/2001:isolation", RAW, "key does not match"),
        (b"no-colon", None, "key is not"),
        (b"way/1:unknown_thing", None, "key is not"),
        (b"\xff\xfe", None, "not UTF-8"),
    ],
)
def test_decode_need_rejects(key, value, reason):
    with pytest.raises(ContractError) as caught:
        STREET_NEEDS.decode(key, value)
    assert reason in caught.value.reason


def test_person_count_in_a_message_is_rejected():
    raw = json.loads((DATA / "need_isolation_unit.json").read_text())
    raw["count"] = 9
    with pytest.raises(ContractError) as caught:
        STREET_NEEDS.decode(b"unit-40-0001:isolation", json.dumps(raw).encode())
    assert caught.value.errors
