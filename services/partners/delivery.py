"""The webhook delivery worker: claim due deliveries, send them signed, retry with backoff, dead-letter.

Each send resolves the partner's host, refuses private addresses (also in their IPv6 translations) and
connects to the very address it checked, so a name re-pointed at an internal address between check
and connection (DNS rebinding) reaches nothing. One delivery has one total deadline (a receiver
dripping a byte every few seconds cannot hold it, nor the batch, past its lease) and reads at most
`webhook_max_response_bytes` of the answer. Connections are kept alive per host; each partner has a
bounded number of deliveries in flight, however many batches are; a batch's outcomes are stored
together. The worker wakes when a transaction that queued deliveries commits (LISTEN/NOTIFY), and
otherwise looks every `webhook_poll_interval_s` (retries coming due, a lost listening connection).
"""

from __future__ import annotations

import asyncio
import collections
import contextlib
import logging
import math
from collections.abc import AsyncIterator
from dataclasses import dataclass
from ipaddress import IPv6Address
from typing import Any
from urllib.parse import urlsplit, urlunsplit

import aiohttp
import asyncpg
from prometheus_client import Counter

from shared.listen import ChannelListener
from shared.urls import UnsafeUrl, resolve_public

from . import repository
from .backoff import backoff_delay
from .settings import PartnersSettings
from .signing import signed_headers

__all__ = ["PIPELINE", "Clients", "DeliveryWorker", "Outcome", "lease_s", "run_delivery_worker", "send"]

log = logging.getLogger(__name__)
ATTEMPTS = Counter("partners_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
_LEASE_MARGIN_S = 30.0  # a claimed delivery comes due again this long after its deadline
# Batches a worker has claimed and not yet recorded: the next one is sent while the last one's stragglers
# finish and its outcomes are stored, so a partner's connections never wait on the database.
PIPELINE = 2


@dataclass(frozen=True, slots=True)
class Outcome:
    ok: bool
    status: int | None = None
    error: str | None = None
    read_bytes: int = 0


class Clients:
    """One keep-alive HTTP session per receiving host (a TLS connection is never shared across names)."""

    def __init__(self, settings: PartnersSettings, *, max_hosts: int = 256) -> None:
        self.settings, self.max_hosts = settings, max_hosts
        self._sessions: collections.OrderedDict[str, aiohttp.ClientSession] = collections.OrderedDict()

    def for_host(self, host: str) -> aiohttp.ClientSession:
        session = self._sessions.pop(host, None)
        if session is None:
            size = self.settings.webhook_partner_concurrency
            session = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=size, limit_per_host=size, use_dns_cache=False),
                timeout=aiohttp.ClientTimeout(total=None),  # `send` keeps the one total deadline
                cookie_jar=aiohttp.DummyCookieJar(),
                auto_decompress=False,
                skip_auto_headers=("Accept-Encoding",),  # the answer's body is never used
                trust_env=False,
            )
            while len(self._sessions) >= self.max_hosts:
                _, oldest = self._sessions.popitem(last=False)
                asyncio.get_running_loop().create_task(oldest.close())
        self._sessions[host] = session
        return session

    async def aclose(self) -> None:
        await asyncio.gather(*(s.close() for s in self._sessions.values()), return_exceptions=True)
        self._sessions.clear()


async def send(clients: Clients, settings: PartnersSettings, delivery: dict[str, Any]) -> Outcome:
    """One signed POST to the address that was checked, within one total deadline."""
    try:
        async with asyncio.timeout(settings.webhook_timeout_s):
            return await _post(clients, settings, delivery)
    except UnsafeUrl as exc:
        return Outcome(False, error=f"unsafe URL: {exc}")
    except TimeoutError:
        return Outcome(False, error=f"no complete answer within {settings.webhook_timeout_s:g}s")
    except (aiohttp.ClientError, ValueError, OSError) as exc:
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
        "Host": parts.netloc.rpartition("@")[2],
        "Content-Type": "application/json",
        **signed_headers(delivery["secret"], delivery["message_id"], body),
    }
    session = clients.for_host(f"{parts.scheme}://{parts.hostname}:{port}")
    # TLS names and verifies the host, though the connection goes to the checked address.
    async with session.post(
        target,
        data=body,
        headers=headers,
        allow_redirects=False,
        server_hostname=parts.hostname if parts.scheme == "https" else None,
    ) as response:
        read = 0
        while chunk := await response.content.readany():
            read += len(chunk)
            if read >= settings.webhook_max_response_bytes:
                response.close()  # the answer's body means nothing to us: never read more than this
                break
    # Redirects are not followed: a 3xx is a failure, as in the Standard Webhooks guidance.
    ok = 200 <= response.status < 300
    return Outcome(ok, response.status, None if ok else f"HTTP {response.status}", read)


