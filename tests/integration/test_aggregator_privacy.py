"""Aggregator privacy findings on the real database: key rotation, purge, audit counts, floors."""

from __future__ import annotations

import base64
import datetime as dt
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiokafka.structs import ConsumerRecord
from pydantic import ValidationError

from services.aggregator import repository as repo
from services.aggregator.areas import Areas
from services.aggregator.consumer import topic_partitions
from services.aggregator.disclosure import (
    DisclosurePolicy,
    Ledger,
    ReleaseResult,
    Withheld,
    tally,
)
from services.aggregator.processing import parse_record, process_batch
from services.aggregator.releases import caught_up
from services.aggregator.settings import AggregatorSettings
from services.aggregator.state import active_subjects, person_memberships
from services.aggregator.subjects import purge
from services.ingest.anonymise import Pseudonymiser
from shared import privacy
from shared.contracts import SIGNALS_ANONYMISED, DeadLettered, SignalAnonymised
from shared.db import apply_migrations

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
MIGRATIONS = Path(__file__).resolve().parents[2] / "services/aggregator/migrations"
NOW = dt.datetime.now(dt.UTC)
TODAY = NOW.replace(hour=0, minute=0, second=0, microsecond=0)
SECRETS = {1: b"a" * 40, 2: b"b" * 40, 3: b"c" * 40}
STREET, OTHER = "way/1", "way/2"


def pseudonym(version: int, ref: str = "ASC-1") -> str:
    return hmac.new(SECRETS[version], f"camden:{ref}".encode(), hashlib.sha256).hexdigest()


def event(action: str, version: int, at: dt.datetime, street=STREET, category="isolation", ref="ASC-1"):
    """What ingest sends with secret `version` current and every version up to it listed."""
    ingest = Pseudonymiser({v: k for v, k in SECRETS.items() if v <= version}, version)
    assert ingest.subject_key("camden", ref) == pseudonym(version, ref)
    assert ingest.previous_keys("camden", ref) == tuple(pseudonym(v, ref) for v in range(1, version))
    return SignalAnonymised(
        event_id=uuid.uuid4(),
        category=category,
        sensitivity="person" if category in ("isolation", "overcrowding") else "place",
        action=action,
        street_id=street,
        subject_key=pseudonym(version, ref),
        key_version=version,
        previous_keys=tuple(pseudonym(v, ref) for v in range(1, version)),
        occurred_at=at,
        council_id="camden",
        source="http",
    )


@pytest.fixture
async def conn(fresh_database_url):
    connection = await asyncpg.connect(fresh_database_url)
    await apply_migrations(connection, "aggregator", MIGRATIONS)
    try:
        yield connection
    finally:
        await connection.close()


async def apply(conn, *events: SignalAnonymised) -> None:
    """One batch per event, in the order given (as separate partitions may deliver them)."""
    areas = Areas(None, DisclosurePolicy())
    for e in events:
        await process_batch(conn, [e], {}, areas, now=NOW, trend_days=30)


async def test_a_withdrawal_under_the_new_key_ends_the_raise_made_under_the_old_one(conn):
    await apply(conn, event("raised", 1, TODAY - dt.timedelta(days=20)))
    await apply(conn, event("withdrawn", 2, TODAY - dt.timedelta(days=1)))
    assert active_subjects(await repo.rows(conn), NOW) == {}
    state = await repo.snapshot(conn)
    assert set(state.raised) == {(STREET, "isolation", pseudonym(2))}  # re-keyed, nothing under v1


async def test_a_late_old_key_raise_is_mapped_to_the_new_subject(conn):
    # Order across partitions is not guaranteed: the old-key raise may arrive after the rotation.
    await apply(conn, event("withdrawn", 2, TODAY - dt.timedelta(days=1), street=OTHER))
    await apply(conn, event("raised", 1, TODAY - dt.timedelta(days=20)))
    assert active_subjects(await repo.rows(conn), NOW) == {}


async def test_generations_linked_in_any_order_end_as_one_subject_under_the_newest_key(conn):
    await apply(conn, event("raised", 3, TODAY - dt.timedelta(days=3)))  # v3 links v1 and v2 to it
    await apply(conn, event("raised", 2, TODAY - dt.timedelta(days=5), street=OTHER))  # a late v2 event
    await apply(conn, event("raised", 1, TODAY - dt.timedelta(days=9), street="way/3"))  # and a v1 one
    assert {r.subject_key for r in await repo.rows(conn)} == {pseudonym(3)}
    aliases = await conn.fetch("SELECT alias_key, subject_key, key_version FROM aggregator.subject_aliases")
    assert {(r["alias_key"], r["subject_key"], r["key_version"]) for r in aliases} == {
        (pseudonym(1), pseudonym(3), 3),
        (pseudonym(2), pseudonym(3), 3),
    }


