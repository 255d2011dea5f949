"""The webhook delivery worker: claim due deliveries, send them signed, retry with backoff, dead-letter.

Each send resolves the partner's host, refuses private addresses (also in their IPv6 translations) and
connects to the very address it checked, so a name re-pointed at an internal address between check
and connection (DNS rebinding) reaches nothing. One delivery has one total deadline (a receiver
dripping a byte every few seconds cannot hold it, nor the batch, past its lease) and reads at most
`webhook_max_response_bytes` of the answer. Connections are kept alive per host; each partner has a
bounded number of deliveries in flight; a batch's outcomes are stored together.
"""

from __future__ import annotations

import asyncio
import collections
import logging
import math
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import asyncpg
import httpx
from prometheus_client import Counter

from shared.urls import UnsafeUrl, resolve_public

from . import repository
from .backoff import backoff_delay
from .settings import PartnersSettings
from .signing import signed_headers

__all__ = ["Clients", "Outcome", "deliver_due", "lease_s", "run_delivery_worker", "send"]

log = logging.getLogger(__name__)
ATTEMPTS = Counter("partners_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
_LEASE_MARGIN_S = 30.0  # a claimed delivery comes due again this long after its deadline


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    read_bytes: int = 0


class Clients:
    """One keep-alive HTTP client per receiving host (a TLS connection is never shared across names)."""

    def __init__(self, settings: PartnersSettings, *, max_hosts: int = 256) -> None:
        self.settings, self.max_hosts = settings, max_hosts
        self._clients: collections.OrderedDict[str, httpx.AsyncClient] = collections.OrderedDict()

    def for_host(self, host: str) -> httpx.AsyncClient:
        client = self._clients.pop(host, None)
        if client is None:
            limits = httpx.Limits(
                max_connections=self.settings.webhook_partner_concurrency,
                max_keepalive_connections=self.settings.webhook_partner_concurrency,
            )
            client = httpx.AsyncClient(follow_redirects=False, limits=limits, trust_env=False)
            while len(self._clients) >= self.max_hosts:
                _, oldest = self._clients.popitem(last=False)
                asyncio.get_running_loop().create_task(oldest.aclose())
        self._clients[host] = client
        return client

    async def aclose(self) -> None:
        await asyncio.gather(*(c.aclose() for c in self._clients.values()), return_exceptions=True)
        self._clients.clear()


async def send(clients: Clients, settings: PartnersSettings, delivery: dict[str, Any]) -> Outcome:
    """One signed POST to the address that was checked, within one total deadline."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            return await _post(clients, settings, delivery)
    except UnsafeUrl as exc:
        return Outcome(False, error=f"unsafe URL: {exc}")
    except TimeoutError:
        return Outcome(False, error=f"no complete answer within {settings.webhook_timeout_s:g}s")
    except (httpx.HTTPError, ValueError, OSError) as exc:
        return Outcome(False, error=f"{type(exc).__name__}: {exc}"[:500])


async def _post(clients: Clients, settings: PartnersSettings, delivery: dict[str, Any]) -> Outcome:
    parts = urlsplit(delivery["url"])
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise UnsafeUrl("the URL scheme must be http or https")
    if settings.webhook_require_https and parts.scheme != "https":
        raise UnsafeUrl("the URL scheme must be https")
    port = parts.port or (443 if parts.scheme == "https" else 80)
    address = await resolve_public(parts.hostname, port, allow_loopback=settings.webhook_allow_loopback)
    literal = f"[{address}]" if isinstance(address, IPv6Address) else str(address)
    target = urlunsplit(parts._replace(netloc=f"{literal}:{port}"))
    body = delivery["body"].encode()
    headers = {
        "host": parts.netloc.rpartition("@")[2],
        "content-type": "application/json",
        **signed_headers(delivery["secret"], delivery["message_id"], body),
    }
    # TLS names and verifies the host, though the connection goes to the checked address.
    extensions = {"sni_hostname": parts.hostname} if parts.scheme == "https" else {}
    client = clients.for_host(f"{parts.scheme}://{parts.hostname}:{port}")
    request = client.build_request("POST", target, content=body, headers=headers, extensions=extensions)
    response = await client.send(request, stream=True)
    read = 0
    try:
        async for chunk in response.aiter_raw():
            read += len(chunk)
            if read >= settings.webhook_max_response_bytes:
                break  # the answer's body means nothing to us: never read more than this
    finally:
        await response.aclose()
    # Redirects are not followed: a 3xx is a failure, as in the Standard Webhooks guidance.
    ok = 200 <= response.status_code < 300
    return Outcome(ok, response.status_code, None if ok else f"HTTP {response.status_code}", read)


def lease_s(settings: PartnersSettings) -> float:
    """How long a claimed batch is ours: every delivery of one partner, in turns of the partner's
    concurrency, each within its deadline, and a margin. Past it, another worker may send them."""
    turns = math.ceil(settings.webhook_batch_size / settings.webhook_partner_concurrency)
    return turns * settings.webhook_timeout_s + _LEASE_MARGIN_S


async def deliver_due(pool: asyncpg.Pool, settings: PartnersSettings, clients: Clients) -> int:
    """Attempt every due delivery this worker can claim (one batch); returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        batch = await repository.claim_due_deliveries(conn, settings.webhook_batch_size, lease_s(settings))
    if not batch:
        return 0
    # Each partner has at most webhook_partner_concurrency deliveries in flight: a slow receiver
    # delays its own deliveries, not everyone's.
    gates: dict[object, asyncio.Semaphore] = collections.defaultdict(
        lambda: asyncio.Semaphore(settings.webhook_partner_concurrency)
    )

    async def gated(delivery: dict[str, Any]) -> Outcome:
        async with gates[delivery.get("partner_id")]:
            return await send(clients, settings, delivery)

    results = await asyncio.gather(*(gated(d) for d in batch))
    attempts = []
    for delivery, outcome in zip(batch, results, strict=True):
        attempt = delivery["attempts"] + 1
        retry = None
        if not outcome.ok and attempt < settings.webhook_max_attempts:
            retry = backoff_delay(attempt, settings.webhook_backoff_base_s, settings.webhook_backoff_cap_s)
        ATTEMPTS.labels("delivered" if outcome.ok else ("retry" if retry is not None else "dead")).inc()
        if not outcome.ok:
            log.info(
                "webhook delivery failed",
                extra={
                    "delivery_id": delivery["id"],
                    "attempt": attempt,
                    "error": outcome.error,
                    "retry_in_s": retry,
                },
            )
        attempts.append(repository.Attempt(delivery["id"], outcome.ok, outcome.status, outcome.error, retry))
    async with pool.acquire() as conn:
        await repository.record_attempts(conn, attempts)
    return len(batch)


async def run_delivery_worker(pool: asyncpg.Pool, settings: PartnersSettings) -> None:
    """Loop for the service's lifetime; several replicas share the queue safely."""
    clients = Clients(settings)
    try:
        while True:
            try:
                done = await deliver_due(pool, settings, clients)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database blip must not end the worker
                log.exception("webhook delivery round failed")
                done = 0
            if done < settings.webhook_batch_size:
                await asyncio.sleep(settings.webhook_poll_interval_s)
    finally:
        await clients.aclose()
