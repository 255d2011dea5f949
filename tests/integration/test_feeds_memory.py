"""Feeds from memory on the real database: a repeat request (page or feed) needs no query, a cached
page is byte for byte a fresh rendering, a change made elsewhere (another replica: only its NOTIFY
reaches this one) is visible on the next request once notified, and the requests that miss together
share one query."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest

from services.feeds import repository as repo
from services.feeds.consume import apply_event
from services.feeds.entries import entry_from_prompt
from services.feeds.feedcache import BodyCache, ValidatorCache
from shared.contracts import PromptPublished
from tests.integration.test_feeds_conditional import _street_prompt, feeds_app

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@pytest.fixture
async def app_client(stack, fresh_database_url, random_id) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    async with feeds_app(stack["kafka"], fresh_database_url, f"feeds-memory-{random_id}") as (client, app):
        await _until(lambda: app.state.runtime.context.hub.seen_seq is not None)  # the listener caught up
        yield client, app


async def _until(condition: Callable[[], bool], within_s: float = 30.0) -> None:
    """Wait for `condition` (a notification to arrive, a listener to catch up); fail if it never does."""
    async with asyncio.timeout(within_s):
        while not condition():  # noqa: ASYNC110 - a condition, not an event
            await asyncio.sleep(0.01)


def _no_database(*_args, **_kwargs):
    raise AssertionError("the database was asked")


async def _elsewhere(url: str, action: Callable[[asyncpg.Connection], Awaitable[object]]) -> object:
    """What another replica does: its own connection, so only the NOTIFY on commit tells this one."""
    conn = await asyncpg.connect(url)
    try:
        return await action(conn)
    finally:
        await conn.close()


async def test_pages_and_feeds_repeat_from_memory_and_follow_changes_notified_by_another_replica(
    app_client, monkeypatch, random_id
):
    client, app = app_client
    runtime = app.state.runtime
    context, settings = runtime.context, runtime.settings
    hub = context.hub
    street = context.areas.gazetteer.streets[sorted(context.areas.gazetteer.streets)[0]]
    page, atom = f"/streets/{street.id}", f"/streets/{street.id}.atom"
    prompt = _street_prompt(street, random_id)

    async def publish(conn: asyncpg.Connection, event: PromptPublished) -> repo.Change | None:
        entry = entry_from_prompt(event, base_url=settings.base_url, tag_authority=settings.tag_authority)
        async with conn.transaction():  # the unit of work is the caller's (ADR 0006)
            (change,) = await repo.apply_published_all(conn, [(event, entry.as_json(), None)])
            return change

    change = await _elsewhere(settings.database_dsn(), lambda conn: publish(conn, prompt))
    await _until(lambda: hub.seen_seq is not None and hub.seen_seq >= change.seq)
    first = {url: await client.get(url) for url in (page, atom)}
    assert all(r.status_code == 200 and prompt.title in r.text for r in first.values())

    # Repeats, plain and conditional, are answered from memory: asking the database would fail here.
    with monkeypatch.context() as m:
        m.setattr(repo, "feed_state", _no_database)
        m.setattr(repo, "feed_snapshot", _no_database)
        for url, response in first.items():
            again = await client.get(url)
            assert again.content == response.content and again.headers["etag"] == response.headers["etag"]
            current = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
            assert current.status_code == 304

    # A cached page is byte for byte what rendering it afresh gives, under the same ETag.
    context.bodies = BodyCache(context.bodies.max_bytes)
    context.validators = ValidatorCache()
    fresh = await client.get(page)
    assert fresh.content == first[page].content and fresh.headers["etag"] == first[page].headers["etag"]

    # "I can help" said on another replica: once notified, the page shows it (the Atom feed, which
    # does not show counts, keeps its ETag).
    counted = hub.counts_seen
    await _elsewhere(settings.database_dsn(), lambda conn: conn.fetchrow(repo.BUMP_COUNT, prompt.prompt_id))
    await _until(lambda: hub.counts_seen > counted)
    helped = await client.get(page, headers={"If-None-Match": first[page].headers["etag"]})
    assert helped.status_code == 200 and "1 neighbour said they can help" in helped.text
    assert (await client.get(atom)).headers["etag"] == first[atom].headers["etag"]

    # A revision stored by another replica: once notified, both show it.
    revised = prompt.model_copy(update={"revision": 2, "title": "Paint-out Sunday"})
    change = await _elsewhere(settings.database_dsn(), lambda conn: publish(conn, revised))
    await _until(lambda: hub.seen_seq >= change.seq)
    for url, response in first.items():
        now = await client.get(url, headers={"If-None-Match": response.headers["etag"]})
        assert now.status_code == 200 and "Paint-out Sunday" in now.text


async def test_requests_that_miss_together_share_one_query(app_client, monkeypatch, random_id):
    client, app = app_client
    runtime = app.state.runtime
    context = runtime.context
    street = context.areas.gazetteer.streets[sorted(context.areas.gazetteer.streets)[1]]
    ward = f"/wards/{street.ward_code}"
    snapshot, gate, calls = repo.feed_snapshot, asyncio.Event(), []

    async def held_snapshot(*args, **kwargs):
        calls.append(args)
        await gate.wait()
        return await snapshot(*args, **kwargs)

    monkeypatch.setattr(repo, "feed_snapshot", held_snapshot)
    # A change this replica stored itself: every feed's validators are looked up again.
    await apply_event(runtime.pool, runtime.settings, _street_prompt(street, random_id))
    requests = [asyncio.create_task(client.get(ward)) for _ in range(16)]
    await _until(lambda: len(calls) > 0)
    await asyncio.sleep(0.2)  # room for the other requests to arrive (all the more to share with)
    gate.set()
    responses = await asyncio.gather(*requests)
    assert len(calls) == 1, "one query for all the requests that missed together"
    assert {r.status_code for r in responses} == {200}
    assert len({(r.headers["etag"], r.content) for r in responses}) == 1
