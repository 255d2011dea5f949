"""Quarterly ward trends: two quarters of monthly releases give a ward trend on the real topic."""

from __future__ import annotations

import asyncio
import datetime as dt
import json
import re
import uuid
from collections import Counter

import pytest
from aiokafka import AIOKafkaConsumer

from services.aggregator import repository as repo
from services.aggregator.areas import load_areas
from services.aggregator.cli import _release
from services.aggregator.consumer import topic_partitions
from services.aggregator.disclosure import period_start, previous_quarter, quarter_months, quarter_of
from services.aggregator.main import MIGRATIONS
from services.aggregator.outbox import relay_once, start_producer
from services.aggregator.releases import last_finished_period, release_period
from services.aggregator.settings import AggregatorSettings
from services.aggregator.state import BatchDelta
from services.prompter.templates import render
from shared.contracts import STREET_NEEDS, StreetNeedChanged
from shared.db import apply_migrations, create_pool

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]


def _last_finished_quarter(now: dt.datetime) -> str:
    month = last_finished_period(now)
    quarter = quarter_of(month)
    return quarter if quarter_months(quarter)[-1] <= month else previous_quarter(quarter)


async def _end_offsets(settings: AggregatorSettings):
    partitions = await topic_partitions(settings, STREET_NEEDS.name)
    probe = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap_servers)
    await probe.start()
    try:
        return partitions, await probe.end_offsets(partitions)
    finally:
        await probe.stop()


async def _read_key(bootstrap: str, partitions, starts, key: bytes) -> list[bytes | None]:
    """Every value a real consumer reads for `key` from the run's street-needs topic since `starts`."""
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap)
    await consumer.start()
    consumer.assign(partitions)
    for tp, offset in starts.items():
        consumer.seek(tp, offset)
    seen: list[bytes | None] = []
    try:
        for _ in range(60):
            for records in (await consumer.getmany(timeout_ms=500, max_records=5000)).values():
                seen.extend(r.value for r in records if r.key == key)
            if seen:
                return seen
            await asyncio.sleep(0.1)
    finally:
        await consumer.stop()
    raise AssertionError(f"nothing for {key!r} on {STREET_NEEDS.name}")


