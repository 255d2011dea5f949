"""The prompter reads the catalogue of ways to help once while it stands, and again as soon as any
write changed it: a need applied after an opportunity was registered, edited or retired links what
the catalogue holds then, whichever path wrote it."""

from __future__ import annotations

import uuid

import pytest

from services.prompter import repository as repo
from services.prompter.publisher import PromptPublisher
from shared.contracts import PromptPublished
from tests.support import place_need

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


async def _links(publisher: PromptPublisher, prompt_id: str) -> list[str]:
    async with publisher.pool.acquire() as conn:
        stored = await conn.fetchval("SELECT prompt FROM prompter.prompts WHERE prompt_id = $1", prompt_id)
    return [o.title for o in PromptPublished.model_validate_json(stored).opportunities]


async def test_the_catalogue_is_read_again_only_after_a_write_changed_it(publisher) -> None:
    # An instance of its own: the service's consumer may apply other tests' needs meanwhile.
    mine = PromptPublisher(publisher.pool, publisher.producer, publisher.places)
    street = f"s-cat-{uuid.uuid4().hex[:8]}"
    need = place_need(street, 1)

    def known() -> tuple[int, repo.Catalogue]:
        return mine._catalogues["fly_tipping"]  # (version, catalogue) as last read

    assert await mine.apply_need(need)
    first = known()
    assert await mine.apply_need(place_need(street, 2))  # the count moved: a new revision
    assert known() is first, "read again although nothing changed the catalogue"
    assert "Clean-up crew" not in await _links(publisher, need.key)

    # Registered by a plain INSERT, as any path would: the trigger moves the version.
    values = {c: None for c in repo._OPP_COLUMNS} | {
        "title": "Clean-up crew",
        "organisation": "Test group",
        "description": "",
        "categories": ["fly_tipping"],
        "ward_codes": [],
        "street_ids": [street],
        "what": "",
        "dbs_needed": False,
    }
    async with publisher.pool.acquire() as conn:
        opp = await repo.insert_opportunity(conn, values)
    assert await mine.apply_need(place_need(street, 3))
    second = known()
    assert second[0] > first[0]
    assert "Clean-up crew" in await _links(publisher, need.key)

    async with publisher.pool.acquire() as conn:
        await repo.retire_opportunity(conn, opp["id"])
    assert await mine.apply_need(place_need(street, 4))
    assert known()[0] > second[0]
    assert "Clean-up crew" not in await _links(publisher, need.key)
