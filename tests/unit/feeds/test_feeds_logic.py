"""Pure logic: areas and matching, conditional GET, rate limiting, tokens, record parsing, SSE resumption."""

from __future__ import annotations

import asyncio
import datetime as dt
import json

import pytest
from starlette.requests import Request

from services.feeds.conditional import cacheable
from services.feeds.live import Hub, stream
from services.feeds.repository import Change
from services.feeds.tokens import hash_token, new_token, valid_token
from shared.contracts import PROMPTS, ContractError, PromptRetired, Tombstone
from shared.gazetteer.selection import Areas, UnknownArea
from shared.ratelimit import TokenBucket


def _matches(sel, p):
    return sel.matches(
        area_id=p.area_id, area_kind=p.area_kind, street_ids=p.street_ids, sensitivity=str(p.sensitivity)
    )


def test_street_selection_matches_its_place_prompts_and_its_person_unit(gazetteer, ids, make, make_person):
    areas = Areas(gazetteer)
    sel = areas.for_streets([ids["agar_place"]])
    assert sel.kind == "street" and sel.unit_ids == ("u40-w1",) and sel.ward_codes == ("W1",)
    assert not _matches(sel, make())  # graffiti on Agar Grove, not Agar Place
    assert _matches(sel, make_person())  # the fixed unit covering Agar Place
    assert not _matches(areas.for_streets([ids["far_road"]]), make_person())


def test_radius_resolves_to_streets_it_touches_and_their_fixed_units(gazetteer, ids):
    areas = Areas(gazetteer)
    sel = areas.for_circle(51.5443, -0.1310, 100)
    assert sel.kind == "area"
    assert set(sel.street_ids) == {ids["agar_grove"], ids["agar_place"]}
    assert sel.unit_ids == ("u40-w1",)
    assert "51.54" not in sel.label  # the point itself is not kept
    with pytest.raises(UnknownArea):
        areas.for_circle(51.5370, -0.1400, 50)  # inside the area, but no street that close
    with pytest.raises(UnknownArea):
        areas.for_circle(48.85, 2.35, 500)  # Paris


def test_ward_selection_and_ward_prompts(gazetteer, ids, make_person):
    areas = Areas(gazetteer)
    sel = areas.for_ward("W1")
    assert set(sel.street_ids) == {ids["agar_grove"], ids["agar_place"]}
    ward_prompt = make_person(prompt_id="W1:isolation", area_id="W1", area_kind="ward", street_ids=())
    assert _matches(sel, ward_prompt)
    assert not _matches(areas.for_ward("W2"), ward_prompt)
    with pytest.raises(UnknownArea):
        areas.for_ward("nope")


def test_street_search_uses_the_gazetteer(gazetteer):
    assert [s.name for s in Areas(gazetteer).search("agar")] == ["Agar Grove", "Agar Place"]


def _request(headers: dict[str, str]) -> Request:
    return Request(
        {
            "type": "http",
            "method": "GET",
            "path": "/",
            "headers": [(k.lower().encode(), v.encode()) for k, v in headers.items()],
        }
    )


def test_conditional_get_etag_and_last_modified():
    modified = dt.datetime(2026, 5, 2, 14, 37, 21, tzinfo=dt.UTC)
    first = cacheable(_request({}), b"<feed/>", "application/atom+xml", last_modified=modified, max_age=60)
    assert first.status_code == 200
    etag = first.headers["etag"]
    assert etag.startswith('"') and not etag.startswith("W/")
    assert first.headers["last-modified"] == "Sat, 02 May 2026 14:37:21 GMT"
    assert first.headers["cache-control"] == "public, max-age=60"

    again = cacheable(_request({"If-None-Match": etag}), b"<feed/>", "x", last_modified=modified, max_age=60)
    assert again.status_code == 304 and again.body == b"" and again.headers["etag"] == etag
    changed = cacheable(
        _request({"If-None-Match": etag}), b"<feed>new</feed>", "x", last_modified=modified, max_age=60
    )
    assert changed.status_code == 200
    since = cacheable(
        _request({"If-Modified-Since": "Sat, 02 May 2026 14:37:21 GMT"}),
        b"<feed/>",
        "x",
        last_modified=modified,
        max_age=60,
    )
    assert since.status_code == 304
    older = cacheable(
        _request({"If-Modified-Since": "Sat, 02 May 2026 14:00:00 GMT"}),
        b"<feed/>",
        "x",
        last_modified=modified,
        max_age=60,
    )
    assert older.status_code == 200
    # If-None-Match wins: a stale tag is a 200 even if the date says unchanged.
    both = cacheable(
        _request({"If-None-Match": '"other"', "If-Modified-Since": "Sat, 02 May 2026 15:00:00 GMT"}),
        b"<feed/>",
        "x",
        last_modified=modified,
        max_age=60,
    )
    assert both.status_code == 200
    private = cacheable(_request({}), b"x", "x", last_modified=None, max_age=60, private=True)
    assert private.headers["cache-control"].startswith("private")
    assert private.headers["referrer-policy"] == "no-referrer"


