"""Sending over SMTP with aiosmtplib: one connection per sender, reopened when it drops."""

from __future__ import annotations

from email.message import EmailMessage
from email.utils import parseaddr

import aiosmtplib

from .mail import wire_bytes
from .settings import NotifierSettings

__all__ = ["Mailer", "PermanentFailure"]


class PermanentFailure(Exception):
    """The server refused the mail for good (5xx): retrying would not help."""


class Mailer:
    def __init__(self, settings: NotifierSettings) -> None:
        self.settings = settings
        self._client: aiosmtplib.SMTP | None = None

    async def _connect(self) -> aiosmtplib.SMTP:
        s = self.settings
        client = aiosmtplib.SMTP(
            hostname=s.smtp_host,
            port=s.smtp_port,
            use_tls=s.smtp_tls,
            start_tls=s.smtp_starttls,
            timeout=s.smtp_timeout_s,
        )
        await client.connect()
        if s.smtp_username and s.smtp_password:
            await client.login(s.smtp_username, s.smtp_password.get_secret_value())
        return client

    async def send(self, message: EmailMessage) -> None:
        """Hand one message to the server; raises PermanentFailure on a 5xx, other errors otherwise."""
        if self._client is None or not self._client.is_connected:
            self._client = await self._connect()
        try:
            sender, recipient = parseaddr(message["From"])[1], parseaddr(message["To"])[1]
            await self._client.sendmail(sender, [recipient], wire_bytes(message))
        except aiosmtplib.SMTPRecipientsRefused as exc:
            if all(r.code >= 500 for r in exc.recipients):
                raise PermanentFailure("; ".join(f"{r.code} {r.message}" for r in exc.recipients)) from None
            raise
        except aiosmtplib.SMTPResponseException as exc:
            if 500 <= exc.code < 600:
                raise PermanentFailure(f"{exc.code} {exc.message}") from None
            await self.close()
            raise
        except (aiosmtplib.SMTPException, OSError):
            await self.close()
            raise

    async def close(self) -> None:
        client, self._client = self._client, None
        if client is not None and client.is_connected:
            try:
                await client.quit()
            except (aiosmtplib.SMTPException, OSError):
                client.close()
