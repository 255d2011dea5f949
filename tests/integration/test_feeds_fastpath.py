"""Remembered street and ward feeds and pages answered before routing (services.feeds.fastpath) on the
real database: the same status, headers and bytes the route gives (gzip and 304s included), nothing
stale after a change, and whatever is not in memory, or is not a plain GET of such a feed, goes
through the app as before."""

from __future__ import annotations

from collections.abc import AsyncIterator

import httpx
import pytest

from services.feeds import web
from services.feeds.consume import apply_event
from services.feeds.fastpath import FromMemory
from tests.integration.test_feeds_conditional import _street_prompt, feeds_app
from tests.integration.test_feeds_memory import _until

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

Answer = tuple[int, list[tuple[str, str]], bytes]


@pytest.fixture
async def app_client(stack, fresh_database_url, random_id) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    async with feeds_app(stack["kafka"], fresh_database_url, f"feeds-fastpath-{random_id}") as (client, app):
        await _until(lambda: app.state.runtime.context.hub.seen_seq is not None)  # the listener caught up
        yield client, app


async def _raw(client: httpx.AsyncClient, url: str, headers: dict[str, str] | None = None) -> Answer:
    """Status, every header in order and the bytes as sent (not decompressed)."""
    async with client.stream("GET", url, headers=headers) as response:
        body = b"".join([chunk async for chunk in response.aiter_raw()])
    return response.status_code, list(response.headers.multi_items()), body


def _routes_answer(*_args, **_kwargs):
    raise AssertionError("the request reached the route")


def _feeds(street_id: str, ward_code: str) -> list[str]:
    return [
        f"{path}{suffix}"
        for path in (f"/streets/{street_id}", f"/wards/{ward_code}")
        for suffix in ("", ".atom", ".rss", ".json")
    ]


async def test_remembered_answers_are_the_routes_own_gzip_and_304_included(
    app_client, monkeypatch, random_id
):
    client, app = app_client
    runtime = app.state.runtime
    street = runtime.context.areas.gazetteer.streets[sorted(runtime.context.areas.gazetteer.streets)[0]]
    await apply_event(runtime.pool, runtime.settings, _street_prompt(street, random_id))
    variants = ({}, {"Accept-Encoding": "gzip, deflate"})
    gzipped = 0
    for url in _feeds(street.id, street.ward_code):
        # Through the route (which ignores a query string): it leaves validators and body in memory.
        by_route = [await _raw(client, f"{url}?via=route", headers) for headers in variants]
        assert by_route[0][0] == 200, url
        etag, last_modified = dict(by_route[0][1])["etag"], dict(by_route[0][1])["last-modified"]
        conditional = ({"If-None-Match": etag}, {"If-Modified-Since": last_modified})
        by_route += [await _raw(client, f"{url}?via=route", headers) for headers in conditional]
        with monkeypatch.context() as m:
            m.setattr(web, "feed_response", _routes_answer)
            remembered = [await _raw(client, url, headers) for headers in (*variants, *conditional)]
        assert remembered == by_route, url
        assert [a[0] for a in remembered] == [200, 200, 304, 304], url
        gzipped += dict(remembered[1][1]).get("content-encoding") == "gzip"
    assert gzipped >= 2  # the pages at least are large enough to be compressed


async def test_a_change_is_not_answered_from_stale_memory(app_client, random_id):
    client, app = app_client
    runtime = app.state.runtime
    street = runtime.context.areas.gazetteer.streets[sorted(runtime.context.areas.gazetteer.streets)[1]]
    urls = _feeds(street.id, street.ward_code)
    before = {url: await client.get(url) for url in urls}
    for url in urls:  # now remembered
        assert (await client.get(url)).headers["etag"] == before[url].headers["etag"]
    prompt = _street_prompt(street, random_id, title=f"Fresh paint {random_id}")
    await apply_event(runtime.pool, runtime.settings, prompt)
    for url in urls:
        after = await client.get(url, headers={"If-None-Match": before[url].headers["etag"]})
        assert after.status_code == 200 and prompt.title in after.text, url


async def test_what_is_not_a_remembered_plain_get_goes_through_the_app(app_client, monkeypatch, random_id):
    client, app = app_client
    runtime = app.state.runtime
    street = runtime.context.areas.gazetteer.streets[sorted(runtime.context.areas.gazetteer.streets)[2]]
    url = f"/streets/{street.id}.atom"
    calls: list[str] = []
    feed_response = web.feed_response

    async def counted(request, target, fmt):
        calls.append(request.method)
        return await feed_response(request, target, fmt)

    monkeypatch.setattr(web, "feed_response", counted)
    assert (await client.get(url)).status_code == 200  # not in memory yet
    assert (await client.get(f"{url}?utm=x")).status_code == 200  # a query string
    assert (await client.head(url)).status_code == 200  # HEAD
    assert (await client.request("GET", url, content=b"x")).status_code == 200  # a body
    assert len(calls) == 4
    assert (await client.get(url)).status_code == 200
    assert len(calls) == 4, "a plain repeat is answered from memory"
    # An unknown street is the route's 404, as before.
    missing = await client.get("/streets/no-such-street.atom")
    assert missing.status_code == 404 and missing.headers["content-type"].startswith(
        "application/problem+json"
    )
    # The layer is the app's outermost: nothing before it answers these paths.
    assert app.user_middleware[0].cls is FromMemory
