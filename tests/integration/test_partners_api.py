"""Partner service on the real broker and a fresh database: needs in every format, history,
tombstones, API keys, and signed webhook deliveries with retries, dead-lettering and replay."""

from __future__ import annotations

import asyncio
import csv
import datetime as dt
import io
import json
import threading
import uuid
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
from aiokafka import AIOKafkaProducer
from shapely.geometry import LineString
from standardwebhooks import Webhook

from services.partners import repository
from services.partners.keys import hash_key, new_key
from services.partners.main import create_app
from services.partners.settings import PartnersSettings
from shared.contracts import STREET_NEEDS, StreetNeedChanged
from shared.gazetteer.model import Gazetteer, Street

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

STREET_COORDS = [(-0.1301, 51.5412), (-0.1288, 51.5420)]  # lon, lat (Camden)


def _need(
    area_id: str, ward: str, *, category: str = "fly_tipping", version: int = 1, count: int = 3
) -> StreetNeedChanged:
    person = category == "isolation"
    return StreetNeedChanged(
        area_id=area_id,
        area_kind="unit" if person else "street",
        area_name=f"Test {area_id}",
        ward_code=ward,
        street_ids=(area_id,),
        category=category,
        sensitivity="person" if person else "place",
        band="some" if person else None,
        count=None if person else count,
        trend="up",
        since=dt.date(2026, 11, 1),
        period="2026-10" if person else "live",
        published_at=dt.datetime(2026, 11, 22, 10, version, tzinfo=dt.UTC),
        version=version,
    )


async def _publish(bootstrap: str, records: list[tuple[str, bytes | None]]) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        for key, value in records:
            await producer.send_and_wait(STREET_NEEDS.name, value=value, key=key.encode())
    finally:
        await producer.stop()


async def _until(check: Callable, what: str):
    """Poll until `check()` returns something truthy; fail naming what never happened."""
    deadline = asyncio.get_running_loop().time() + 60.0
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.2)


class Receiver:
    """A webhook receiver on a random loopback port that answers with `status`."""

    def __init__(self, status: int) -> None:
        self.received: list[tuple[dict[str, str], bytes]] = []
        receiver = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers["content-length"]))
                receiver.received.append(({k.lower(): v for k, v in self.headers.items()}, body))
                self.send_response(status)
                self.end_headers()

            def log_message(self, *args) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/hook"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    async def got(self, n: int) -> bool:
        return len(self.received) >= n

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@asynccontextmanager
async def running(db: str, bootstrap: str, random_id: str, **overrides) -> AsyncIterator[tuple]:
    settings = PartnersSettings(
        database_url=db,
        kafka_bootstrap_servers=bootstrap,
        group_id=f"partners-test-{random_id}",
        load_gazetteer=False,
        webhook_allow_loopback=True,
        webhook_poll_interval_s=0.05,
        webhook_backoff_base_s=0.05,
        webhook_backoff_cap_s=0.2,
        webhook_max_attempts=3,
        **overrides,
    )
    streets = {
        sid: Street(
            id=sid,
            name=f"Test {sid}",
            norm_name=f"test {sid}",
            geometry=LineString(STREET_COORDS),
            segment_ids=(),
        )
        for sid in (f"way/{random_id}", f"way/{random_id}b")
    }
    app = create_app(settings, gazetteer=Gazetteer(streets=streets))
    async with app.router.lifespan_context(app):
        key = new_key()
        async with app.state.runtime.pool.acquire() as conn:
            partner = await repository.create_partner(conn, f"partner {random_id}", hash_key(key))
        async with httpx.AsyncClient(
            transport=httpx.ASGITransport(app=app),
            base_url="http://test",
            headers={"Authorization": f"Bearer {key}"},
        ) as client:
            yield app, client, partner


