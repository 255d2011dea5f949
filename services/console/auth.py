"""Who is asking: the session cookie, the CSRF token on every POST, and the role an action needs.

Every refusal is audited. Refusals are plain-language HTML pages (`Refused`), never a stack trace.
"""

from __future__ import annotations

import datetime as dt

import asyncpg
from fastapi import Request
from starlette.datastructures import FormData

from . import repository as repo
from .context import console_context
from .repository import Session
from .security import can, hash_token, tokens_match

__all__ = [
    "COOKIE",
    "SIGN_IN_COOKIE",
    "Refused",
    "SignInRequired",
    "acting",
    "audit",
    "current",
    "page_session",
]

COOKIE = "console_session"
SIGN_IN_COOKIE = "console_sign_in"  # double-submit CSRF token of the sign-in form (no session yet)


class Refused(Exception):
    def __init__(self, status: int, title: str, message: str) -> None:
        super().__init__(message)
        self.status, self.title, self.message = status, title, message


class SignInRequired(Exception):
    """A page needs a session: answered with a redirect to the sign-in page."""


async def audit(
    pool: asyncpg.Pool, username: str, action: str, target: str = "", outcome: str = "done", detail: str = ""
) -> None:
    """One audit row, in a unit of work of its own (a refusal or failure is audited after its rollback)."""
    async with pool.acquire() as conn:
        await repo.add_audit(conn, username, action, target, outcome, detail)


async def current(request: Request) -> Session | None:
    token = request.cookies.get(COOKIE)
    if not token:
        return None
    rt = console_context(request)
    settings = rt.settings
    async with rt.pool.acquire() as conn:
        return await repo.touch_session(
            conn,
            hash_token(token),
            dt.timedelta(minutes=settings.session_idle_minutes),
            dt.timedelta(hours=settings.session_absolute_hours),
        )


async def page_session(request: Request) -> Session:
    session = await current(request)
    if session is None:
        raise SignInRequired()
    return session


async def acting(
    request: Request, action: str, target: str = "", needed: str = "operator"
) -> tuple[Session, FormData]:
    """The session and form of a POST that changes something, after the session, CSRF and role checks."""
    form = await request.form()
    session = await current(request)
    pool = console_context(request).pool
    if session is None:
        await audit(pool, "-", action, target, "refused", "no session")
        raise Refused(
            403,
            "Please sign in again",
            "Your session has ended or you are not signed in. Nothing was changed.",
        )
    if not tokens_match(_text(form, "csrf_token"), session.csrf_token):
        await audit(pool, session.username, action, target, "refused", "missing or wrong form token")
        raise Refused(
            403,
            "This form has expired",
            "The form was not sent from this console's own page, or it is out of date. Nothing was changed. "
            "Go back, reload the page and try again.",
        )
    if not can(session.role, needed):
        await audit(pool, session.username, action, target, "refused", f"role {session.role}")
        raise Refused(
            403,
            "You cannot do this",
            f"Your role ({session.role}) can look but not change this; it needs the {needed} role. "
            "Nothing was changed.",
        )
    return session, form


def _text(form: FormData, name: str) -> str | None:
    value = form.get(name)
    return value if isinstance(value, str) else None
