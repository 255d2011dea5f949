"""Where simulated signals go: ingest's JSON API, its Open311 endpoint, or the raw Kafka topic.

Every sink has `async send(batch) -> Tally`, `start()` and `close()`. Sinks retry what a real
council system would retry (connection errors, 429 with Retry-After, 5xx) for a bounded time
(`retry_for_s`: a patient council system retries through a broker or database restart), and count
outcomes instead of raising, so a long run reports what happened to every signal.
"""

from __future__ import annotations

import asyncio
import logging
import sys
import time
from collections import Counter
from collections.abc import Sequence
from typing import Protocol, TextIO

import httpx
from aiokafka import AIOKafkaProducer

from shared.contracts import COUNCIL_SIGNALS, CouncilSignal, Sensitivity
from shared.kafka import client_options
from shared.settings import CommonSettings

__all__ = ["HttpSink", "JsonLinesSink", "KafkaSink", "Open311Sink", "Sink", "Tally", "open311_form"]

log = logging.getLogger(__name__)

Tally = Counter  # outcome -> count: accepted, duplicate, rejected, skipped, failed, sent
RETRY_FOR_S = 6.0  # about five tries with doubling waits; `--retry-for` makes a client more patient
MAX_WAIT_S = 5.0


class Sink(Protocol):
    async def start(self) -> None: ...
    async def send(self, batch: Sequence[CouncilSignal]) -> Tally: ...
    async def close(self) -> None: ...


async def _post(
    client: httpx.AsyncClient, url: str, retry_for_s: float = RETRY_FOR_S, **kwargs
) -> httpx.Response | None:
    """POST, retrying connection errors, 429 (honouring Retry-After) and 5xx with doubling waits
    until `retry_for_s` seconds have passed; None if it never got an answer to keep."""
    deadline = time.monotonic() + retry_for_s
    attempt = 0
    while True:
        wait = min(MAX_WAIT_S, 0.2 * 2**attempt)
        attempt += 1
        try:
            response = await client.post(url, **kwargs)
        except httpx.TransportError as exc:
            log.warning("POST %s failed (%s); retrying", url, exc)
        else:
            if response.status_code != 429 and response.status_code < 500:
                return response
            wait = float(response.headers.get("retry-after", wait))
            log.warning("POST %s: HTTP %s; retrying in %.1fs", url, response.status_code, wait)
        if time.monotonic() + wait > deadline:
            log.error("POST %s: gave up after %d tries", url, attempt)
            return None
        await asyncio.sleep(wait)


class HttpSink:
    """`POST {base_url}/v1/signals` with a JSON array body and a Bearer key."""

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        timeout_s: float = 60.0,
        retry_for_s: float = RETRY_FOR_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(
            base_url=base_url,
            timeout=timeout_s,
            headers={"Authorization": f"Bearer {api_key}"},
            transport=transport,
        )
        self._retry_for_s = retry_for_s

    async def start(self) -> None:
        return None

    async def send(self, batch: Sequence[CouncilSignal]) -> Tally:
        body = b"[" + b",".join(s.model_dump_json(exclude_none=True).encode() for s in batch) + b"]"
        response = await _post(
            self._client,
            "/v1/signals",
            self._retry_for_s,
            content=body,
            headers={"Content-Type": "application/json"},
        )
        if response is None:
            return Tally(failed=len(batch))
        if response.status_code != 202:
            log.error("POST /v1/signals: HTTP %s %s", response.status_code, response.text[:500])
            return Tally(rejected=len(batch))
        result = response.json()
        for item in result.get("items", []):
            if item.get("outcome") == "rejected":
                log.warning("rejected %s: %s", item.get("event_id"), "; ".join(item.get("errors", [])))
        return Tally({k: result.get(k, 0) for k in ("accepted", "duplicate", "rejected")})

    async def close(self) -> None:
        await self._client.aclose()


