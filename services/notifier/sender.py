"""The sender loop: claim due outbox rows, send each with its deterministic Message-ID, mark it sent.

A mail is marked sent only after the SMTP server accepted it, each in its own statement; a sender
that dies leaves its rows leased, and they are claimed again when the lease runs out. So nothing is
lost, and the only repeat is a mail accepted by the server but not yet marked (see
docs/design/notifier-delivery.md) — resent with the same Message-ID, which lets clients fold it.
"""

from __future__ import annotations

import asyncio
import datetime as dt
import logging
import uuid
from collections.abc import Callable
from email.message import EmailMessage

import asyncpg

from . import repository as repo
from .mail import digest_mail, instant_mail
from .settings import NotifierSettings
from .smtp import Mailer, PermanentFailure

__all__ = ["Sender", "build"]

log = logging.getLogger(__name__)
Clock = Callable[[], dt.datetime]


async def build(
    conn: asyncpg.Connection, settings: NotifierSettings, row: repo.Claimed, now: dt.datetime
) -> EmailMessage | None:
    """The mail an outbox row stands for (None when there is nothing left to say)."""
    if row.kind == "instant":
        return instant_mail(settings, row.subscription, row.event, now) if row.event else None
    assert row.period_start is not None and row.period_end is not None and row.period is not None
    events = await repo.digest_events(
        conn, row.subscription.subscription_id, row.period_start, row.period_end
    )
    return digest_mail(settings, row.subscription, row.period, events, now) if events else None


class Sender:
    def __init__(self, pool: asyncpg.Pool, settings: NotifierSettings, clock: Clock) -> None:
        self.pool, self.settings, self.clock = pool, settings, clock

    async def run(self, worker: int) -> None:
        mailer = Mailer(self.settings)
        try:
            while True:
                try:
                    sent = await self.once(mailer)
                except Exception as exc:  # the loop must outlive any one failure; leased rows come back
                    # Only the type: messages of SMTP or database errors can quote an address.
                    log.warning("sender: batch failed", extra={"worker": worker, "error": type(exc).__name__})
                    await asyncio.sleep(5.0)
                    sent = 0
                if not sent:
                    await asyncio.sleep(self.settings.sender_idle_s)
        finally:
            await mailer.close()

    async def once(self, mailer: Mailer) -> int:
        """Claim one batch and work through it; the number of rows handled."""
        s = self.settings
        owner = uuid.uuid4()
        async with self.pool.acquire() as conn:
            rows = await repo.claim(conn, s.sender_batch, s.lease_s, owner)
            for row in rows:
                await self._deliver(conn, mailer, row, owner)
        return len(rows)

    async def _deliver(
        self, conn: asyncpg.Connection, mailer: Mailer, row: repo.Claimed, owner: uuid.UUID
    ) -> None:
        s = self.settings
        message = await build(conn, s, row, self.clock())
        # Renewed right before sending (the lease outlasts one SMTP timeout): a row whose lease ran out
        # while earlier rows of the batch were slow may have been claimed by another sender.
        if not await repo.renew(conn, row.id, owner, s.lease_s):
            return
        if message is None:  # e.g. every prompt of a digest retired meanwhile: nothing to send
            await repo.mark_sent(conn, row.id)
            return
        try:
            await mailer.send(message)
        except PermanentFailure as exc:
            await repo.release(conn, row.id, str(exc), retry_in_s=None)
            log.warning("mail refused for good", extra={"outbox_id": row.id})
            return
        except Exception as exc:  # any SMTP or network trouble: retry with back-off
            final = row.attempts + 1 >= s.max_attempts
            retry = None if final else min(3600.0, 5.0 * 2**row.attempts)
            await repo.release(conn, row.id, f"{type(exc).__name__}: {exc}", retry_in_s=retry)
            log.warning(
                "mail not sent",
                extra={"outbox_id": row.id, "error": type(exc).__name__, "given_up": final},
            )
            return
        await repo.mark_sent(conn, row.id)