async def test_two_quarters_of_releases_publish_a_ward_trend(stack, fresh_database_url):
    settings = AggregatorSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers=stack["kafka"],
        noise=False,
        allow_weaker_than_policy=True,
    )
    policy = settings.policy()
    now = dt.datetime.now(dt.UTC)
    quarter = _last_finished_quarter(now)
    this, last = quarter_months(quarter), quarter_months(previous_quarter(quarter))
    pool = await create_pool(fresh_database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            areas = await load_areas(conn, policy)
        publishable = Counter(
            u.ward_code
            for u in areas.person_units.values()
            if u.publishable and u.address_count >= policy.min_unit_addresses
        )
        # A ward of several units (its total survives suppression) and one of a single unit (it cannot).
        ward = min(w for w, n in publishable.items() if n >= 3)
        lone = min(w for w, n in publishable.items() if n == 1)
        unit = min(u for u, info in areas.person_units.items() if info.ward_code == ward and info.publishable)
        street = areas.area(unit).street_ids[0]

        # Ten isolated neighbours from the first day of the quarter: none in the quarter before.
        raised = dt.datetime.fromisoformat(f"{this[0]}-01T00:00:00+00:00")
        subjects = [uuid.uuid4().hex * 2 for _ in range(10)]
        async with pool.acquire() as conn:
            await repo.apply_delta(
                conn, BatchDelta(raised={(street, "isolation", s): raised for s in subjects})
            )

        partitions, starts = await _end_offsets(settings)
        for month in (*last, *this[:2]):
            summary = await release_period(pool, areas, policy, month, now)
            assert not summary.already_released
            if month == last[-1]:  # the earlier quarter is decided, but has no quarter before it
                assert summary.quarter.complete and summary.quarter.published == 0
            else:
                assert summary.quarter is None
        # The operator's command for the quarter's last month also releases the quarter's trends.
        said = await _release(settings, this[-1], force=True)
        assert re.search(rf"{quarter} ward trends: [1-9]\d* published", said), said
        # Idempotent: releasing it again decides nothing twice and queues nothing.
        async with pool.acquire() as conn:
            queued = await conn.fetchval("SELECT count(*) FROM aggregator.outbox")
        again = await release_period(pool, areas, policy, this[-1], now)
        assert again.already_released and again.quarter is None
        async with pool.acquire() as conn:
            assert await conn.fetchval("SELECT count(*) FROM aggregator.outbox") == queued
            withheld = {
                (r["area_id"], r["category"]): r["reason"]
                for r in await repo.list_withheld(conn, quarter, 5000, 0)
            }
            kept = await conn.fetchval(
                "SELECT count(*) FROM aggregator.ward_totals WHERE period = ANY($1)", [*this, *last]
            )
        assert kept > 0  # ward totals persisted per release: a restart can still sum a quarter
        assert withheld[(lone, "isolation")] == "secondary_suppression"
        assert (ward, "isolation") not in withheld

        # A later month's release replaces bands, never the quarter's ward trends.
        following = last_finished_period(now)
        if following > this[-1]:
            await release_period(pool, areas, policy, following, now)
        async with pool.acquire() as conn:
            previous = await repo.load_previous(conn, sensitivity="person", keys=[(ward, "isolation")])
        assert previous[(ward, "isolation")].live

        producer = await start_producer(settings)
        try:
            while await relay_once(pool, producer, 500):
                pass
        finally:
            await producer.stop()
    finally:
        await pool.close()

    values = await _read_key(stack["kafka"], partitions, starts, f"{ward}:isolation".encode())
    assert len(values) == 1 and values[0] is not None
    need = StreetNeedChanged.model_validate_json(values[0])
    assert need.band is None and need.count is None and need.trend == "up"
    assert re.fullmatch(r"\d{4}-Q[1-4]", need.period) and need.period == quarter
    assert need.since == period_start(quarter)
    assert (need.area_id, need.area_kind, need.ward_code) == (ward, "ward", ward)
    assert need.area_name == areas.wards[ward].name
    assert set(need.street_ids) == {s for s, a in areas.streets.items() if areas.area(s).ward_code == ward}
    # Only a direction: no total or sum of the quarter anywhere in the message.
    body = json.loads(values[0])
    assert {k: body[k] for k in ("band", "count")} == {"band": None, "count": None}
    wording = render(need, 0)
    assert wording is not None
    assert wording.title == f"More older neighbours in {need.area_name} may be feeling lonely"


async def test_a_quarter_waits_for_a_month_released_late(stack, fresh_database_url):
    settings = AggregatorSettings(
        _env_file=None,
        database_url=fresh_database_url,
        kafka_bootstrap_servers=stack["kafka"],
        noise=False,
        allow_weaker_than_policy=True,
    )
    policy = settings.policy()
    now = dt.datetime.now(dt.UTC)
    quarter = _last_finished_quarter(now)
    first, second, third = quarter_months(quarter)
    pool = await create_pool(fresh_database_url)
    try:
        async with pool.acquire() as conn:
            await apply_migrations(conn, "aggregator", MIGRATIONS)
            areas = await load_areas(conn, policy)
        assert (await release_period(pool, areas, policy, first, now)).quarter is None
        # The last month before the middle one: the audit says why, the quarter stays open.
        open_ = (await release_period(pool, areas, policy, third, now)).quarter
        assert not open_.complete and open_.published == 0
        assert open_.withheld == len(areas.wards) * len(policy.person_categories)
        decided = (await release_period(pool, areas, policy, second, now)).quarter
        assert decided.complete and decided.published == 0  # the quarter before was never released
        assert (await release_period(pool, areas, policy, third, now)).quarter is None  # decided once
        async with pool.acquire() as conn:
            reasons = {r["reason"] for r in await repo.list_withheld(conn, quarter, 5000, 0)}
            done = await conn.fetchval(
                "SELECT count(*) FROM aggregator.quarter_trends WHERE quarter = $1", quarter
            )
            trends = await conn.fetchval(
                "SELECT count(*) FROM aggregator.published WHERE area_id = ANY($1)", list(areas.wards)
            )
        assert reasons == {"quarter_incomplete"} and done == 1 and trends == 0
    finally:
        await pool.close()
