"""Conditional GETs on the real database: a 304 is decided before any rendering, and every change a
feed could show (a new prompt, a revision, a retirement, a move away, an "I can help" on the page)
changes its strong ETag; the rendered-body cache serves repeat 200s without rendering."""

from __future__ import annotations

import contextlib
import datetime as dt
from collections.abc import AsyncIterator
from typing import Any

import httpx
import pytest

from services.feeds import repository as repo
from services.feeds import views
from services.feeds.consume import apply_event
from services.feeds.feedcache import BodyCache
from services.feeds.main import create_app
from services.feeds.settings import FeedsSettings
from shared.contracts import PROMPTS, PromptPublished, PromptRetired
from tests.support import group_at_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


@contextlib.asynccontextmanager
async def feeds_app(
    kafka: str, database_url: str, group: str
) -> AsyncIterator[tuple[httpx.AsyncClient, Any]]:
    """A feeds app started on its own database, its consumer group parked at the topic's end."""
    await group_at_end(kafka, group, PROMPTS)
    settings = FeedsSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        base_url="http://test",
        group_id=group,
        _env_file=None,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            yield client, app


@pytest.fixture
async def app_client(stack, fresh_database_url, random_id) -> AsyncIterator[tuple[httpx.AsyncClient, object]]:
    async with feeds_app(stack["kafka"], fresh_database_url, f"feeds-conditional-{random_id}") as started:
        yield started


def _street_prompt(street, random_id: str, **overrides) -> PromptPublished:
    fields = dict(
        prompt_id=f"t{random_id}-{street.id}:graffiti",
        revision=1,
        area_id=street.id,
        area_kind="street",
        area_name=street.name,
        ward_code=street.ward_code,
        street_ids=(street.id,),
        category="graffiti",
        sensitivity="place",
        title=f"Graffiti on {street.name}",
        body="Walls need paint.",
        published_at=dt.datetime.now(dt.UTC).replace(microsecond=0),
    )
    fields.update(overrides)
    return PromptPublished(**fields)


def _no_rendering(*_args, **_kwargs):
    raise AssertionError("the feed was rendered")


async def test_304_is_answered_without_rendering_and_each_visible_change_moves_the_etag(
    app_client, monkeypatch, random_id
):
    client, app = app_client
    runtime = app.state.runtime
    areas = runtime.context.areas
    pool, settings = runtime.pool, runtime.settings
    street, other = (areas.gazetteer.streets[i] for i in sorted(areas.gazetteer.streets)[:2])
    atom, page = f"/streets/{street.id}.atom", f"/streets/{street.id}"
    sub = (await client.post("/v1/subscriptions", json={"street_id": street.id})).json()
    private = sub["feeds"]["atom"].removeprefix("http://test")

    async def tags() -> dict[str, str]:
        out = {}
        for url in (atom, page, private):
            response = await client.get(url)
            assert response.status_code == 200
            out[url] = response.headers["etag"]
        return out

    before = await tags()
    prompt = _street_prompt(street, random_id)
    await apply_event(pool, settings, prompt)
    published = await tags()
    assert all(published[u] != before[u] for u in before), "a new prompt must change every ETag"
    first = await client.get(atom)
    assert prompt.title in first.text

    # A client with the current copy gets a 304 from one query: rendering would fail here.
    monkeypatch.setattr(views, "render_feed", _no_rendering)
    for url, etag in published.items():
        again = await client.get(url, headers={"If-None-Match": etag})
        assert again.status_code == 304 and again.content == b"" and again.headers["etag"] == etag
    dated = await client.get(atom, headers={"If-Modified-Since": first.headers["last-modified"]})
    assert dated.status_code == 304
    # A repeat 200 of the same state comes from the body cache, byte for byte.
    cached = await client.get(atom)
    assert cached.status_code == 200 and cached.content == first.content
    runtime.context.bodies = BodyCache(0)
    with pytest.raises(AssertionError, match="rendered"):
        await client.get(atom)
    monkeypatch.undo()

    # Strong: rendering the same state again gives the same bytes under the same ETag.
    fresh = await client.get(atom)
    assert fresh.content == first.content and fresh.headers["etag"] == first.headers["etag"]

    await apply_event(pool, settings, prompt.model_copy(update={"revision": 2, "title": "Paint-out Sunday"}))
    revised = await tags()
    assert all(revised[u] != published[u] for u in published), "a revision must change every ETag"

    async with pool.acquire() as conn:
        await repo.add_response(conn, prompt.prompt_id)
    helped = await tags()
    assert helped[page] != revised[page] and "1 neighbour said they can help" in (await client.get(page)).text
    assert helped[atom] == revised[atom], "Atom does not show counts: its ETag stays"

    # A revision that moves the prompt to another street takes it out of this feed.
    await apply_event(
        pool,
        settings,
        prompt.model_copy(
            update={"revision": 3, "area_id": other.id, "street_ids": (other.id,), "title": "Moved"}
        ),
    )
    moved = await tags()
    assert all(moved[u] != helped[u] for u in helped) and "Moved" not in (await client.get(atom)).text

    back = prompt.model_copy(update={"revision": 4, "title": "Back again"})
    await apply_event(pool, settings, back)
    returned = await tags()
    retirement = PromptRetired(
        prompt_id=prompt.prompt_id,
        area_id=street.id,
        category=prompt.category,
        retired_at=dt.datetime.now(dt.UTC),
    )
    await apply_event(pool, settings, retirement)
    retired = await tags()
    assert all(retired[u] != returned[u] for u in returned), "a retirement must change every ETag"
    assert "Back again" not in (await client.get(atom)).text
    stale = await client.get(atom, headers={"If-None-Match": returned[atom]})
    assert stale.status_code == 200 and stale.headers["etag"] == retired[atom]


async def test_person_revisions_on_one_day_change_the_etag(app_client, random_id):
    """Person categories store change times to the day, so the ETag cannot rest on timestamps."""
    client, app = app_client
    runtime = app.state.runtime
    areas = runtime.context.areas
    unit = next(u for u in areas.gazetteer.units_for(40) if u.publishable and not u.is_ward)
    street = areas.gazetteer.streets[unit.street_ids[0]]
    url = f"/streets/{street.id}.json"
    day = dt.datetime.combine(dt.datetime.now(dt.UTC).date(), dt.time(), tzinfo=dt.UTC)
    prompt = PromptPublished(
        prompt_id=f"t{random_id}-{unit.id}:isolation",
        revision=1,
        area_id=unit.id,
        area_kind="unit",
        area_name=unit.name,
        ward_code=unit.ward_code,
        street_ids=unit.street_ids,
        category="isolation",
        sensitivity="person",
        title="Some neighbours may be lonely",
        body="Host a lunch club?",
        published_at=day,
    )
    await apply_event(runtime.pool, runtime.settings, prompt)
    first = await client.get(url)
    revised = prompt.model_copy(update={"revision": 2, "body": "Or tea?"})
    await apply_event(runtime.pool, runtime.settings, revised)
    second = await client.get(url, headers={"If-None-Match": first.headers["etag"]})
    assert second.status_code == 200 and "Or tea?" in second.text
    assert second.headers["last-modified"] == first.headers["last-modified"]  # same day: dates cannot tell
    assert second.headers["etag"] != first.headers["etag"]