async def test_needs_formats_history_tombstone_and_auth(fresh_database_url, kafka_bootstrap, random_id):
    street, other, ward = f"way/{random_id}", f"way/{random_id}b", f"W{random_id}"
    async with running(fresh_database_url, kafka_bootstrap, random_id) as (app, client, partner):
        first, second = _need(street, ward, version=1, count=3), _need(street, ward, version=2, count=5)
        person = _need(other, ward, category="isolation")
        await _publish(
            kafka_bootstrap,
            [
                (first.key, first.model_dump_json().encode()),
                (second.key, second.model_dump_json().encode()),
                (person.key, person.model_dump_json().encode()),
                (f"{street}:graffiti", b"{not json"),  # malformed: dead-lettered, the rest carries on
                (first.key, second.model_dump_json().encode()),  # redelivered change: no second history row
            ],
        )

        async def both_current():
            items = (await client.get("/v1/needs", params={"ward": ward})).json()["items"]
            latest = {(i["area_id"], i["version"]) for i in items}
            return items if latest == {(street, 2), (other, 1)} else None

        items = await _until(both_current, "both needs current at their latest version")
        assert {i["category"] for i in items} == {"fly_tipping", "isolation"}
        assert next(i for i in items if i["area_id"] == street)["count"] == 5
        assert next(i for i in items if i["area_id"] == other)["count"] is None

        # Filters and a cursor.
        page = (await client.get("/v1/needs", params={"ward": ward, "limit": 1})).json()
        assert len(page["items"]) == 1 and page["next_cursor"]
        rest = (
            await client.get("/v1/needs", params={"ward": ward, "limit": 1, "cursor": page["next_cursor"]})
        ).json()
        assert len(rest["items"]) == 1 and rest["next_cursor"] is None
        assert rest["items"][0]["area_id"] != page["items"][0]["area_id"]
        only = (await client.get("/v1/needs", params={"ward": ward, "category": "isolation"})).json()
        assert [i["area_id"] for i in only["items"]] == [other]
        inside = await client.get("/v1/needs", params={"ward": ward, "bbox": "-0.14,51.54,-0.12,51.55"})
        assert len(inside.json()["items"]) == 2
        outside = (await client.get("/v1/needs", params={"ward": ward, "bbox": "1,51,2,52"})).json()
        assert outside["items"] == []

        # GeoJSON: lon/lat order from the gazetteer's street geometry.
        geo = await client.get("/v1/needs.geojson", params={"ward": ward, "area_kind": "street"})
        assert geo.headers["content-type"].startswith("application/geo+json")
        fc = geo.json()
        assert fc["type"] == "FeatureCollection" and len(fc["features"]) == 1
        feature = fc["features"][0]
        assert feature["geometry"] == {"type": "LineString", "coordinates": [list(c) for c in STREET_COORDS]}
        assert feature["properties"]["area_id"] == street and feature["properties"]["count"] == 5

        # CSV: header row, one row per need, CRLF.
        text = (await client.get("/v1/needs.csv", params={"ward": ward})).text
        assert "\r\n" in text
        rows = list(csv.DictReader(io.StringIO(text)))
        assert {r["area_id"] for r in rows} == {street, other}
        assert next(r for r in rows if r["area_id"] == other)["band"] == "some"

        # A tombstone removes the current state but keeps the history.
        await _publish(kafka_bootstrap, [(first.key, None)])

        async def removed():
            items = (await client.get("/v1/needs", params={"ward": ward})).json()["items"]
            return [i["area_id"] for i in items] == [other]

        await _until(removed, "the tombstoned need leaves the current state")
        history = (await client.get("/v1/needs/history", params={"area_id": street})).json()["items"]
        assert [(h["change"], h["version"]) for h in history] == [
            ("changed", 1),
            ("changed", 2),
            ("removed", 2),
        ]
        assert history[1]["need"]["count"] == 5 and history[2]["need"] is None
        since = (
            await client.get(
                "/v1/needs/history",
                params={
                    "area_id": street,
                    "since": "2026-11-22T10:02:00+00:00",
                    "until": "2026-11-22T10:03:00+00:00",
                },
            )
        ).json()["items"]
        assert [h["version"] for h in since] == [2]
        hcsv = list(
            csv.DictReader(
                io.StringIO((await client.get("/v1/needs/history.csv", params={"area_id": street})).text)
            )
        )
        assert [r["change"] for r in hcsv] == ["changed", "changed", "removed"]

        # Authentication: no key, unknown key, revoked key.
        bare = httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")
        async with bare:
            missing = await bare.get("/v1/needs")
            assert missing.status_code == 401
            assert missing.headers["content-type"] == "application/problem+json"
            assert missing.headers["www-authenticate"].startswith("Bearer")
            wrong = await bare.get("/v1/needs", headers={"Authorization": "Bearer snp_wrong"})
            assert wrong.status_code == 401
        async with app.state.runtime.pool.acquire() as conn:
            await repository.revoke_partner(conn, partner["id"])
        revoked = await client.get("/v1/needs.csv")
        assert revoked.status_code == 403 and revoked.json()["status"] == 403


