"""A poll of prompt events stored at once leaves what storing them one at a time leaves: the same
changes, the same retired prompts, and the same instant mails queued in the same order of changes,
for ward, person and place prompts, category filters, a revision met twice and a prompt retired
and published again within the poll."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import asyncpg
import pytest

from services.notifier.consume import Event, apply_events
from services.notifier.main import MIGRATIONS
from shared.contracts import Category, PromptPublished, PromptRetired, Sensitivity, Tombstone
from shared.db import apply_migrations, create_pool

pytestmark = pytest.mark.integration

NOW = dt.datetime(2026, 11, 27, 12, 0, tzinfo=dt.UTC)
CONFIRMED = NOW - dt.timedelta(days=1)

# label: (street_ids, unit_ids, ward_codes, categories)
ALERTS = {
    "on the street": (["s-1"], [], [], []),
    "on two streets, litter only": (["s-1", "s-2"], [], [], ["litter"]),
    "the unit": ([], ["u-1"], [], []),
    "the unit's street": (["s-3"], [], [], []),
    "the ward": ([], [], ["W1"], []),
    "elsewhere": (["s-9"], ["u-9"], ["W9"], []),
}


def _published(
    area_kind: str, area_id: str, streets: tuple[str, ...], category: str, revision: int = 1
) -> PromptPublished:
    person = category == "isolation"
    return PromptPublished(
        prompt_id=f"{area_id}:{category}",
        revision=revision,
        area_id=area_id,
        area_kind=area_kind,  # type: ignore[arg-type]
        area_name=area_id,
        ward_code="W1",
        street_ids=streets,
        category=Category(category),
        sensitivity=Sensitivity.PERSON if person else Sensitivity.PLACE,
        title=f"{category} in {area_id} r{revision}",
        body="A need nearby.",
        published_at=NOW,
    )


POLL: list[Event] = [
    _published("street", "s-1", ("s-1",), "fly_tipping"),
    _published("street", "s-2", ("s-2",), "litter"),
    _published("unit", "u-1", ("s-3", "s-4"), "isolation"),
    _published("ward", "W1", ("s-1", "s-2", "s-3"), "litter"),
    _published("street", "s-1", ("s-1",), "fly_tipping"),  # the same revision again: nothing new
    _published("street", "s-1", ("s-1",), "fly_tipping", revision=2),
    PromptRetired(prompt_id="s-2:litter", area_id="s-2", category=Category.LITTER, retired_at=NOW),
    _published("street", "s-9", ("s-9",), "graffiti"),
    Tombstone("s-9:graffiti"),
    _published("street", "s-2", ("s-2",), "litter", revision=2),  # published again after retiring
]


async def _stored(conn: asyncpg.Connection) -> tuple[list, list, list, set]:
    changes = await conn.fetch(
        "SELECT prompt_id, revision, area_kind, street_ids, category, sensitivity, event"
        " FROM notifier.changes ORDER BY prompt_id, revision"
    )
    retired = await conn.fetch("SELECT prompt_id FROM notifier.retired ORDER BY prompt_id")
    mails = await conn.fetch(
        "SELECT s.label, o.prompt_id, o.revision FROM notifier.outbox o"
        " JOIN notifier.subscriptions s USING (subscription_id) ORDER BY o.id"
    )
    order: list[tuple[str, int]] = []  # the changes in the order their mails were queued
    for m in mails:
        if not order or order[-1] != (m["prompt_id"], m["revision"]):
            order.append((m["prompt_id"], m["revision"]))
    return (
        [tuple(r) for r in changes],
        [r["prompt_id"] for r in retired],
        order,
        {tuple(m) for m in mails},
    )


async def test_a_poll_stored_at_once_equals_one_event_at_a_time(fresh_database_url) -> None:
    pool = await create_pool(fresh_database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "notifier", MIGRATIONS)
            for label, (streets, units, wards, categories) in ALERTS.items():
                await conn.execute(
                    "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids,"
                    " unit_ids, ward_codes, categories, frequency, status, confirm_sha256,"
                    " confirm_expires_at, confirmed_at) VALUES ($1, 'batch@example.org', 'area', $2, $3,"
                    " $4, $5, $6, 'instant', 'active', $7, $8, $8)",
                    uuid.uuid4(),
                    label,
                    streets,
                    units,
                    wards,
                    categories,
                    secrets.token_bytes(32),
                    CONFIRMED,
                )

        one_by_one = [await apply_events(pool, [event], NOW) for event in POLL]
        async with pool.acquire() as conn:
            expected = await _stored(conn)
            await conn.execute("TRUNCATE notifier.changes, notifier.retired, notifier.outbox")
        at_once = await apply_events(pool, POLL, NOW)
        async with pool.acquire() as conn:
            got = await _stored(conn)

        assert at_once == sum(one_by_one)
        assert got == expected
        changes, retired, order, mails = got
        assert retired == ["s-9:graffiti"]  # s-2's litter prompt was published again after retiring
        assert order == [
            ("s-1:fly_tipping", 1),
            ("s-2:litter", 1),
            ("u-1:isolation", 1),
            ("W1:litter", 1),
            ("s-1:fly_tipping", 2),
            ("s-9:graffiti", 1),
            ("s-2:litter", 2),
        ]
        assert mails == {
            ("on the street", "s-1:fly_tipping", 1),
            ("on the street", "s-1:fly_tipping", 2),
            ("on two streets, litter only", "s-2:litter", 1),
            ("on two streets, litter only", "s-2:litter", 2),
            ("the unit", "u-1:isolation", 1),
            ("the unit's street", "u-1:isolation", 1),
            ("the ward", "W1:litter", 1),  # a ward's prompt reaches ward alerts only
            ("elsewhere", "s-9:graffiti", 1),
        }
        assert len(changes) == 7
        # Replayed, the poll queues nothing more.
        assert await apply_events(pool, POLL, NOW) == 0
    finally:
        await pool.close()