def test_token_bucket_per_client():
    now = [0.0]
    limiter = TokenBucket(rate_per_minute=6, burst=2, clock=lambda: now[0])
    assert limiter.allow("10.0.0.1")[0] and limiter.allow("10.0.0.1")[0]
    allowed, retry = limiter.allow("10.0.0.1")
    assert not allowed and retry == 10
    assert limiter.allow("10.0.0.2")[0]  # another client has its own bucket
    now[0] = 10.0
    assert limiter.allow("10.0.0.1")[0]
    assert all(b"10.0.0" not in key for key in limiter._buckets)


def test_capability_tokens_are_128_bit_and_stored_hashed():
    token = new_token()
    assert valid_token(token) and len(token) == 22
    assert len(hash_token(token)) == 32 and hash_token(token) != token.encode()
    assert new_token() != token
    assert not valid_token("../etc") and not valid_token("short")


def test_parse_prompt_records(make):
    prompt = make()
    assert PROMPTS.decode(prompt.prompt_id.encode(), prompt.model_dump_json().encode()) == prompt
    retired = PromptRetired(
        prompt_id=prompt.prompt_id,
        area_id=prompt.area_id,
        category="graffiti",
        retired_at=dt.datetime(2026, 5, 3, tzinfo=dt.UTC),
    )
    assert PROMPTS.decode(None, retired.model_dump_json().encode()) == retired
    assert PROMPTS.decode(b"p1", None) == Tombstone("p1")
    with pytest.raises(ContractError):
        PROMPTS.decode(b"x", b'{"event_type": "prompt_published", "prompt_id": "x"}')
    with pytest.raises(ContractError):
        PROMPTS.decode(b"x", b"not json")
    with pytest.raises(ContractError, match="key"):
        PROMPTS.decode(b"another", prompt.model_dump_json().encode())


def _change(seq, street="s-a"):
    return Change(seq, f"p{seq}", "published", street, "street", (street,), "place", json.dumps({"n": seq}))


async def test_stream_replays_from_last_event_id_then_goes_live(gazetteer, ids):
    sel = Areas(gazetteer).for_streets([ids["agar_grove"]])
    log = [_change(1, ids["agar_grove"]), _change(2, ids["far_road"]), _change(3, ids["agar_grove"])]

    async def backlog(after):
        return [c for c in log if c.seq > after][:2]  # paged

    async def current():
        return log[-1].seq

    hub = Hub(8)
    events = stream(hub, sel, 1, backlog, current)
    first = await anext(events)
    assert first.id == "3" and first.event == "prompt"  # 2 is another street's, 1 was already seen
    hub.publish(_change(3, ids["agar_grove"]))  # a duplicate of what the backlog gave
    hub.publish(_change(4, ids["agar_grove"]))
    live = await asyncio.wait_for(anext(events), 5)
    assert live.id == "4"
    await events.aclose()
    assert hub.clients == 0


async def test_a_slow_client_is_dropped_not_waited_for(gazetteer, ids):
    sel = Areas(gazetteer).for_streets([ids["agar_grove"]])

    async def nothing(after):
        return []

    async def current():
        return 0

    hub = Hub(2)
    events = stream(hub, sel, None, nothing, current)
    task = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    for seq in range(1, 6):
        hub.publish(_change(seq, ids["agar_grove"]))
    assert hub.clients == 0
    received = [await task]
    received += [e async for e in events]
    assert len(received) <= 2  # then the stream ends; the browser resumes with Last-Event-ID


async def test_other_streets_changes_do_not_fill_a_streets_queue(gazetteer, ids):
    """A poll's transaction commits hundreds of changes at once under load: a street's stream is given
    only its own, so a burst elsewhere neither wakes it nor ends it as a slow client."""
    sel = Areas(gazetteer).for_streets([ids["agar_grove"]])

    async def nothing(after):
        return []

    async def current():
        return 0

    hub = Hub(2)
    events = stream(hub, sel, None, nothing, current)
    task = asyncio.ensure_future(anext(events))
    await asyncio.sleep(0)
    for seq in range(1, 50):
        hub.publish(_change(seq, ids["far_road"]))
    hub.publish(_change(50, ids["agar_grove"]))
    assert hub.clients == 1
    assert (await asyncio.wait_for(task, 5)).id == "50"
    await events.aclose()
