"""Sinks and pacing without a server: request shapes, retries, batching, restamping."""

from __future__ import annotations

import datetime as dt
import itertools
import json
from collections import Counter
from urllib.parse import parse_qs

import httpx

from shared.contracts import CouncilSignal, Location
from simulator.cli import api_key_from
from simulator.runner import send_bulk, send_paced
from simulator.sinks import HttpSink, Open311Sink, Tally, open311_form

T0 = dt.datetime(2026, 1, 1, tzinfo=dt.UTC)


def signal(i: int, category="fly_tipping", action="raised", **loc) -> CouncilSignal:
    return CouncilSignal(
        event_id=f"e{i}",
        category=category,
        action=action,
        subject_ref=f"s{i}",
        occurred_at=T0,
        location=Location(**(loc or {"lat": 51.54, "lon": -0.14})),
    )


class FakeSink:
    def __init__(self):
        self.batches: list[list[CouncilSignal]] = []

    async def send(self, batch):
        self.batches.append(list(batch))
        return Tally(sent=len(batch))


async def test_http_sink_posts_json_batches_with_bearer_and_retries_429():
    seen = []

    def handler(request: httpx.Request) -> httpx.Response:
        seen.append(request)
        if len(seen) == 1:
            return httpx.Response(429, headers={"Retry-After": "0"})
        items = json.loads(request.content)
        return httpx.Response(
            202, json={"accepted": len(items) - 1, "duplicate": 1, "rejected": 0, "items": []}
        )

    sink = HttpSink("http://ingest", "sn_key", transport=httpx.MockTransport(handler))
    tally = await sink.send([signal(1), signal(2)])
    await sink.close()
    assert tally == Counter(accepted=1, duplicate=1, rejected=0)
    assert len(seen) == 2
    assert seen[1].url.path == "/v1/signals"
    assert seen[1].headers["authorization"] == "Bearer sn_key"
    assert [s["event_id"] for s in json.loads(seen[1].content)] == ["e1", "e2"]


async def test_http_sink_retries_for_as_long_as_it_is_told_then_gives_up(monkeypatch):
    """A council system that gives up during an outage may leave a signal it was told failed; a
    patient one (`--retry-for`) retries through it until ingest takes the batch."""
    clock = [0.0]

    async def sleep(seconds: float) -> None:  # virtual time: the waits are counted, not slept
        clock[0] += seconds

    monkeypatch.setattr("simulator.sinks.asyncio.sleep", sleep)
    monkeypatch.setattr("simulator.sinks.time.monotonic", lambda: clock[0])
    outage_until = 40.0  # seconds of 503s (a database restart, say)
    calls = []

    def handler(request: httpx.Request) -> httpx.Response:
        calls.append(clock[0])
        if clock[0] < outage_until:
            return httpx.Response(503)
        return httpx.Response(202, json={"accepted": 1, "duplicate": 0, "rejected": 0, "items": []})

    hasty = HttpSink("http://ingest", "k", transport=httpx.MockTransport(handler))
    assert await hasty.send([signal(1)]) == Counter(failed=1)
    await hasty.close()
    assert clock[0] < 10 and len(calls) >= 3

    clock[0], calls[:] = 0.0, []
    patient = HttpSink("http://ingest", "k", retry_for_s=300, transport=httpx.MockTransport(handler))
    assert await patient.send([signal(1)]) == Counter(accepted=1, duplicate=0, rejected=0)
    await patient.close()
    assert calls[-1] >= outage_until
    assert max(b - a for a, b in itertools.pairwise(calls)) <= 5.0 + 1e-9  # waits capped


async def test_open311_sink_sends_fixmystreet_forms_and_skips_what_open311_cannot_say():
    forms = []

    def handler(request: httpx.Request) -> httpx.Response:
        forms.append({k: v[0] for k, v in parse_qs(request.content.decode()).items()})
        return httpx.Response(200, json=[{"service_request_id": "1"}])

    sink = Open311Sink("http://ingest", "sn_key", transport=httpx.MockTransport(handler))
    tally = await sink.send([signal(1), signal(2, action="withdrawn"), signal(3, category="isolation")])
    await sink.close()
    assert tally == Counter(accepted=1, skipped=2)
    (form,) = forms
    assert form["api_key"] == "sn_key" and form["service_code"] == "fly_tipping"
    assert form["lat"] == "51.540000" and form["long"] == "-0.140000"
    assert form["last_name"].startswith("Resident ") and form["email"].endswith("@example.invalid")
    assert form["deviceid"].startswith("test-device-") and len(form["attribute[uprn]"]) == 12


def test_open311_form_locates_by_address_or_not_pinpointed():
    assert open311_form(signal(1, address="1 Agar Grove"), "k", 1)["address_string"] == "1 Agar Grove"
    assert open311_form(signal(1, street_id="x"), "k", 1)["address_id"] == "#NOTPINPOINTED#"


async def test_bulk_sends_batches_up_to_the_limit():
    sink = FakeSink()
    progress = await send_bulk(iter([signal(i) for i in range(2_500)]), sink, limit=2_300, batch_size=1_000)
    assert [len(b) for b in sink.batches] == [1_000, 1_000, 300]
    assert progress.signals == 2_300 and progress.tally["sent"] == 2_300


async def test_paced_sending_restamps_to_now_and_stops_at_the_count():
    sink = FakeSink()
    before = dt.datetime.now(dt.UTC)
    progress = await send_paced(iter([signal(i) for i in range(100)]), sink, rate=200, limit=30)
    sent = [s for b in sink.batches for s in b]
    assert progress.signals == 30 and [s.event_id for s in sent] == [f"e{i}" for i in range(30)]
    assert all(before <= s.occurred_at <= dt.datetime.now(dt.UTC) for s in sent)


def test_api_key_comes_from_option_env_or_demo_keys(tmp_path, monkeypatch):
    keys = tmp_path / "demo-keys.env"
    keys.write_text("PARTNER_API_KEY=p\nCOUNCIL_API_KEY=sn_file\n")
    monkeypatch.delenv("COUNCIL_API_KEY", raising=False)
    assert api_key_from(None, keys) == "sn_file"
    monkeypatch.setenv("COUNCIL_API_KEY", "sn_env")
    assert api_key_from(None, keys) == "sn_env"
    assert api_key_from("sn_opt", keys) == "sn_opt"
    monkeypatch.delenv("COUNCIL_API_KEY")
    assert api_key_from(None, tmp_path / "missing.env") is None
