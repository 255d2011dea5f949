"""Notifier benchmark: instant fan-out of one street change to 100k subscribers, and a daily digest
for 100k subscribers — time and memory — against the local SMTP sink.

A fresh database holds only the notifier's schema, with 100k confirmed instant subscribers and 100k
daily ones following one street (bulk-copied). Fan-out is the consumer's transaction for one new
prompt revision: the change is recorded and one outbox row per subscriber inserted. Digests are the
scheduler's insert for the period plus, per mail, the query and rendering of its content. Sending
runs the notifier's own sender workers against the sink (`services.notifier.sink`, its own process,
writing a Maildir) for a fixed time budget, so the figure is a rate and the time for 100k is projected
from it: sending all 200k mails would take longer than a bench run should.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import secrets
import socket
import subprocess
import sys
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import asyncpg

from bench.aggregator_peer.procs import free_port, rss_bytes
from services.notifier import repository as repo
from services.notifier.consume import apply_event
from services.notifier.digests import build_due_digests
from services.notifier.main import MIGRATIONS
from services.notifier.sender import Sender, build
from services.notifier.settings import NotifierSettings
from services.notifier.smtp import Mailer
from shared.contracts import PromptPublished
from shared.db import apply_migrations, create_database, drop_database

__all__ = ["run"]

ROOT = Path(__file__).resolve().parents[1]
SUBSCRIBERS = 100_000
SEND_BUDGET_S = 15.0
DIGEST_SAMPLE = 500
STREET = "s-bench-street"


def _row(benchmark: str, value: float, unit: str, notes: str = "") -> dict:
    return {"benchmark": benchmark, "value": round(value, 2), "unit": unit, "notes": notes}


async def _subscribers(conn: asyncpg.Connection, frequency: str, confirmed_at: dt.datetime) -> None:
    await conn.copy_records_to_table(
        "subscriptions",
        schema_name="notifier",
        columns=[
            "subscription_id",
            "email",
            "kind",
            "label",
            "street_ids",
            "unit_ids",
            "ward_codes",
            "categories",
            "frequency",
            "status",
            "confirm_sha256",
            "confirm_expires_at",
            "confirmed_at",
        ],
        records=(
            (
                uuid.uuid4(),
                f"{frequency}{i}@bench.example",
                "street",
                "Bench Street",
                [STREET],
                [],
                [],
                [],
                frequency,
                "active",
                secrets.token_bytes(32),
                confirmed_at,
                confirmed_at,
            )
            for i in range(SUBSCRIBERS)
        ),
    )


def _prompt(n: int, at: dt.datetime) -> PromptPublished:
    return PromptPublished(
        prompt_id=f"street:{STREET}:fly_tipping:{n}",
        revision=1,
        area_id=STREET,
        area_kind="street",
        area_name="Bench Street",
        street_ids=(STREET,),
        category="fly_tipping",
        sensitivity="place",
        title="Fly-tipping on Bench Street",
        body="Bags have been left by the corner. A clean-up group meets nearby.",
        published_at=at,
    )


async def _send_for(pool: asyncpg.Pool, settings: NotifierSettings, budget_s: float) -> tuple[int, float]:
    """Run the sender workers for `budget_s`; (mails sent, seconds)."""
    sender = Sender(pool, settings, lambda: dt.datetime.now(dt.UTC))
    mailers = [Mailer(settings) for _ in range(settings.sender_workers)]
    deadline = time.monotonic() + budget_s
    started = time.monotonic()

    async def worker(mailer: Mailer) -> None:
        while time.monotonic() < deadline and await sender.once(mailer):
            pass

    try:
        await asyncio.gather(*(worker(m) for m in mailers))
    finally:
        for m in mailers:
            await m.close()
    elapsed = time.monotonic() - started
    async with pool.acquire() as conn:
        sent = await conn.fetchval("SELECT count(*) FROM notifier.outbox WHERE sent_at IS NOT NULL")
        if not sent:
            error = await conn.fetchval("SELECT last_error FROM notifier.outbox WHERE last_error IS NOT NULL")
            raise RuntimeError(f"no mail sent: {error}")
    return sent, elapsed


def _start_sink(maildir: Path, smtp_port: int) -> subprocess.Popen:
    """The sink in its own process (not on the bench's busy loop); returns once it listens."""
    args = ["--maildir", str(maildir), "--smtp-port", str(smtp_port), "--http-port", str(free_port())]
    proc = subprocess.Popen(
        [sys.executable, "-m", "services.notifier.sink", *args],
        cwd=ROOT,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    for _ in range(300):
        try:
            socket.create_connection(("127.0.0.1", smtp_port), timeout=1).close()
            return proc
        except OSError:
            time.sleep(0.1)
    proc.kill()
    raise RuntimeError("the SMTP sink did not start")


async def _run(env: dict[str, str]) -> list[dict]:
    rows: list[dict] = []
    url = await create_database(env["DATABASE_URL"], prefix="bench_notifier")
    smtp_port = free_port()
    maildir = Path(tempfile.mkdtemp(prefix="bench-mail-"))
    sink = _start_sink(maildir, smtp_port)
    settings = NotifierSettings(
        database_url=url,
        kafka_bootstrap_servers=env["KAFKA_BOOTSTRAP_SERVERS"],
        link_secret=secrets.token_urlsafe(32),
        smtp_port=smtp_port,
        sender_workers=4,
        sender_batch=100,
        _env_file=None,
    )
    pool = await asyncpg.create_pool(url, min_size=2, max_size=8)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "notifier", MIGRATIONS)
            await _subscribers(conn, "instant", dt.datetime.now(dt.UTC))
            await _subscribers(conn, "daily", dt.datetime(2026, 11, 1, tzinfo=dt.UTC))
            await conn.execute("ANALYZE notifier.subscriptions")

        tracemalloc.start()
        started = time.perf_counter()
        queued = await apply_event(pool, _prompt(1, dt.datetime.now(dt.UTC)), dt.datetime.now(dt.UTC))
        fan_out_s = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert queued == SUBSCRIBERS, queued
        rows.append(
            _row(
                "instant fan-out: one street change to 100k subscribers",
                fan_out_s,
                "s",
                f"change recorded + {queued:,} outbox rows in one transaction "
                f"({queued / fan_out_s:,.0f} rows/s); Python peak {peak / 1e6:.1f} MB",
            )
        )
        again = await apply_event(pool, _prompt(1, dt.datetime.now(dt.UTC)), dt.datetime.now(dt.UTC))
        assert again == 0, "a redelivered change queues nothing"

        sent, elapsed = await _send_for(pool, settings, SEND_BUDGET_S)
        rate = sent / elapsed
        rows.append(
            _row(
                "instant mails sent to the SMTP sink",
                rate,
                "mails/s",
                f"{sent:,} in {elapsed:.0f}s, 4 sender workers, claim + render + SMTP + mark per mail; "
                f"100k projected {SUBSCRIBERS / rate / 60:.1f} min; "
                f"sink RSS {rss_bytes(sink.pid) / 1e6:.0f} MB",
            )
        )
        async with pool.acquire() as conn:
            await conn.execute("DELETE FROM notifier.outbox")  # the digest figures stand alone

        # A change in yesterday's daily period, then the scheduler at the period's end.
        now = dt.datetime(2026, 11, 27, 7, 0, tzinfo=dt.UTC)
        async with pool.acquire() as conn:
            await repo.record_changes(conn, [_prompt(2, now)], now - dt.timedelta(hours=3))
        tracemalloc.start()
        started = time.perf_counter()
        queued_digests = await build_due_digests(pool, settings, now)
        digest_s = time.perf_counter() - started
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        assert queued_digests["daily:2026-11-27"] == SUBSCRIBERS, queued_digests
        rows.append(
            _row(
                "daily digest for 100k subscribers: scheduled",
                digest_s,
                "s",
                f"{SUBSCRIBERS:,} digest rows for one period in one statement; "
                f"Python peak {peak / 1e6:.1f} MB; a second run inserts none",
            )
        )
        assert (await build_due_digests(pool, settings, now))["daily:2026-11-27"] == 0

        tracemalloc.start()
        started = time.perf_counter()
        async with pool.acquire() as conn:
            claimed = await repo.claim(conn, DIGEST_SAMPLE, 600, uuid.uuid4())
            for row in claimed:
                assert await build(conn, settings, row, now) is not None
        per_mail = (time.perf_counter() - started) / len(claimed)
        peak = tracemalloc.get_traced_memory()[1]
        tracemalloc.stop()
        rows.append(
            _row(
                "daily digest: content built per mail",
                per_mail * 1000,
                "ms",
                f"query + text/HTML rendering, {len(claimed):,} sampled; 100k projected "
                f"{per_mail * SUBSCRIBERS:.0f}s before SMTP; Python peak {peak / 1e6:.1f} MB",
            )
        )
        sent, elapsed = await _send_for(pool, settings, SEND_BUDGET_S / 2)
        rows.append(
            _row(
                "daily digest mails sent to the SMTP sink",
                sent / elapsed,
                "mails/s",
                f"{sent:,} in {elapsed:.0f}s; 100k projected {SUBSCRIBERS / (sent / elapsed) / 60:.1f} min",
            )
        )
    finally:
        await pool.close()
        sink.terminate()
        sink.wait(timeout=30)
        await drop_database(env["DATABASE_URL"], url)
        for path in maildir.rglob("*"):
            if path.is_file():
                path.unlink()
    return rows


def run(env: dict[str, str]) -> list[dict]:
    return asyncio.run(_run(env))


if __name__ == "__main__":
    from bench.__main__ import bench_env

    for row in run(bench_env()):
        print(json.dumps(row))