async def test_a_re_raise_under_the_new_key_is_one_subject_with_one_budget(conn):
    period = f"{NOW.year:04d}-01"
    await apply(conn, event("raised", 1, TODAY - dt.timedelta(days=20)))
    await conn.execute(
        "INSERT INTO aggregator.epsilon_ledger (subject_key, period, epsilon) VALUES ($1, $2, 0.5)",
        pseudonym(1),
        period,
    )  # a release made before the rotation charged the old pseudonym
    await apply(conn, event("raised", 2, TODAY - dt.timedelta(days=2), street=OTHER))
    await apply(conn, event("raised", 3, TODAY - dt.timedelta(days=1)))  # a second rotation
    rows = await repo.rows(conn)
    assert {r.subject_key for r in rows} == {pseudonym(3)}
    assert active_subjects(rows, NOW) == {
        (STREET, "isolation"): {pseudonym(3)},
        (OTHER, "isolation"): {pseudonym(3)},
    }
    month = f"{(TODAY - dt.timedelta(days=1)):%Y-%m}"
    members = person_memberships(rows, month, lambda street: "unit-1")
    assert list(members) == [(pseudonym(3), "isolation")]  # counted once
    ledger_rows = await conn.fetch("SELECT subject_key, period, epsilon FROM aggregator.epsilon_ledger")
    assert [(r["subject_key"], r["period"], r["epsilon"]) for r in ledger_rows] == [
        (pseudonym(3), period, 0.5)
    ]
    ledger = Ledger(await repo.load_ledger(conn, [pseudonym(3)], NOW.year))
    assert ledger.spent(pseudonym(3), NOW.year) == 0.5  # one budget, carried across the rotation
    counted = tally(month, members, ledger, DisclosurePolicy())
    assert sum(counted.counts.values()) == 1


async def test_purge_removes_ended_pseudonyms_and_keeps_what_may_still_count(conn):
    old, recent = TODAY - dt.timedelta(days=400), TODAY - dt.timedelta(days=3)
    await apply(
        conn,
        event("raised", 1, old, ref="expired"),  # isolation lives 180 days: long over
        event("raised", 1, recent - dt.timedelta(days=100), ref="withdrawn-long-ago"),
        event("withdrawn", 1, recent - dt.timedelta(days=90), ref="withdrawn-long-ago"),
        event("raised", 1, recent, ref="active"),
        event("raised", 1, recent - dt.timedelta(days=10), ref="withdrawn-lately"),
        event("withdrawn", 1, recent, ref="withdrawn-lately"),
        event("raised", 2, recent, ref="rotated"),
    )
    await conn.execute(
        "INSERT INTO aggregator.epsilon_ledger (subject_key, period, epsilon)"
        " VALUES ($1, $2, 0.5), ($3, $4, 0.5)",
        pseudonym(1, "active"),
        f"{NOW.year - 1:04d}-12",
        pseudonym(1, "active"),
        f"{NOW.year:04d}-01",
    )
    deleted = await purge(conn, NOW, keep_days=62)
    keys = {r.subject_key for r in await repo.rows(conn)}
    assert keys == {pseudonym(1, "active"), pseudonym(1, "withdrawn-lately"), pseudonym(2, "rotated")}
    assert deleted["signals"] == 2 and deleted["epsilon_ledger"] == 1
    withdrawals = {
        r["subject_key"] for r in await conn.fetch("SELECT subject_key FROM aggregator.withdrawals")
    }
    assert pseudonym(1, "withdrawn-lately") in withdrawals
    ledger = await conn.fetch("SELECT period FROM aggregator.epsilon_ledger")
    assert [r["period"] for r in ledger] == [f"{NOW.year:04d}-01"]  # only this year's counts toward the cap
    aliases = await conn.fetch("SELECT alias_key FROM aggregator.subject_aliases")
    assert [r["alias_key"] for r in aliases] == [pseudonym(1, "rotated")]  # its subject is still active


