"""A need stored while another transaction holds its lock (a re-evaluation after an opportunity
changed, writing the prompt's next revision) reads the prompt's state as that transaction left it:
read as it was before, the same revision was published a second time."""

from __future__ import annotations

import asyncio

import pytest

from services.prompter import repository as repo
from services.prompter.main import MIGRATIONS
from shared.db import apply_migrations, create_pool
from tests.support import place_need

pytestmark = pytest.mark.integration


def _row(prompt_id: str, revision: int, content_hash: str) -> repo.PromptRow:
    return repo.PromptRow(
        prompt_id, revision, content_hash, "published", "s-lock", "fly_tipping", "E05000001", "{}"
    )


async def test_a_need_waiting_for_its_lock_reads_the_prompt_its_holder_wrote(fresh_database_url) -> None:
    pool = await create_pool(fresh_database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "prompter", MIGRATIONS)
        need = place_need("s-lock", 1)
        async with pool.acquire() as conn, conn.transaction():
            (state,) = await repo.upsert_needs(conn, [need])
            assert state is not None and state["revision"] is None  # no prompt out yet
            await repo.save_prompts(conn, [_row(need.key, 1, "first")])

        async with pool.acquire() as holder, pool.acquire() as consumer:
            reevaluation = holder.transaction()
            await reevaluation.start()
            await repo.lock_need(holder, need.key)
            await repo.save_prompts(holder, [_row(need.key, 2, "second")])

            async def store_again() -> object:
                async with consumer.transaction():
                    (state,) = await repo.upsert_needs(consumer, [need])  # the same need again
                    return state

            waiting = asyncio.create_task(store_again())
            await asyncio.sleep(0.5)
            assert not waiting.done()  # it waits for the need's lock
            await reevaluation.commit()
            state = await asyncio.wait_for(waiting, 10)

        assert state is not None
        assert (state["revision"], state["content_hash"], state["status"]) == (2, "second", "published")
    finally:
        await pool.close()