def lease_s(settings: PartnersSettings) -> float:
    """How long a claimed batch is ours: every delivery of one partner in the batches a worker has in
    flight, in turns of the partner's concurrency, each within its deadline, and a margin. Past it,
    another worker may send them."""
    turns = math.ceil(PIPELINE * settings.webhook_batch_size / settings.webhook_partner_concurrency)
    return turns * settings.webhook_timeout_s + _LEASE_MARGIN_S


class _Gates:
    """A semaphore per partner shared by every batch in flight, dropped once nobody waits on it."""

    def __init__(self, size: int) -> None:
        self.size = size
        self._gates: dict[object, tuple[asyncio.Semaphore, list[int]]] = {}

    @contextlib.asynccontextmanager
    async def hold(self, partner: object) -> AsyncIterator[None]:
        gate, users = self._gates.setdefault(partner, (asyncio.Semaphore(self.size), [0]))
        users[0] += 1
        try:
            async with gate:
                yield
        finally:
            users[0] -= 1
            if not users[0]:
                del self._gates[partner]


class DeliveryWorker:
    """Claims due deliveries in batches (up to `PIPELINE` at once) and sends them; several replicas'
    workers share the queue safely."""

    def __init__(
        self, pool: asyncpg.Pool, settings: PartnersSettings, clients: Clients | None = None
    ) -> None:
        self.pool, self.settings = pool, settings
        self.clients = clients or Clients(settings)
        self.gates = _Gates(settings.webhook_partner_concurrency)
        self.wake = asyncio.Event()  # set by a NOTIFY: deliveries were queued
        self.idle = asyncio.Event()  # set while it waits for a wake-up or its poll interval
        self._slots = asyncio.Semaphore(PIPELINE)
        self._batches: set[asyncio.Task[None]] = set()
        # A lost connection wakes the worker, which listens anew and claims what was queued meanwhile.
        self.listener = ChannelListener(
            pool, repository.DELIVERIES_QUEUED, self.wake.set, on_lost=self.wake.set
        )

    async def run(self) -> None:
        """Loop for the service's lifetime."""
        try:
            while True:
                await self.listener.ensure()  # not listening: the poll interval still claims
                await self._slots.acquire()
                self.wake.clear()  # before claiming: whatever is queued after this wakes the next look
                claimed = 0
                try:
                    claimed = self._start(await self._claim())
                except asyncio.CancelledError:
                    raise
                except Exception:  # a database blip must not end the worker
                    log.exception("webhook delivery round failed")
                finally:
                    if not claimed:
                        self._slots.release()
                if claimed < self.settings.webhook_batch_size:
                    await self._wait()
        finally:
            await self._stop()

    async def _claim(self) -> list[dict[str, Any]]:
        async with self.pool.acquire() as conn, conn.transaction():
            return await repository.claim_due_deliveries(
                conn, self.settings.webhook_batch_size, lease_s(self.settings)
            )

    def _start(self, batch: list[dict[str, Any]]) -> int:
        if batch:
            task = asyncio.create_task(self._deliver(batch), name="partners-webhook-batch")
            self._batches.add(task)
            task.add_done_callback(self._batches.discard)
        return len(batch)

    async def _wait(self) -> None:
        self.idle.set()
        try:
            async with asyncio.timeout(self.settings.webhook_poll_interval_s):
                await self.wake.wait()
        except TimeoutError:
            pass
        finally:
            self.idle.clear()

    async def _deliver(self, batch: list[dict[str, Any]]) -> None:
        """Send one claimed batch (each partner gated), then record every outcome in one statement."""
        try:
            results = await asyncio.gather(*(self._gated(d) for d in batch), return_exceptions=True)
            attempts = [self._attempt(d, r) for d, r in zip(batch, results, strict=True)]
            async with self.pool.acquire() as conn:
                await repository.record_attempts(conn, attempts)
        except Exception:  # unrecorded deliveries come due again when their lease ends
            log.exception("recording webhook delivery attempts failed")
        finally:
            self._slots.release()

    async def _gated(self, delivery: dict[str, Any]) -> Outcome:
        # A slow receiver delays its own partner's deliveries, not everyone's.
        async with self.gates.hold(delivery.get("partner_id")):
            return await send(self.clients, self.settings, delivery)

    def _attempt(self, delivery: dict[str, Any], result: Outcome | BaseException) -> repository.Attempt:
        if isinstance(result, asyncio.CancelledError):
            raise result
        outcome = result if isinstance(result, Outcome) else Outcome(False, error=f"{result!r}"[:500])
        attempt = delivery["attempts"] + 1
        settings, retry = self.settings, None
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
        return repository.Attempt(delivery["id"], outcome.ok, outcome.status, outcome.error, retry)

    async def _stop(self) -> None:
        for task in self._batches:
            task.cancel()  # unrecorded deliveries come due again when their lease ends
        await asyncio.gather(*self._batches, return_exceptions=True)
        try:
            await self.listener.close()
        finally:
            await self.clients.aclose()


async def run_delivery_worker(pool: asyncpg.Pool, settings: PartnersSettings) -> None:
    """Loop for the service's lifetime; several replicas share the queue safely."""
    await DeliveryWorker(pool, settings).run()
