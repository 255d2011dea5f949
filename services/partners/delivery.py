"""The webhook delivery worker: claim due deliveries, send them signed, retry with backoff, dead-letter."""

from __future__ import annotations

import asyncio
import logging

import asyncpg
import httpx
from prometheus_client import Counter

from . import repository
from .backoff import backoff_delay
from .settings import PartnersSettings
from .signing import signed_headers
from .urls import UnsafeUrl, check_webhook_url

__all__ = ["deliver_due", "run_delivery_worker"]

log = logging.getLogger(__name__)
ATTEMPTS = Counter("partners_webhook_attempts_total", "Webhook delivery attempts by outcome", ["outcome"])
_LEASE_MARGIN_S = 30.0  # a claimed delivery comes due again this long after its timeout


async def _send(
    client: httpx.AsyncClient, settings: PartnersSettings, delivery: dict
) -> tuple[bool, int | None, str | None]:
    try:
        await asyncio.to_thread(
            check_webhook_url,
            delivery["url"],
            allow_loopback=settings.webhook_allow_loopback,
            require_https=settings.webhook_require_https,
        )
    except UnsafeUrl as exc:
        return False, None, f"unsafe URL: {exc}"
    body = delivery["body"].encode()
    headers = {
        "content-type": "application/json",
        **signed_headers(delivery["secret"], delivery["message_id"], body),
    }
    try:
        response = await client.post(
            delivery["url"], content=body, headers=headers, timeout=settings.webhook_timeout_s
        )
    except httpx.HTTPError as exc:
        return False, None, f"{type(exc).__name__}: {exc}"[:500]
    # Redirects are not followed: a 3xx is a failure, as in the Standard Webhooks guidance.
    ok = 200 <= response.status_code < 300
    return ok, response.status_code, None if ok else f"HTTP {response.status_code}"


async def deliver_due(pool: asyncpg.Pool, settings: PartnersSettings, client: httpx.AsyncClient) -> int:
    """Attempt every due delivery this worker can claim (one batch); returns how many."""
    async with pool.acquire() as conn, conn.transaction():
        batch = await repository.claim_due_deliveries(
            conn, settings.webhook_batch_size, settings.webhook_timeout_s + _LEASE_MARGIN_S
        )
    if not batch:
        return 0
    results = await asyncio.gather(*(_send(client, settings, d) for d in batch))
    async with pool.acquire() as conn:
        for delivery, (ok, status, error) in zip(batch, results, strict=True):
            attempt = delivery["attempts"] + 1
            retry = None
            if not ok and attempt < settings.webhook_max_attempts:
                retry = backoff_delay(
                    attempt, settings.webhook_backoff_base_s, settings.webhook_backoff_cap_s
                )
            ATTEMPTS.labels("delivered" if ok else ("retry" if retry is not None else "dead")).inc()
            if not ok:
                log.info(
                    "webhook delivery failed",
                    extra={
                        "delivery_id": delivery["id"],
                        "attempt": attempt,
                        "error": error,
                        "retry_in_s": retry,
                    },
                )
            await repository.record_attempt(
                conn, delivery["id"], delivered=ok, http_status=status, error=error, retry_in_s=retry
            )
    return len(batch)


async def run_delivery_worker(pool: asyncpg.Pool, settings: PartnersSettings) -> None:
    """Loop for the service's lifetime; several replicas share the queue safely."""
    async with httpx.AsyncClient(follow_redirects=False) as client:
        while True:
            try:
                done = await deliver_due(pool, settings, client)
            except asyncio.CancelledError:
                raise
            except Exception:  # a database blip must not end the worker
                log.exception("webhook delivery round failed")
                done = 0
            if done < settings.webhook_batch_size:
                await asyncio.sleep(settings.webhook_poll_interval_s)
