"""What residents do with e-mail alerts: sign up (double opt-in), confirm, change, unsubscribe."""

from __future__ import annotations

import datetime as dt
import uuid
from collections.abc import Sequence
from dataclasses import dataclass

import asyncpg
from email_validator import EmailNotValidError, validate_email

from shared.contracts import Category
from shared.gazetteer.selection import Areas, Selection, UnknownArea
from shared.refusals import Conflict, Invalid, NotFound

from . import repository as repo
from .mail import confirmation_mail
from .settings import NotifierSettings
from .smtp import Mailer
from .tokens import address_hmac, confirm_token, read_link_token, sha256

__all__ = [
    "FREQUENCIES",
    "LinkEnded",
    "SignUp",
    "TooMany",
    "Unavailable",
    "confirm",
    "confirmation_state",
    "parse_signup",
    "resolve_place",
    "sign_up",
    "subscription_for_link",
    "suppress",
]

FREQUENCIES = ("instant", "daily", "weekly")


# Besides shared.refusals' NotFound, Conflict and Invalid, three states a resident is told apart about;
# each title says what happened and its detail what to do (web.py answers them as pages).
class LinkEnded(Conflict):
    """The link was already used, has expired, or its alerts have ended."""


class TooMany(Conflict):
    """Too many sign-ups, from one client or for one address: try again later."""


class Unavailable(Conflict):
    """The notifier cannot do it now (the street list is not loaded, the mail server refused)."""


@dataclass(frozen=True)
class SignUp:
    email: str
    selection: Selection
    categories: list[str]
    frequency: str


def _number(name: str, value: str | None) -> float:
    try:
        return float(value or "")
    except ValueError:
        raise Invalid("Please check the place", f"The {name} is not a number.") from None


def resolve_place(areas: Areas, settings: NotifierSettings, form: dict[str, str]) -> Selection:
    kind = form.get("kind") or (
        "street" if form.get("street_id") else "ward" if form.get("ward_code") else "area"
    )
    try:
        if kind == "street":
            return areas.for_streets([form.get("street_id", "")])
        if kind == "ward":
            return areas.for_ward(form.get("ward_code", ""))
        if kind == "area":
            lat, lon, radius = (_number(n, form.get(n)) for n in ("lat", "lon", "radius_m"))
            if not 50 <= radius <= settings.max_radius_m:
                raise Invalid("Please check the distance", f"Choose 50 to {settings.max_radius_m} metres.")
            return areas.for_circle(lat, lon, radius)
    except UnknownArea as exc:
        raise Invalid("We could not find that place", str(exc).capitalize() + ".") from None
    raise Invalid("Please check the place", "Choose a street, a ward or a distance around a point.")


def parse_signup(
    areas: Areas, settings: NotifierSettings, form: dict[str, str], categories: list[str]
) -> SignUp:
    """Validate a sign-up form; `Invalid` names what to fix."""
    try:
        email = validate_email(form.get("email", "").strip(), check_deliverability=False).normalized.lower()
    except EmailNotValidError:
        raise Invalid(
            "Please check your e-mail address",
            "That does not look like an e-mail address, e.g. name@example.org.",
        ) from None
    frequency = form.get("frequency") or "instant"
    if frequency not in FREQUENCIES:
        raise Invalid("Please choose how often", "Choose instant, daily or weekly.")
    known = {c.value for c in Category}
    chosen = sorted({c for c in categories if c})
    if unknown := [c for c in chosen if c not in known]:
        raise Invalid("Please check the kinds of need", f"We do not know {', '.join(unknown)}.")
    return SignUp(email, resolve_place(areas, settings, form), chosen, frequency)


async def sign_up(pool: asyncpg.Pool, settings: NotifierSettings, request: SignUp, now: dt.datetime) -> None:
    """Store a pending alert and send its confirmation mail — both or neither."""
    secret = settings.link_secret.get_secret_value()
    token, digest = confirm_token()
    address = address_hmac(secret, request.email)
    async with pool.acquire() as conn, conn.transaction():
        # Sign-ups for one address take turns, so the suppression and daily-cap checks below still
        # hold when their row is inserted (two at once could otherwise both pass the cap).
        await repo.lock_address(conn, address)
        if await repo.is_suppressed(conn, address):
            raise Conflict(
                "We cannot send mail to that address",
                "Mail to it bounced or was reported as unwanted, so we stopped. Try another address.",
            )
        if await repo.signups_since(conn, request.email, now - dt.timedelta(days=1)) >= (
            settings.signups_per_address_per_day
        ):
            raise TooMany("Too many sign-ups for this address", "Please try again tomorrow.")
        expires_at = now + dt.timedelta(hours=settings.confirm_hours)
        sid = await repo.insert_pending(
            conn, request.email, request.selection, request.categories, request.frequency, digest, expires_at
        )
        sub = await repo.subscription(conn, sid)
        assert sub is not None
        mailer = Mailer(settings)
        try:
            await mailer.send(confirmation_mail(settings, sub, token, now))
        except Exception:  # any failure rolls the row back: nothing stored half-done
            raise Unavailable(
                "We could not send the confirmation mail",
                "Nothing was saved. Please try again later.",
            ) from None
        finally:
            await mailer.close()


async def confirmation_state(
    pool: asyncpg.Pool, token: str, now: dt.datetime, *, confirm_now: bool
) -> repo.Subscription:
    """The pending alert a confirmation link names (confirmed when `confirm_now`); a refusal otherwise."""
    async with pool.acquire() as conn, conn.transaction():
        sub = await repo.subscription_by_confirm(conn, sha256(token))
        if sub is None:
            raise NotFound(
                "We do not recognise this link",
                "It may be mistyped or cut short, or the alert it was for has been ended. "
                "You can sign up again from any street page.",
            )
        if sub.status == "active":
            raise LinkEnded(
                "This link has already been used",
                "Your alerts are confirmed. To change or stop them, "
                "use the links at the foot of any alert mail.",
            )
        expired = sub.confirm_expires_at <= now
        if expired:
            await repo.delete_subscription(conn, sub.subscription_id)  # committed: raised after the block
        elif confirm_now:
            await repo.activate(conn, sub, now)
    if expired:
        raise LinkEnded(
            "This link has expired",
            "We have deleted the request. Please sign up again from the street page.",
        )
    return sub


async def confirm(pool: asyncpg.Pool, token: str, now: dt.datetime) -> repo.Subscription:
    return await confirmation_state(pool, token, now, confirm_now=True)


async def subscription_for_link(
    pool: asyncpg.Pool, settings: NotifierSettings, token: str
) -> tuple[uuid.UUID, repo.Subscription | None]:
    """(id, alert) a manage/unsubscribe link names; the alert is None once it has ended."""
    sid = read_link_token(settings.link_secret.get_secret_value(), token)
    if sid is None:
        raise NotFound("We do not recognise this link", "It may be mistyped or cut short.")
    async with pool.acquire() as conn:
        return sid, await repo.subscription(conn, sid)


async def suppress(
    pool: asyncpg.Pool, settings: NotifierSettings, reports: Sequence[tuple[str, str]]
) -> tuple[int, int]:
    """Suppress each reported address (kind "bounce" or "complaint") and delete its alerts, in one
    unit of work: (addresses suppressed, alerts deleted). Only the address's keyed hash is kept."""
    secret = settings.link_secret.get_secret_value()
    deleted = 0
    async with pool.acquire() as conn, conn.transaction():
        for address, kind in reports:
            email = address.strip().lower()
            deleted += await repo.suppress(conn, email, address_hmac(secret, email), kind)
    return len(reports), deleted
