"""Two notifier replicas on one database and consumer group, their senders competing for the same
outbox: every mail goes out exactly once (no kill, so no repeat at all)."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import secrets
import uuid

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.notifier.main import MIGRATIONS, create_app
from services.notifier.settings import NotifierSettings
from services.notifier.sink import MailSink, free_port, messages
from shared.contracts import PROMPTS, PromptPublished
from shared.db import apply_migrations
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SUBSCRIBERS = 60
PROMPTS_N = 10


async def test_two_replicas_send_each_mail_once(
    stack, fresh_database_url, camden_gazetteer, random_id, tmp_path
):
    street = sorted(camden_gazetteer.streets)[41]
    conn = await asyncpg.connect(fresh_database_url)
    await apply_migrations(conn, "notifier", MIGRATIONS)
    await conn.executemany(
        "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids, unit_ids,"
        " ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at, confirmed_at)"
        " VALUES ($1, $2, 'street', 'Replica street', $3, '{}', '{}', '{}', 'instant', 'active', $4,"
        " now(), now())",
        [
            (uuid.uuid4(), f"r{i}-{random_id}@example.org", [street], secrets.token_bytes(32))
            for i in range(SUBSCRIBERS)
        ],
    )
    smtp_port, maildir = free_port(), tmp_path / "mail"
    secret = secrets.token_urlsafe(32)

    def settings() -> NotifierSettings:
        return NotifierSettings(
            database_url=fresh_database_url,
            kafka_bootstrap_servers=stack["kafka"],
            link_secret=secret,
            group_id=f"replicas-{random_id}",
            smtp_port=smtp_port,
            sender_workers=3,
            sender_batch=5,  # small claims, so both replicas' senders interleave on the same rows
            sender_idle_s=0.05,
            _env_file=None,
        )

    events = [
        PromptPublished(
            prompt_id=f"street:{street}:litter:{random_id}-{n}",
            revision=1,
            area_id=street,
            area_kind="street",
            area_name="Replica street",
            street_ids=(street,),
            category="litter",
            sensitivity="place",
            title=f"Litter {random_id}-{n}",
            body="By the bus stop.",
            published_at=dt.datetime.now(dt.UTC),
        )
        for n in range(PROMPTS_N)
    ]
    total = SUBSCRIBERS * PROMPTS_N
    (sock_a, _), (sock_b, _) = loopback_socket(), loopback_socket()
    with MailSink(maildir, smtp_port):
        async with (
            serve(create_app(settings(), gazetteer=camden_gazetteer), sock_a),
            serve(create_app(settings(), gazetteer=camden_gazetteer), sock_b),
        ):
            producer = AIOKafkaProducer(bootstrap_servers=stack["kafka"], acks="all")
            await producer.start()
            try:
                for e in events:
                    await producer.send(PROMPTS.name, e.model_dump_json().encode(), key=e.prompt_id.encode())
                await producer.flush()
            finally:
                await producer.stop()
            # Only this test's prompts: other tests of the run publish on the same topic, some on this street.
            ours = f"prompt_id LIKE '%:{random_id}-%'"
            sent = f"SELECT count(*) FROM notifier.outbox WHERE sent_at IS NOT NULL AND {ours}"
            for _ in range(1800):
                if await conn.fetchval(sent) >= total:
                    break
                await asyncio.sleep(0.1)
        rows = await conn.fetchval(f"SELECT count(*) FROM notifier.outbox WHERE {ours}")
        done = await conn.fetchval(sent)
        await conn.close()
        mails = [(k, m) for k, m in messages(maildir) if f"{random_id}-" in str(m["Subject"])]

    assert rows == total and done == total
    by_id = collections.Counter(m["Message-ID"] for _, m in mails)
    assert len(by_id) == total and len(mails) == total, "each mail exactly once across both replicas"


async def test_a_sender_whose_lease_ran_out_does_not_send(fresh_database_url, random_id):
    from services.notifier import repository as repo

    conn = await asyncpg.connect(fresh_database_url)
    try:
        await apply_migrations(conn, "notifier", MIGRATIONS)
        sid = uuid.uuid4()
        await conn.execute(
            "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids, unit_ids,"
            " ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at, confirmed_at)"
            " VALUES ($1, $2, 'street', 'Lease street', '{s}', '{}', '{}', '{}', 'instant', 'active', $3,"
            " now(), now())",
            sid,
            f"lease-{random_id}@example.org",
            secrets.token_bytes(32),
        )
        await conn.execute(
            "INSERT INTO notifier.outbox (subscription_id, kind, prompt_id, revision)"
            " VALUES ($1, 'instant', 'p', 1)",
            sid,
        )
        slow, other = uuid.uuid4(), uuid.uuid4()
        (row,) = await repo.claim(conn, 10, 0.05, slow)
        assert await repo.claim(conn, 10, 60, other) == [], "a leased row is skipped"
        await asyncio.sleep(0.2)  # the slow sender's lease runs out…
        (again,) = await repo.claim(conn, 10, 60, other)  # …and another sender claims the row
        assert again.id == row.id
        assert not await repo.renew(conn, row.id, slow, 60), "the slow sender must not send it"
        assert await repo.renew(conn, row.id, other, 60)
        await repo.mark_sent(conn, row.id)
        assert not await repo.renew(conn, row.id, other, 60), "a sent row is never sent again"
    finally:
        await conn.close()
