"""Addresses stay in the notifier's schema: after a sign-up, confirmation, an alert, a bounce and a
refused sign-up through the real notifier process, no Kafka topic, no log line (at DEBUG) and no
other schema holds any of the addresses."""

from __future__ import annotations

import asyncio
import datetime as dt
import os
import re
import secrets
import subprocess
import sys
from pathlib import Path

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from services.notifier.sink import MailSink, free_port, messages
from shared.contracts import ALL_TOPICS, PROMPTS, PromptPublished

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

ROOT = Path(__file__).resolve().parents[2]


async def _eventually(check, what: str, attempts: int = 600):
    for _ in range(attempts):
        result = check()
        if asyncio.iscoroutine(result):
            result = await result
        if result:
            return result
        await asyncio.sleep(0.1)
    raise AssertionError(f"timed out waiting for {what}")


def _start(env: dict[str, str], log: Path) -> subprocess.Popen:
    return subprocess.Popen(
        [sys.executable, "-m", "services.notifier"],
        cwd=ROOT,
        env=env,
        stdout=log.open("ab"),
        stderr=subprocess.STDOUT,
    )


async def _ready(base: str, proc: subprocess.Popen) -> None:
    async with httpx.AsyncClient(timeout=2) as client:
        for _ in range(1200):
            assert proc.poll() is None, "the notifier exited"
            try:
                if (await client.get(f"{base}/readyz")).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            await asyncio.sleep(0.1)
    raise AssertionError("the notifier never became ready")


async def _topics_text(bootstrap: str) -> bytes:
    """Every record (key and value) on every topic of this test run, concatenated."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, group_id=None, enable_auto_commit=False)
    await consumer.start()
    found = bytearray()
    try:
        # Every topic in the registry (names carry this run's prefix): all a service can produce to.
        parts = [TopicPartition(t.name, p) for t in ALL_TOPICS for p in range(t.partitions)]
        consumer.assign(parts)
        await consumer.seek_to_beginning(*parts)
        ends = await consumer.end_offsets(parts)
        while [tp for tp in parts if await consumer.position(tp) < ends[tp]]:
            for records in (await consumer.getmany(timeout_ms=1000, max_records=5000)).values():
                for r in records:
                    found += (r.key or b"") + b"\n" + (r.value or b"") + b"\n"
    finally:
        await consumer.stop()
    return bytes(found)


async def test_addresses_appear_in_no_topic_log_or_other_schema(
    stack, fresh_database_url, camden_gazetteer, random_id, tmp_path, unused_tcp_port
):
    street = sorted(camden_gazetteer.streets)[31]
    base = f"http://127.0.0.1:{unused_tcp_port}"
    confirmed = f"Private.Person-{random_id}@Example.org"
    bounced = f"bounced-{random_id}@example.org"
    refused = f"refused-{random_id}@@example.org"
    smtp_port, maildir, log = free_port(), tmp_path / "mail", tmp_path / "notifier.log"
    webhook = secrets.token_urlsafe(32)
    env = {
        **os.environ,
        "DATABASE_URL": fresh_database_url,
        "KAFKA_BOOTSTRAP_SERVERS": stack["kafka"],
        "NOTIFIER_PORT": str(unused_tcp_port),
        "NOTIFIER_BASE_URL": base,
        "NOTIFIER_GROUP_ID": f"privacy-{random_id}",
        "NOTIFIER_LINK_SECRET": secrets.token_urlsafe(32),
        "NOTIFIER_WEBHOOK_TOKEN": webhook,
        "NOTIFIER_SMTP_PORT": str(smtp_port),
        "NOTIFIER_SENDER_IDLE_S": "0.1",
        "LOG_LEVEL": "DEBUG",
    }
    prompt = PromptPublished(
        prompt_id=f"street:{street}:litter:{random_id}",
        revision=1,
        area_id=street,
        area_kind="street",
        area_name="Privacy street",
        street_ids=(street,),
        category="litter",
        sensitivity="place",
        title=f"Litter {random_id}",
        body="Litter by the bus stop.",
        published_at=dt.datetime.now(dt.UTC),
    )
    with MailSink(maildir, smtp_port):
        proc = _start(env, log)
        try:
            await _ready(base, proc)
            async with httpx.AsyncClient(
                base_url=base, timeout=30, headers={"Accept": "text/html"}
            ) as client:
                for address in (confirmed, bounced, refused):
                    await client.post(
                        "/subscribe", data={"email": address, "kind": "street", "street_id": street}
                    )
                mail = (
                    await _eventually(
                        lambda: [m for _, m in messages(maildir) if "private" in m["To"]], "mail"
                    )
                )[0]
                link = re.search(r"(http://\S+/confirm/\S+)", mail.get_body(("plain",)).get_content()).group(
                    1
                )
                assert (await client.post(link)).status_code == 200
                bounce = {"events": [{"type": "bounce", "email": bounced, "permanent": True}]}
                done = await client.post(
                    "/v1/bounces", json=bounce, headers={"Authorization": f"Bearer {webhook}"}
                )
                assert done.json()["suppressed"] == 1
            producer = AIOKafkaProducer(bootstrap_servers=stack["kafka"], acks="all")
            await producer.start()
            try:
                await producer.send_and_wait(
                    PROMPTS.name, prompt.model_dump_json().encode(), key=prompt.prompt_id.encode()
                )
            finally:
                await producer.stop()
            await _eventually(
                lambda: [m for _, m in messages(maildir) if prompt.title in m["Subject"]], "the alert"
            )
        finally:
            proc.terminate()
            proc.wait(timeout=30)

    needles = [a.lower().encode() for a in (confirmed, bounced, refused)] + [
        a.split("@")[0].lower().encode() for a in (confirmed, bounced, refused)
    ]
    logs = log.read_bytes().lower()
    assert b"service started" in logs
    assert not [n for n in needles if n in logs], "an address (or its local part) reached the logs"

    topics = (await _topics_text(stack["kafka"])).lower()
    assert prompt.title.lower().encode() in topics
    assert not [n for n in needles if n in topics], "an address reached a Kafka topic"

    conn = await asyncpg.connect(fresh_database_url)
    try:
        assert await conn.fetchval(
            "SELECT count(*) FROM notifier.subscriptions WHERE email = $1", confirmed.lower()
        )
        tables = await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables WHERE table_type = 'BASE TABLE'"
            " AND table_schema NOT IN ('notifier', 'pg_catalog', 'information_schema')"
        )
        assert tables, "the gazetteer's schema at least is there to scan"
        for t in tables:
            for needle in needles:
                hits = await conn.fetchval(
                    f'SELECT count(*) FROM "{t["table_schema"]}"."{t["table_name"]}" x'
                    " WHERE lower(x::text) LIKE '%' || $1 || '%'",
                    needle.decode(),
                )
                assert hits == 0, f"{needle!r} in {t['table_schema']}.{t['table_name']}"
    finally:
        await conn.close()
