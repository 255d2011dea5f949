"""Feeds apply a poll of prompts.v1 in one transaction: a prompt met several times in one poll gets
the same CAP messages (Alert, Update referencing it, Cancel referencing that) as one at a time."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest

from services.feeds.consume import apply_event, apply_events
from services.feeds.settings import FeedsSettings
from shared.contracts import PromptPublished, PromptRetired
from shared.db import apply_migrations, create_database, create_pool, drop_database

pytestmark = pytest.mark.integration

MIGRATIONS = Path(__file__).resolve().parents[2] / "services/feeds/migrations"


def _prompt(prompt_id: str, revision: int, minute: int) -> PromptPublished:
    return PromptPublished(
        prompt_id=prompt_id,
        revision=revision,
        area_id="s-1",
        area_kind="street",
        area_name="Agar Grove",
        ward_code="E05013652",
        street_ids=("s-1",),
        category="graffiti",
        sensitivity="place",
        title=f"Graffiti, revision {revision}",
        body="Walls need paint.",
        published_at=dt.datetime(2026, 11, 27, 9, minute, tzinfo=dt.UTC),
    )


async def _cap_rows(pool, prompt_id: str) -> list[tuple[str, int, str | None]]:
    rows = await pool.fetch(
        "SELECT msg_type, revision, refs, identifier FROM feeds.cap_messages WHERE prompt_id = $1"
        " ORDER BY sent, revision",
        prompt_id,
    )
    # References name the earlier message's identifier: compared by position, not by the id's value.
    ids = {r["identifier"]: i for i, r in enumerate(rows)}
    return [
        (r["msg_type"], r["revision"], None if r["refs"] is None else str(ids[r["refs"].split(",")[1]]))
        for r in rows
    ]


async def test_a_prompt_met_three_times_in_one_poll_gets_the_cap_messages_of_one_at_a_time(
    stack, random_id
) -> None:
    url = await create_database(stack["database"], prefix="t_feeds_poll")
    pool = await create_pool(url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "feeds", MIGRATIONS)
        settings = FeedsSettings(database_url=url, kafka_bootstrap_servers=stack["kafka"], _env_file=None)
        events = lambda pid: [  # noqa: E731
            _prompt(pid, 1, 0),
            _prompt(pid, 2, 1),
            PromptRetired(
                prompt_id=pid,
                area_id="s-1",
                category="graffiti",
                retired_at=dt.datetime(2026, 11, 27, 9, 2, tzinfo=dt.UTC),
            ),
            _prompt(pid, 3, 3),
        ]
        one_poll, one_by_one = f"p{random_id}-a:graffiti", f"p{random_id}-b:graffiti"
        changes = await apply_events(pool, settings, events(one_poll))
        for event in events(one_by_one):
            await apply_event(pool, settings, event)

        assert all(c is not None for c in changes)
        expected = [("Alert", 1, None), ("Update", 2, "0"), ("Cancel", 2, "1"), ("Alert", 3, None)]
        assert await _cap_rows(pool, one_by_one) == expected
        assert await _cap_rows(pool, one_poll) == expected
    finally:
        await pool.close()
        await drop_database(stack["database"], url)
