"""The mails: confirmation, instant alert and digest, as plain text + HTML with RFC 8058 headers."""

from __future__ import annotations

import datetime as dt
import email.policy
import hashlib
import uuid
from dataclasses import dataclass
from email.message import EmailMessage
from email.utils import format_datetime
from urllib.parse import quote

from shared.contracts import CATALOGUE, Category, PromptPublished

from .pages import render
from .repository import Subscription
from .settings import NotifierSettings
from .tokens import link_token

__all__ = [
    "Links",
    "confirmation_mail",
    "digest_mail",
    "instant_mail",
    "links_for",
    "message_id",
    "wire_bytes",
]

# List-Unsubscribe is stored raw, folded by us between its two URIs, and never refolded: the default
# policy turns a line longer than 78 characters into RFC 2047 encoded-words, and no mail client reads
# an encoded URI as an unsubscribe link.
_WIRE = email.policy.SMTP.clone(refold_source="none")


def wire_bytes(msg: EmailMessage) -> bytes:
    """The message as sent over SMTP (CRLF line ends, our raw headers left as they are)."""
    return msg.as_bytes(policy=_WIRE)


@dataclass(frozen=True)
class Links:
    manage: str
    unsubscribe: str


def links_for(settings: NotifierSettings, sid: uuid.UUID) -> Links:
    token = link_token(settings.link_secret.get_secret_value(), sid)
    return Links(f"{settings.base_url}/manage/{token}", f"{settings.base_url}/unsubscribe/{token}")


def message_id(settings: NotifierSettings, *parts: object) -> str:
    """A Message-ID derived from what the mail is for, so a resent mail carries the same one."""
    digest = hashlib.sha256("|".join(str(p) for p in parts).encode()).hexdigest()[:40]
    return f"<{digest}@{settings.mail_domain}>"


def prompt_url(settings: NotifierSettings, prompt_id: str) -> str:
    return f"{settings.feeds_url}/prompts/{quote(prompt_id, safe='')}"


def _categories(sub: Subscription) -> str:
    if not sub.categories:
        return "all kinds of need"
    return ", ".join(CATALOGUE[Category(c)].name for c in sub.categories)


def _message(
    settings: NotifierSettings,
    sub: Subscription,
    *,
    subject: str,
    template: str,
    msg_id: str,
    now: dt.datetime,
    **context: object,
) -> EmailMessage:
    """A mail to `sub`'s address, with its manage and one-click unsubscribe links."""
    links = links_for(settings, sub.subscription_id)
    unsubscribe = links.unsubscribe
    msg = EmailMessage()
    msg["From"] = settings.mail_from
    msg["To"] = sub.email
    msg["Subject"] = subject
    msg["Date"] = format_datetime(now.astimezone(dt.UTC))
    msg["Message-ID"] = msg_id
    # RFC 2369 + RFC 8058: mail clients show an unsubscribe button that POSTs to the URL, one click.
    subject = quote("unsubscribe " + unsubscribe.rsplit("/", 1)[1])
    mailto = f"mailto:{settings.unsubscribe_mailto}?subject={subject}"
    msg.set_raw("List-Unsubscribe", f"<{unsubscribe}>,\n <{mailto}>")
    msg["List-Unsubscribe-Post"] = "List-Unsubscribe=One-Click"
    msg["Auto-Submitted"] = "auto-generated"
    context = {
        "settings": settings,
        "unsubscribe_url": unsubscribe,
        "sub": sub,
        "manage_url": links.manage,
        **context,
    }
    msg.set_content(render(f"{template}.txt", **context).decode())
    msg.add_alternative(render(f"{template}.html", **context).decode(), subtype="html")
    return msg


def confirmation_mail(
    settings: NotifierSettings, sub: Subscription, confirm_token: str, now: dt.datetime
) -> EmailMessage:
    return _message(
        settings,
        sub,
        subject=f"Confirm your streetneeds alerts for {sub.label}",
        template="mail_confirm",
        msg_id=message_id(settings, "confirm", sub.subscription_id, uuid.uuid4()),
        now=now,
        what=_categories(sub),
        confirm_url=f"{settings.base_url}/confirm/{confirm_token}",
        hours=settings.confirm_hours,
    )


def instant_mail(
    settings: NotifierSettings, sub: Subscription, event: PromptPublished, now: dt.datetime
) -> EmailMessage:
    return _message(
        settings,
        sub,
        subject=f"{event.title} – {event.area_name}",
        template="mail_instant",
        msg_id=message_id(settings, "instant", sub.subscription_id, event.prompt_id, event.revision),
        now=now,
        e=event,
        url=prompt_url(settings, event.prompt_id),
    )


def digest_mail(
    settings: NotifierSettings,
    sub: Subscription,
    period: str,
    events: list[PromptPublished],
    now: dt.datetime,
) -> EmailMessage:
    word = "today's" if period.startswith("daily") else "this week's"
    items = [(e, prompt_url(settings, e.prompt_id)) for e in events]
    return _message(
        settings,
        sub,
        subject=f"{word.capitalize()} streetneeds digest for {sub.label} ({len(events)} new)",
        template="mail_digest",
        msg_id=message_id(settings, "digest", sub.subscription_id, period),
        now=now,
        items=items,
        word=word,
    )
