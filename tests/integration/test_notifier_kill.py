"""A kill -9 of the notifier loses no mail; the only repeats are mails in flight at a kill, resent
with the same Message-ID. The real notifier process is SIGKILLed twice while it consumes and sends."""

from __future__ import annotations

import asyncio
import collections
import datetime as dt
import os
import secrets
import signal
import subprocess
import sys
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from services.notifier.main import MIGRATIONS
from services.notifier.sink import MailSink, free_port, messages
from shared.contracts import PROMPTS, PromptPublished
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(300)]

ROOT = Path(__file__).resolve().parents[2]
SUBSCRIBERS = 200
PROMPTS_PER_WAVE = 5
WORKERS = 2


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.notifier"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _sent(conn) -> int:
    return await conn.fetchval("SELECT count(*) FROM notifier.outbox WHERE sent_at IS NOT NULL")


async def _wait_for(conn, at_least: int, proc: subprocess.Popen, within: float) -> int:
    deadline = asyncio.get_running_loop().time() + within
    while asyncio.get_running_loop().time() < deadline:
        count = await _sent(conn)
        if count >= at_least:
            return count
        assert proc.poll() is None, "the notifier exited by itself"
        await asyncio.sleep(0.05)
    return await _sent(conn)


def _prompt(street: str, random_id: str, n: int) -> PromptPublished:
    return PromptPublished(
        prompt_id=f"street:{street}:graffiti:{random_id}-{n}",
        revision=1,
        area_id=street,
        area_kind="street",
        area_name="Kill street",
        street_ids=(street,),
        category="graffiti",
        sensitivity="place",
        title=f"Graffiti {random_id}-{n}",
        body="Tags on the wall.",
        published_at=dt.datetime.now(dt.UTC),
    )


async def _produce(bootstrap: str, events: list[PromptPublished]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for e in events:
            await producer.send_and_wait(PROMPTS.name, e.model_dump_json().encode(), key=e.prompt_id.encode())
    finally:
        await producer.stop()


async def test_kill_9_loses_no_mail_and_repeats_only_in_flight_ones(
    stack, fresh_database_url, camden_gazetteer, random_id, tmp_path, unused_tcp_port
):
    street = sorted(camden_gazetteer.streets)[11]
    conn = await asyncpg.connect(fresh_database_url)
    await apply_migrations(conn, "notifier", MIGRATIONS)
    addresses = [f"k{i}-{random_id}@example.org" for i in range(SUBSCRIBERS)]
    await conn.executemany(
        "INSERT INTO notifier.subscriptions (subscription_id, email, kind, label, street_ids, unit_ids,"
        " ward_codes, categories, frequency, status, confirm_sha256, confirm_expires_at, confirmed_at)"
        " VALUES ($1, $2, 'street', 'Kill street', $3, '{}', '{}', '{}', 'instant', 'active', $4,"
        " now(), now())",
        [(uuid.uuid4(), a, [street], secrets.token_bytes(32)) for a in addresses],
    )
    maildir, smtp_port, log = tmp_path / "mail", free_port(), tmp_path / "notifier.log"
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "NOTIFIER_PORT": str(unused_tcp_port),
        "NOTIFIER_GROUP_ID": f"kill-{random_id}",
        "NOTIFIER_LINK_SECRET": secrets.token_urlsafe(32),
        "NOTIFIER_SMTP_PORT": str(smtp_port),
        "NOTIFIER_SENDER_WORKERS": str(WORKERS),
        "NOTIFIER_SENDER_BATCH": "20",
        "NOTIFIER_SENDER_IDLE_S": "0.1",
        "NOTIFIER_LEASE_S": "3",  # rows a killed sender had claimed come back quickly
        "NOTIFIER_SMTP_TIMEOUT_S": "2",  # (a lease must outlast one SMTP timeout)
        "LOG_LEVEL": "DEBUG",  # the most the notifier ever logs: checked for addresses below
    }
    waves = [
        [_prompt(street, random_id, w * PROMPTS_PER_WAVE + i) for i in range(PROMPTS_PER_WAVE)]
        for w in (0, 1)
    ]
    total = SUBSCRIBERS * PROMPTS_PER_WAVE * 2
    kills = 0
    with MailSink(maildir, smtp_port):
        try:
            await _produce(stack["kafka"], waves[0])
            for threshold, wave in ((SUBSCRIBERS, waves[1]), (total // 2 + SUBSCRIBERS, None)):
                proc = _start(env, log)
                try:
                    reached = await _wait_for(conn, threshold, proc, within=120)
                    assert reached >= threshold, f"the notifier stalled at {reached} mails sent"
                finally:
                    proc.send_signal(
                        signal.SIGKILL
                    )  # no shutdown: claims, offsets and in-flight mail are cut
                    proc.wait()
                    kills += 1
                if wave:
                    await _produce(stack["kafka"], wave)
            proc = _start(env, log)
            try:
                final = await _wait_for(conn, total, proc, within=180)
            finally:
                proc.terminate()
                proc.wait(timeout=30)
            rows = await conn.fetchval("SELECT count(*) FROM notifier.outbox")
        finally:
            await conn.close()
        mails = messages(maildir)

    assert kills == 2
    assert rows == total, "one outbox row per subscriber and prompt, however often records were redelivered"
    assert final == total, "every mail was sent"
    by_id = collections.Counter(m["Message-ID"] for _, m in mails)
    assert len(by_id) == total, "every (subscriber, prompt) mail reached the server: nothing lost"
    repeats = sum(n - 1 for n in by_id.values())
    # A repeat is a mail the server accepted but the killed sender had not yet marked: at most one per
    # worker per kill, and it carries the same Message-ID as the first copy.
    assert repeats <= WORKERS * kills
    text = log.read_text(errors="replace")
    assert "service started" in text
    assert not [a for a in addresses if a in text], "no address in the notifier's logs"
