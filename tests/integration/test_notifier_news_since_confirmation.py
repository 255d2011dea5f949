"""Instant alerts are news: a revision published before the alert was confirmed queues no mail, one
published in the confirmation's own minute (or later) does. A new consumer group reads prompts.v1
from its start, and what the topic retained must not all be mailed to a new subscriber."""

from __future__ import annotations

import datetime as dt
import secrets
import uuid

import pytest

from services.notifier.consume import apply_events
from services.notifier.main import MIGRATIONS
from shared.contracts import PromptPublished
from shared.db import apply_migrations, create_pool
from tests.support import street_prompt

pytestmark = pytest.mark.integration

CONFIRMED = dt.datetime(2026, 11, 27, 10, 0, 45, tzinfo=dt.UTC)


def _prompt(street: str, n: int, published_at: dt.datetime, revision: int = 1) -> PromptPublished:
    prompt_id = f"street:{street}:litter:{n}"
    return street_prompt(
        street, prompt_id, f"Litter {n}", revision=revision, category="litter", published_at=published_at
    )


async def test_only_revisions_published_since_confirmation_are_mailed(fresh_database_url) -> None:
    street = "s-news"
    pool = await create_pool(fresh_database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "notifier", MIGRATIONS)
            await conn.execute(
                "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids,"
                " unit_ids, ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at,"
                " confirmed_at) VALUES ($1, 'news@example.org', 'street', 'News street', $2, '{}', '{}',"
                " '{}', 'instant', 'active', $3, $4, $4)",
                uuid.uuid4(),
                [street],
                secrets.token_bytes(32),
                CONFIRMED,
            )
        minute = CONFIRMED.replace(second=0)  # published_at is coarsened down to the minute
        events = [
            _prompt(street, 1, minute - dt.timedelta(minutes=1)),  # the minute before: not news
            _prompt(street, 2, minute - dt.timedelta(days=3)),  # retained for days: not news
            _prompt(street, 2, minute + dt.timedelta(hours=1), revision=2),  # its later revision: news
            _prompt(street, 3, minute),  # the confirmation's own minute: news
            _prompt(street, 4, minute + dt.timedelta(minutes=5)),
        ]
        queued = await apply_events(pool, events, CONFIRMED + dt.timedelta(hours=2))

        rows = await pool.fetch("SELECT prompt_id, revision FROM notifier.outbox ORDER BY prompt_id")
        assert [(r["prompt_id"], r["revision"]) for r in rows] == [
            (f"street:{street}:litter:2", 2),
            (f"street:{street}:litter:3", 1),
            (f"street:{street}:litter:4", 1),
        ]
        assert queued == 3
        consumed = await pool.fetchval("SELECT count(*) FROM notifier.changes")
        assert consumed == 5, "every revision is still recorded, for digests and de-duplication"
    finally:
        await pool.close()