def open311_form(signal: CouncilSignal, api_key: str, seq: int) -> dict[str, str]:
    """The form FixMyStreet sends for a report, with obviously synthetic personal values."""
    loc = signal.location
    n = seq % 1000
    form = {
        "api_key": api_key,
        "service_code": signal.category.value,
        "description": signal.notes or f"Synthetic test report {signal.event_id}",
        "email": f"test.resident.{n}@example.invalid",
        "first_name": "Test",
        "last_name": f"Resident {n}",
        "deviceid": f"test-device-{n}",
        "attribute[uprn]": f"99{seq % 10**10:010d}",  # 12 digits, outside the issued UPRN range
    }
    if loc.lat is not None:
        form.update(lat=f"{loc.lat:.6f}", long=f"{loc.lon:.6f}")
    elif loc.address:
        form["address_string"] = loc.address
    else:
        form["address_id"] = "#NOTPINPOINTED#"
    return form


class Open311Sink:
    """`POST {base_url}/open311/v2/requests.json`, one form-encoded report per request.

    Open311 GeoReport v2 has no way to report a person or to close a request, so person-category
    signals and withdrawals are counted as `skipped` (run the model with place categories only).
    """

    def __init__(
        self,
        base_url: str,
        api_key: str,
        *,
        concurrency: int = 8,
        timeout_s: float = 30.0,
        retry_for_s: float = RETRY_FOR_S,
        transport: httpx.AsyncBaseTransport | None = None,
    ) -> None:
        self._client = httpx.AsyncClient(base_url=base_url, timeout=timeout_s, transport=transport)
        self._key, self._seq, self._retry_for_s = api_key, 0, retry_for_s
        self._gate = asyncio.Semaphore(concurrency)

    async def start(self) -> None:
        return None

    async def _one(self, signal: CouncilSignal, seq: int) -> str:
        if signal.action != "raised" or signal.sensitivity is Sensitivity.PERSON:
            return "skipped"
        async with self._gate:
            response = await _post(
                self._client,
                "/open311/v2/requests.json",
                self._retry_for_s,
                data=open311_form(signal, self._key, seq),
            )
        if response is None:
            return "failed"
        if response.status_code in (200, 201):
            return "accepted"
        log.warning("Open311 %s: HTTP %s %s", signal.event_id, response.status_code, response.text[:300])
        return "rejected"

    async def send(self, batch: Sequence[CouncilSignal]) -> Tally:
        start, self._seq = self._seq, self._seq + len(batch)
        outcomes = await asyncio.gather(*(self._one(s, start + i) for i, s in enumerate(batch)))
        return Tally(outcomes)

    async def close(self) -> None:
        await self._client.aclose()


class KafkaSink:
    """Produce to `council-signals.v1`, keyed by event_id, with the key in an `x-api-key` header."""

    def __init__(self, settings: CommonSettings, api_key: str) -> None:
        self._producer = AIOKafkaProducer(
            **client_options(settings),
            client_id="streetneeds-simulator",
            acks="all",
            enable_idempotence=True,
            linger_ms=5,
        )
        self._headers = [("x-api-key", api_key.encode())]

    async def start(self) -> None:
        await self._producer.start()

    async def send(self, batch: Sequence[CouncilSignal]) -> Tally:
        futures = [
            await self._producer.send(
                COUNCIL_SIGNALS.name,
                value=s.model_dump_json(exclude_none=True).encode(),
                key=s.event_id.encode(),
                headers=self._headers,
            )
            for s in batch
        ]
        results = await asyncio.gather(*futures, return_exceptions=True)
        failed = sum(isinstance(r, Exception) for r in results)
        return Tally(sent=len(batch) - failed, failed=failed)

    async def close(self) -> None:
        await self._producer.stop()


class JsonLinesSink:
    """One signal per line on a text stream (stdout by default): a dry run, or input for other tools."""

    def __init__(self, out: TextIO | None = None) -> None:
        self._out = out or sys.stdout

    async def start(self) -> None:
        return None

    async def send(self, batch: Sequence[CouncilSignal]) -> Tally:
        self._out.writelines(s.model_dump_json(exclude_none=True) + "\n" for s in batch)
        return Tally(sent=len(batch))

    async def close(self) -> None:
        self._out.flush()
