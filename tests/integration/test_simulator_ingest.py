"""The simulator against a real ingest app: its signals arrive, anonymised, on signals-anonymised.v1."""

from __future__ import annotations

import datetime as dt
from itertools import islice
from pathlib import Path

import asyncpg
import httpx
import pytest

from services.ingest import repository
from services.ingest.anonymise import event_uuid
from services.ingest.auth import generate_key, hash_key
from services.ingest.main import create_app
from services.ingest.settings import IngestSettings
from shared.contracts import Category
from shared.db import apply_migrations
from simulator.model import SignalModel
from simulator.reference import load_reference
from simulator.runner import send_bulk
from simulator.sinks import HttpSink, KafkaSink
from simulator.watch import AnonymisedWatcher

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CAMDEN = Path(__file__).resolve().parents[2] / "data" / "camden"
INGEST_MIGRATIONS = Path(repository.__file__).parent / "migrations"


@pytest.fixture(scope="module")
def gazetteer(camden_gazetteer):
    return camden_gazetteer


async def _system(database_url: str, council: str) -> tuple[str, object]:
    conn = await asyncpg.connect(database_url)
    try:
        await apply_migrations(conn, "ingest", INGEST_MIGRATIONS)
        key = generate_key()
        system = await repository.create_system(
            conn,
            name="simulator test",
            council_id=council,
            key_hash=hash_key(key),
            categories=[c.value for c in Category],
            rate_per_minute=None,
        )
        return key, system.id
    finally:
        await conn.close()


def _settings(database_url: str, kafka: str, group: str) -> IngestSettings:
    return IngestSettings(
        database_url=database_url,
        kafka_bootstrap_servers=kafka,
        pseudonym_keys="1:" + "s" * 40,
        pseudonym_key_version=1,
        consumer_group=group,
    )


@pytest.mark.parametrize("transport", ["http", "kafka"])
async def test_simulated_signals_arrive_anonymised(
    transport, gazetteer, fresh_database_url, kafka_bootstrap, random_id
):
    key, system_id = await _system(fresh_database_url, "camden")
    model = SignalModel(gazetteer, load_reference(CAMDEN), seed=int(random_id, 16))
    now = dt.datetime.now(dt.UTC)
    signals = list(islice(model.signals(now - dt.timedelta(days=30), now), 200))
    expected = {event_uuid(system_id, s.event_id): s for s in signals}
    settings = _settings(fresh_database_url, kafka_bootstrap, f"sim-test-{random_id}")
    app = create_app(settings, gazetteer=gazetteer)
    watcher = AnonymisedWatcher(settings)
    await watcher.start()
    try:
        async with app.router.lifespan_context(app):
            if transport == "http":
                sink = HttpSink("http://test", key, transport=httpx.ASGITransport(app=app))
            else:
                sink = KafkaSink(settings, key)
            await sink.start()
            try:
                progress = await send_bulk(iter(signals), sink, limit=None, batch_size=50)
            finally:
                await sink.close()
            if transport == "http":
                assert progress.tally["accepted"] == 200, progress.tally
            missing = await watcher.wait_for(expected, timeout_s=60)
    finally:
        await watcher.stop()
    assert not missing, f"{len(missing)} of 200 never arrived"
    for event_id, original in expected.items():
        event = watcher.events[event_id]
        assert (event.category, event.action) == (original.category, original.action)
        assert event.council_id == "camden"
        assert event.source == transport
        assert event.street_id in gazetteer.streets
