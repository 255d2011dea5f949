"""Feeds apply a poll of prompts.v1 in one transaction: a prompt met several times in one poll gets
the same CAP messages (Alert, Update referencing it, Cancel referencing that) as one at a time."""

from __future__ import annotations

import asyncio
import datetime as dt
from pathlib import Path

import pytest
from asyncpg import connect as asyncpg_connect

from services.feeds.consume import apply_event, apply_events
from services.feeds.repository import CHANNEL, apply_published_all
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


def _other(prompt_id: str, revision: int, *, category: str, sensitivity: str) -> PromptPublished:
    base = _prompt(prompt_id, revision, 5).model_dump()
    return PromptPublished.model_validate({**base, "category": category, "sensitivity": sensitivity})


async def test_a_poll_of_distinct_prompts_is_one_numbered_run_in_event_order(stack, random_id) -> None:
    """A poll's publications are stored by one statement: each gets its change (or None when stale),
    numbered in the poll's order, with one notification for the lot; person prompts get no CAP."""
    url = await create_database(stack["database"], prefix="t_feeds_run")
    pool = await create_pool(url)
    listener = None
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "feeds", MIGRATIONS)
        settings = FeedsSettings(database_url=url, kafka_bootstrap_servers=stack["kafka"], _env_file=None)
        a, b, c = (f"p{random_id}-{x}:graffiti" for x in "abc")
        person = f"u{random_id}:isolation"
        (first,) = await apply_events(pool, settings, [_prompt(b, 2, 0)])
        assert first is not None

        listener = await asyncpg_connect(url)
        told: list[str] = []
        await listener.add_listener(CHANNEL, lambda *args: told.append(args[-1]))
        poll = [
            _prompt(a, 1, 1),
            _prompt(b, 1, 1),  # older than what is stored: changes nothing
            _other(person, 1, category="isolation", sensitivity="person"),
            _prompt(c, 1, 1),
        ]
        changes = await apply_events(pool, settings, poll)

        assert changes[1] is None
        stored = [ch for ch in changes if ch is not None]
        assert [ch.prompt_id for ch in stored] == [a, person, c]
        seqs = [ch.seq for ch in stored]
        assert seqs == sorted(seqs) and len(set(seqs)) == 3 and seqs[0] > first.seq
        rows = await pool.fetch("SELECT prompt_id, seq, revision FROM feeds.prompts ORDER BY seq")
        assert [(r["prompt_id"], r["seq"], r["revision"]) for r in rows] == [
            (b, first.seq, 2),
            *((ch.prompt_id, ch.seq, 1) for ch in stored),
        ]
        logged = await pool.fetch("SELECT seq, prompt_id FROM feeds.changes ORDER BY seq")
        assert [(r["seq"], r["prompt_id"]) for r in logged] == [
            (first.seq, b),
            *((ch.seq, ch.prompt_id) for ch in stored),
        ]
        assert [m[0] for m in await _cap_rows(pool, a)] == ["Alert"]
        assert await _cap_rows(pool, person) == []
        assert [m[0] for m in await _cap_rows(pool, b)] == ["Alert"]  # the stale revision sent none
        for _ in range(100):
            if told:
                break
            await asyncio.sleep(0.02)
        await asyncio.sleep(0.2)
        assert told == [str(seqs[-1])]

        with pytest.raises(ValueError, match="only once"):
            async with pool.acquire() as conn, conn.transaction():
                await apply_published_all(conn, [(_prompt(a, 5, 9), {}, None), (_prompt(a, 6, 9), {}, None)])
    finally:
        if listener is not None:
            await listener.close()
        await pool.close()
        await drop_database(stack["database"], url)