async def test_webhooks_signed_retried_dead_and_replayed(fresh_database_url, kafka_bootstrap, random_id):
    street, ward = f"way/{random_id}", f"W{random_id}"
    good, failing = Receiver(200), Receiver(500)
    try:
        async with running(fresh_database_url, kafka_bootstrap, random_id) as (app, client, _):
            refused = await client.post("/v1/webhooks", json={"url": "file:///etc/passwd"})
            assert refused.status_code == 422 and refused.json()["errors"][0]["field"] == "url"
            created = (
                await client.post(
                    "/v1/webhooks", json={"url": good.url, "wards": [ward], "categories": ["fly_tipping"]}
                )
            ).json()
            secret = created["secret"]
            assert secret.startswith("whsec_")
            shown = (await client.get(f"/v1/webhooks/{created['id']}")).json()
            assert "secret" not in shown and shown["wards"] == [ward]
            bad = (await client.post("/v1/webhooks", json={"url": failing.url, "wards": [ward]})).json()

            # Published now: replay reaches back a bounded number of days only.
            need = _need(street, ward, version=1).model_copy(update={"published_at": dt.datetime.now(dt.UTC)})
            await _publish(kafka_bootstrap, [(need.key, need.model_dump_json().encode())])

            await _until(lambda: good.got(1), "a delivery to the good receiver")
            headers, body = good.received[0]
            payload = Webhook(secret).verify(body, headers)  # an independent implementation agrees
            assert payload["type"] == "street_need.changed"
            assert payload["data"] == json.loads(need.model_dump_json())
            assert headers["webhook-id"].startswith("msg_")

            async def dead():
                page = (await client.get(f"/v1/webhooks/{bad['id']}/deliveries")).json()["items"]
                return page if page and page[0]["status"] == "dead" else None

            [delivery] = await _until(dead, "the failing webhook's delivery dead-lettered")
            assert delivery["attempts"] == 3 and delivery["last_status"] == 500
            assert len(failing.received) == 3
            assert len({h["webhook-id"] for h, _ in failing.received}) == 1  # same id on every retry
            assert (
                await client.get(f"/v1/webhooks/{bad['id']}/deliveries", params={"status": "dead"})
            ).json()["items"] == [delivery]

            replayed = await client.post(
                f"/v1/webhooks/{created['id']}/replay",
                params={"since": (dt.datetime.now(dt.UTC) - dt.timedelta(days=1)).isoformat()},
            )
            assert replayed.status_code == 202 and replayed.json() == {"queued": 1}
            await _until(lambda: good.got(2), "the replayed delivery")
            again_headers, again_body = good.received[1]
            assert json.loads(again_body) == payload
            Webhook(secret).verify(again_body, again_headers)

            # Replay is bounded (issue 11, Medium 8): a window, a row cap, a rate per partner.
            too_old = await client.post(
                f"/v1/webhooks/{created['id']}/replay", params={"since": "1970-01-01T00:00:00+00:00"}
            )
            assert too_old.status_code == 422 and too_old.json()["errors"][0]["field"] == "since"
            async with app.state.runtime.pool.acquire() as conn:
                hook = {"id": created["id"], "categories": [], "wards": [ward]}
                since = dt.datetime.now(dt.UTC) - dt.timedelta(days=1)
                assert await repository.replay_history(conn, hook, since, None, str, max_rows=0) == -1
            answers = [
                await client.post(
                    f"/v1/webhooks/{created['id']}/replay",
                    params={"since": (dt.datetime.now(dt.UTC) - dt.timedelta(hours=1)).isoformat()},
                )
                for _ in range(8)
            ]
            assert answers[-1].status_code == 429 and int(answers[-1].headers["retry-after"]) >= 1

            assert (await client.delete(f"/v1/webhooks/{created['id']}")).status_code == 204
            assert (await client.get(f"/v1/webhooks/{created['id']}")).status_code == 404
            assert (await client.delete(f"/v1/webhooks/{created['id']}")).status_code == 404
            # Deleting it ended its pending deliveries in the same unit of work.
            async with app.state.runtime.pool.acquire() as conn:
                statuses = await conn.fetch(
                    "SELECT status, last_error FROM partners.deliveries WHERE webhook_id = $1",
                    uuid.UUID(created["id"]),
                )
            assert statuses and not [r for r in statuses if r["status"] == "pending"]
    finally:
        good.close()
        failing.close()