async def test_the_audit_keeps_counts_by_reason_never_the_units(conn):
    result = ReleaseResult(
        period="2026-01",
        published=(),
        withheld=(
            Withheld("unit-7", "isolation", "below_threshold"),
            Withheld("unit-9", "isolation", "below_threshold"),
            Withheld("unit-9", "overcrowding", "budget_exhausted"),
        ),
        ward_totals={},
    )
    await repo.save_release(conn, result, {}, 3, NOW)
    stored = await conn.fetch("SELECT * FROM aggregator.withheld WHERE period = '2026-01'")
    assert stored == []
    summary = [dict(r) for r in await repo.withheld_summary(conn, "2026-01")]
    assert [(r["category"], r["reason"], r["cells"]) for r in summary] == [
        ("isolation", "below_threshold", 2),
        ("overcrowding", "budget_exhausted", 1),
    ]
    assert "unit" not in json.dumps([{k: str(v) for k, v in r.items()} for r in summary])


def test_dead_letters_never_carry_a_pseudonym():
    bad = event("raised", 2, TODAY).model_dump(mode="json") | {"category": "not-a-category"}
    value = json.dumps(bad).encode()
    record = ConsumerRecord("signals-anonymised.v1", 0, 5, 0, 0, b"way/1", value, None, 0, len(value), [])
    _, letter = parse_record(record)
    original = base64.b64decode(DeadLettered.model_validate_json(letter).original_b64)
    assert pseudonym(2) not in original.decode() and pseudonym(1) not in original.decode()
    assert pseudonym(2) not in letter.decode()
    assert b"not-a-category" in original  # the rest is kept, for the operator to see what was wrong


@pytest.mark.parametrize(
    "weaker",
    [
        {"noise": False},
        {"min_subjects": privacy.MIN_SUBJECTS - 1},
        {"min_unit_addresses": privacy.MIN_UNIT_ADDRESSES - 1},
        {"min_street_addresses": 1},
        {"epsilon_per_release": privacy.EPSILON_PER_RELEASE * 2},
        {"annual_epsilon_cap": privacy.ANNUAL_EPSILON_CAP + 1},
    ],
)
def test_settings_weaker_than_the_policy_are_refused_unless_allowed(weaker, caplog):
    base = {"_env_file": None, "database_url": "postgresql://x@127.0.0.1/x", "kafka_bootstrap_servers": "x:1"}
    with pytest.raises(ValidationError, match=r"weaker than docs/privacy\.md"):
        AggregatorSettings(**base, **weaker)
    allowed = AggregatorSettings(**base, **weaker, allow_weaker_than_policy=True)
    assert allowed.weaker_than_policy()
    assert any("WEAKER THAN POLICY" in r.getMessage() for r in caplog.records)
    assert AggregatorSettings(**base).weaker_than_policy() == []


async def test_a_release_waits_for_the_state_to_reach_the_topic_end_not_for_record_times(
    conn, fresh_database_url, kafka_settings
):
    # Record timestamps on the signals topic are coarse (rule 1), so "caught up" is decided on offsets.
    partitions = await topic_partitions(kafka_settings)
    consumer = AIOKafkaConsumer(bootstrap_servers=kafka_settings.kafka_bootstrap_servers)
    await consumer.start()
    try:
        ends = await consumer.end_offsets(partitions)
    finally:
        await consumer.stop()
    pool = await asyncpg.create_pool(fresh_database_url, min_size=1, max_size=2)
    try:
        if any(ends.values()):
            behind = {tp.partition: max(0, end - 1) for tp, end in ends.items()}
            await repo.insert_offsets(conn, SIGNALS_ANONYMISED.name, behind)
            assert not await caught_up(pool, kafka_settings, wait_s=0)
        await conn.execute("DELETE FROM aggregator.consumer_offsets")
        await repo.insert_offsets(conn, SIGNALS_ANONYMISED.name, {tp.partition: n for tp, n in ends.items()})
        assert await caught_up(pool, kafka_settings, wait_s=0)
    finally:
        await pool.close()


def test_the_purge_command_reports_what_it_deleted(fresh_database_url, kafka_settings, monkeypatch):
    from typer.testing import CliRunner

    from services.aggregator.cli import app

    monkeypatch.setenv("DATABASE_URL", fresh_database_url)
    monkeypatch.setenv("KAFKA_BOOTSTRAP_SERVERS", kafka_settings.kafka_bootstrap_servers)
    result = CliRunner().invoke(app, ["purge"])
    assert result.exit_code == 0, result.output
    assert result.output.startswith("purged: 0 signals, 0 withdrawals, 0 epsilon_ledger, 0 subject_aliases")
