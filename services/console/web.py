"""The console's pages: sign-in, overview, council systems, partners, privacy, operations, audit, operators.

Every page works without JavaScript. Every POST goes through `acting` (session, CSRF token, role) and
leaves one audit row, whatever its outcome. Keys and passwords appear once, on the page that made them.
"""

from __future__ import annotations

import datetime as dt
import re
import uuid
from collections import Counter, defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import HTMLResponse, RedirectResponse, Response
from starlette.datastructures import FormData

from shared.contracts import ALL_TOPICS, CATALOGUE, DEAD_LETTERS
from shared.privacy import ANNUAL_EPSILON_CAP, EPSILON_PER_RELEASE
from shared.web import page_renderer

from . import kafka_ops
from . import repository as repo
from .auth import COOKIE, SIGN_IN_COOKIE, Refused, acting, audit, page_session
from .charts import bar_chart
from .context import ConsoleContext, Context, console_context
from .repository import Session
from .security import (
    DUMMY_HASH,
    ROLES,
    USERNAME,
    can,
    generate_password,
    hash_password,
    hash_token,
    new_token,
    tokens_match,
    verify_password,
)
from .targets import TargetError, Targets

__all__ = ["router"]

router = APIRouter(include_in_schema=False)
CATEGORIES = [(c.code.value, c.name, c.sensitivity.value) for c in CATALOGUE.values()]
COUNCIL = re.compile(r"^[a-z0-9][a-z0-9-]{0,62}$")
NAV = (
    ("/", "Overview"),
    ("/systems", "Council systems"),
    ("/partners", "Partners"),
    ("/moderation", "Moderation"),
    ("/privacy", "Privacy"),
    ("/operations", "Operations"),
    ("/audit", "Audit"),
    ("/operators", "Operators"),
)
SIGN_IN_WINDOW = dt.timedelta(minutes=15)
# Replay writes only to the project's own topics (a forged letter must not make the console write elsewhere).
REPLAYABLE = frozenset(t.name for t in ALL_TOPICS if t is not DEAD_LETTERS)
_render = page_renderer(Path(__file__).parent / "templates")


def render(
    request: Request, template: str, session: Session | None, status: int = 200, **context: Any
) -> Response:
    settings = console_context(request).settings
    body = _render(
        template,
        base_url="",
        private=True,
        session=session,
        csrf=session.csrf_token if session else "",
        may_change=bool(session and can(session.role, "operator")),
        is_admin=bool(session and can(session.role, "admin")),
        nav=NAV,
        here=request.url.path,
        categories=CATEGORIES,
        console_url=settings.base_url,
        **context,
    )
    return HTMLResponse(body, status_code=status)


def problem_page(
    request: Request, session: Session | None, status: int, title: str, message: str
) -> Response:
    return render(request, "problem.html", session, status=status, title=title, message=message)


async def _soft(call: Awaitable[Any]) -> tuple[Any, str | None]:
    """A section's data, or the reason it could not be fetched (the rest of the page still shows)."""
    try:
        return await call, None
    except TargetError as exc:
        return None, exc.message
    except Exception as exc:  # Kafka or network trouble: say so on the page, don't fail it
        return None, f"could not be read ({type(exc).__name__})"


def _targets(request: Request) -> Targets:
    return console_context(request).targets


Action = Callable[[FormData, Session], Awaitable[tuple[str, str | None, str]]]


async def _act(request: Request, action: str, target: str, needed: str, fn: Action) -> Response:
    """Checks, then `fn` -> (message, secret shown once or None, back link); audits the outcome."""
    session, form = await acting(request, action, target, needed)
    pool = console_context(request).pool
    try:
        message, secret, back = await fn(form, session)
    except (TargetError, Refused) as exc:
        status = exc.status if exc.status < 500 else 502
        await audit(pool, session.username, action, target, "failed", exc.message)
        return problem_page(
            request,
            session,
            422 if status in (400, 404, 409, 422) else status,
            "That did not work",
            exc.message,
        )
    await audit(pool, session.username, action, target, "done", message)
    response = render(
        request, "done.html", session, title=action.capitalize(), message=message, secret=secret, back=back
    )
    return response


@dataclass(frozen=True)
class KeyHolder:
    """Who holds an API key that another service issues: rotated and revoked the same way for all."""

    service: str  # the service that issues the key
    path: str  # its admin collection, e.g. /v1/admin/systems
    field: str  # where a rotation's answer names the holder
    label: str  # in messages and the audit
    page: str  # where the operator goes back to


# By the console's path for them: /{kind}/{id}/rotate and /{kind}/{id}/revoke.
KEY_HOLDERS = {
    "systems": KeyHolder("ingest", "/v1/admin/systems", "system", "council system", "/systems"),
    "partners": KeyHolder("partners", "/v1/admin/partners", "partner", "partner", "/partners"),
    "organisations": KeyHolder(
        "prompter", "/v1/admin/organisations", "organisation", "organisation", "/moderation"
    ),
}


def _no_page(request: Request, session: Session | None) -> Response:
    return problem_page(request, session, 404, "Page not found", "There is no such page in the console.")


async def _rotate(request: Request, holder: KeyHolder, item_id: uuid.UUID) -> Response:
    """A new key, shown once; the old one stops working."""

    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        made = await _targets(request).call(holder.service, "POST", f"{holder.path}/{item_id}/rotate")
        return (
            f"New key for '{made[holder.field]['name']}'; the old key no longer works.",
            made["key"],
            holder.page,
        )

    return await _act(request, f"rotate {holder.label} key", str(item_id), "operator", do)


async def _revoke(request: Request, holder: KeyHolder, item_id: uuid.UUID) -> Response:
    """Revoke a key at once (the GET to the same address asks first)."""

    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        done = await _targets(request).call(holder.service, "POST", f"{holder.path}/{item_id}/revoke")
        return (
            f"{holder.label.capitalize()} '{done['name']}' revoked: its key no longer works.",
            None,
            holder.page,
        )

    return await _act(request, f"revoke {holder.label}", str(item_id), "operator", do)


def _key_routes(kind: str, holder: KeyHolder) -> None:
    """POST /{kind}/{item_id}/rotate and /revoke for one holder (unknown kinds stay 404)."""

    async def rotate(request: Request, item_id: uuid.UUID) -> Response:
        return await _rotate(request, holder, item_id)

    async def revoke(request: Request, item_id: uuid.UUID) -> Response:
        return await _revoke(request, holder, item_id)

    router.add_api_route(f"/{kind}/{{item_id}}/rotate", rotate, methods=["POST"], name=f"rotate_{kind}")
    router.add_api_route(f"/{kind}/{{item_id}}/revoke", revoke, methods=["POST"], name=f"revoke_{kind}")


for _kind, _holder in KEY_HOLDERS.items():
    _key_routes(_kind, _holder)


# --- sign-in --------------------------------------------------------------------------------------


@router.get("/sign-in")
async def sign_in_page(request: Request) -> Response:
    token = new_token()
    response = render(request, "sign_in.html", None, title="Sign in", sign_in_csrf=token, error=None)
    _cookie(request, response, SIGN_IN_COOKIE, token, max_age=3600)
    return response


@router.post("/sign-in")
async def sign_in(request: Request, ctx: Context) -> Response:
    form = await request.form()
    username = str(form.get("username") or "").strip().lower()
    password = str(form.get("password") or "")
    operator = None
    if USERNAME.match(username):
        async with ctx.pool.acquire() as conn:
            operator = await repo.find_operator(conn, username)
    # Only a known operator's name goes into the audit: a password typed into the name field must not.
    who = operator.username if operator else "-"
    if not tokens_match(str(form.get("csrf_token") or ""), request.cookies.get(SIGN_IN_COOKIE)):
        await audit(ctx.pool, who, "sign in", "", "refused", "missing or wrong form token")
        return problem_page(
            request,
            None,
            403,
            "This form has expired",
            "The sign-in form was not sent from this console's page or is out of date. "
            "Reload it and try again.",
        )
    if operator and await _recent_failures(ctx, who) >= ctx.settings.sign_in_attempts:
        await audit(ctx.pool, who, "sign in", "", "refused", "too many failed attempts")
        return problem_page(
            request,
            None,
            429,
            "Too many attempts",
            "Too many failed sign-ins for this name. Wait 15 minutes.",
        )
    ok = verify_password(password, operator.password_hash if operator else DUMMY_HASH)
    if not ok or operator is None or operator.disabled_at is not None:
        detail = "wrong password" if operator else "unknown user name"
        await audit(ctx.pool, who, "sign in", "", "failed", detail)
        token = new_token()
        response = render(
            request,
            "sign_in.html",
            None,
            status=401,
            title="Sign in",
            sign_in_csrf=token,
            error="That name and password do not match an active operator. Check them and try again.",
        )
        _cookie(request, response, SIGN_IN_COOKIE, token, max_age=3600)
        return response
    token = new_token()  # a new session id at every sign-in (no fixation)
    async with ctx.pool.acquire() as conn, conn.transaction():
        await repo.create_session(conn, hash_token(token), operator.id, new_token())
        await repo.add_audit(conn, operator.username, "sign in", "", "done", f"role {operator.role}")
    response = RedirectResponse("/", status_code=303)
    _cookie(request, response, COOKIE, token, max_age=ctx.settings.session_absolute_hours * 3600)
    response.delete_cookie(SIGN_IN_COOKIE, path="/")
    return response


@router.post("/sign-out")
async def sign_out(request: Request, ctx: Context) -> Response:
    session, _ = await acting(request, "sign out", "", "viewer")
    async with ctx.pool.acquire() as conn, conn.transaction():
        await repo.end_session(conn, session.token_hash)
        await repo.add_audit(conn, session.username, "sign out")
    response = RedirectResponse("/sign-in", status_code=303)
    response.delete_cookie(COOKIE, path="/")
    return response


async def _recent_failures(ctx: ConsoleContext, username: str) -> int:
    async with ctx.pool.acquire() as conn:
        return await repo.recent_failures(conn, username, SIGN_IN_WINDOW)


def _cookie(request: Request, response: Response, name: str, value: str, max_age: int) -> None:
    response.set_cookie(
        name,
        value,
        max_age=max_age,
        path="/",
        httponly=True,
        samesite="strict",
        secure=console_context(request).settings.secure_cookies,
    )


# --- overview ---------------------------------------------------------------------------------


@router.get("/")
async def overview(request: Request, ctx: Context) -> Response:
    session = await page_session(request)
    health = await _targets(request).health()
    lag, lag_error = await _soft(kafka_ops.consumer_lag(ctx.settings))
    return render(
        request, "overview.html", session, title="Overview", health=health, lag=lag, lag_error=lag_error
    )


# --- council systems --------------------------------------------------------------------------------


@router.get("/systems")
async def systems_page(request: Request) -> Response:
    session = await page_session(request)
    systems, error = await _soft(_targets(request).call("ingest", "GET", "/v1/admin/systems"))
    return render(
        request, "systems.html", session, title="Council systems", systems=systems or [], error=error
    )


def _categories(form: FormData) -> list[str]:
    chosen = [str(c) for c in form.getlist("categories")]
    if not chosen:
        raise Refused(422, "Check the form", "Choose at least one category the system may send.")
    return chosen


def _rate(form: FormData) -> int | None:
    raw = str(form.get("rate_per_minute") or "").strip()
    if not raw:
        return None
    if not raw.isdigit() or not 1 <= int(raw) <= 100_000:
        raise Refused(422, "Check the form", "Rate limit must be a whole number from 1 to 100000, or empty.")
    return int(raw)


@router.post("/systems")
async def create_system(request: Request) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        name = str(form.get("name") or "").strip()
        council = str(form.get("council_id") or "").strip()
        if not name:
            raise Refused(422, "Check the form", "Give the system a name, e.g. 'Adult social care'.")
        if not COUNCIL.match(council):
            raise Refused(
                422, "Check the form", "Council id: lower-case letters, digits and '-' only, e.g. camden."
            )
        body = {
            "name": name,
            "council_id": council,
            "categories": _categories(form),
            "rate_per_minute": _rate(form),
        }
        made = await _targets(request).call("ingest", "POST", "/v1/admin/systems", json=body)
        system = made["system"]
        return f"Council system '{system['name']}' ({system['id']}) created.", made["key"], "/systems"

    return await _act(request, "create council system", await _peek(request, "name"), "operator", do)


@router.post("/systems/{system_id}/settings")
async def update_system(request: Request, system_id: uuid.UUID) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        body = {"categories": _categories(form), "rate_per_minute": _rate(form)}
        done = await _targets(request).call("ingest", "PUT", f"/v1/admin/systems/{system_id}", json=body)
        rate = done["rate_per_minute"] or "the default"
        return (
            f"'{done['name']}' may now send {', '.join(done['categories'])}, at {rate} requests per minute.",
            None,
            "/systems",
        )

    return await _act(request, "set council system categories and rate", str(system_id), "operator", do)


@router.get("/{kind}/{item_id}/revoke")
async def confirm_revoke(request: Request, kind: str, item_id: uuid.UUID, name: str = "") -> Response:
    """Revoking stops a key at once: a page that asks first (the POST to the same address does it)."""
    session = await page_session(request)
    holder = KEY_HOLDERS.get(kind)
    if holder is None:
        return _no_page(request, session)
    if not can(session.role, "operator"):
        return problem_page(
            request, session, 403, "You cannot do this", f"Your role ({session.role}) can look only."
        )
    what = holder.label
    label = f"{what} '{name[:200]}' ({item_id})" if name else f"{what} {item_id}"
    return render(
        request,
        "confirm.html",
        session,
        title=f"Revoke this {what}?",
        message=f"Revoke the {label}? Its key stops working at once; it cannot be undone (a new "
        "registration gets a new key).",
        action=f"/{kind}/{item_id}/revoke",
        button="Yes, revoke",
        back=holder.page,
    )


# --- partners -------------------------------------------------------------------------------------


@router.get("/partners")
async def partners_page(request: Request) -> Response:
    session = await page_session(request)
    partners, error = await _soft(_targets(request).call("partners", "GET", "/v1/admin/partners"))
    return render(request, "partners.html", session, title="Partners", partners=partners or [], error=error)


@router.post("/partners")
async def create_partner(request: Request) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        name = str(form.get("name") or "").strip()
        if not name or len(name) > 200:
            raise Refused(
                422, "Check the form", "Give the partner organisation's name (up to 200 characters)."
            )
        made = await _targets(request).call("partners", "POST", "/v1/admin/partners", json={"name": name})
        return (
            f"Partner '{made['partner']['name']}' ({made['partner']['id']}) added.",
            made["key"],
            "/partners",
        )

    return await _act(request, "create partner", "", "operator", do)


# --- privacy ----------------------------------------------------------------------------------------


async def _withheld_counts(request: Request) -> list[tuple[str, str, str, int]]:
    """(period, category, reason, cells): counts only, as the aggregator gives them (never which areas)."""
    counts: Counter[tuple[str, str, str]] = Counter()
    for row in await _targets(request).call("aggregator", "GET", "/v1/audit/withheld"):
        # Only the count fields are read: should an area ever be in the answer, it is not carried on.
        counts[(row["period"], row["category"], row["reason"])] += int(row.get("cells", 1))
    return sorted(((*key, n) for key, n in counts.items()), key=lambda x: x[:3], reverse=True)


def _epsilon(releases: list[dict[str, Any]]) -> list[dict[str, Any]]:
    """Per calendar year: releases made and the most ε any one subject can have spent, against the cap."""
    years: dict[str, int] = defaultdict(int)
    for release in releases:
        years[release["period"][:4]] += 1
    return [
        {
            "year": year,
            "releases": n,
            "spent": round(n * EPSILON_PER_RELEASE, 3),
            "cap": ANNUAL_EPSILON_CAP,
            "left": round(max(0.0, ANNUAL_EPSILON_CAP - n * EPSILON_PER_RELEASE), 3),
        }
        for year, n in sorted(years.items(), reverse=True)
    ]


@router.get("/privacy")
async def privacy_page(request: Request) -> Response:
    session = await page_session(request)
    targets = _targets(request)
    releases, releases_error = await _soft(targets.call("aggregator", "GET", "/v1/releases"))
    withheld, withheld_error = await _soft(_withheld_counts(request))
    keys, keys_error = await _soft(targets.call("ingest", "GET", "/v1/admin/pseudonym-keys"))
    systems, _ = await _soft(targets.call("ingest", "GET", "/v1/admin/systems"))
    return render(
        request,
        "privacy.html",
        session,
        title="Privacy",
        releases=releases or [],
        releases_error=releases_error,
        epsilon=_epsilon(releases or []),
        per_release=EPSILON_PER_RELEASE,
        withheld=withheld or [],
        withheld_error=withheld_error,
        keys=keys,
        keys_error=keys_error,
        systems=[s for s in systems or [] if not s["revoked_at"]],
    )


@router.post("/withdrawals")
async def withdraw(request: Request) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        system_id = str(form.get("system_id") or "")
        ref = str(form.get("subject_ref") or "").strip()
        try:
            uuid.UUID(system_id)
        except ValueError:
            raise Refused(
                422, "Check the form", "Choose the council system the reference belongs to."
            ) from None
        if not ref or len(ref) > 200:
            raise Refused(
                422, "Check the form", "Give the council's reference for the person (up to 200 characters)."
            )
        done = await _targets(request).call(
            "ingest", "POST", "/v1/admin/withdrawals", json={"system_id": system_id, "subject_ref": ref}
        )
        return (
            f"Withdrawal sent for {len(done['categories'])} categories; the reference was pseudonymised by "
            "ingest and is not kept by the console.",
            None,
            "/privacy",
        )

    # The council reference is personal data: it is neither audited nor shown back.
    return await _act(request, "withdraw a subject", "", "operator", do)


# --- operations -----------------------------------------------------------------------------------


@router.get("/operations")
async def operations_page(request: Request, ctx: Context) -> Response:
    session = await page_session(request)
    targets = _targets(request)
    letters, letters_error = await _soft(kafka_ops.read_letters(ctx.settings))
    async with ctx.pool.acquire() as conn:
        decided = await repo.decided_dead_letters(conn)
    pending = [x for x in letters or [] if (x.partition, x.offset) not in decided]
    volumes, volumes_error = await _soft(targets.call("ingest", "GET", "/v1/admin/volumes", days=30))
    reports, reports_error = await _soft(targets.call("ingest", "GET", "/v1/admin/open311-volumes", days=30))
    rejects, rejects_error = await _soft(targets.call("ingest", "GET", "/v1/admin/rejects"))
    lag, lag_error = await _soft(kafka_ops.consumer_lag(ctx.settings))
    per_day: Counter[str] = Counter()
    for row in volumes or []:
        per_day[row["day"]] += row["signals"]
    days = sorted(per_day)
    chart = bar_chart([(d, per_day[d]) for d in days], "Signals accepted per day, last 30 days", "volumes")
    per_category: Counter[str] = Counter()
    for row in volumes or []:
        per_category[row.get("category") or "not recorded"] += row["signals"]
    category_chart = bar_chart(
        sorted(per_category.items()), "Signals accepted per category, last 30 days", "volumes-by-category"
    )
    reports_per_day: Counter[str] = Counter()
    for row in reports or []:
        reports_per_day[row["day"]] += row["requests"]
    reports_chart = bar_chart(
        [(d, reports_per_day[d]) for d in sorted(reports_per_day)],
        "Open311 reports per day, last 30 days",
        "reports",
    )
    return render(
        request,
        "operations.html",
        session,
        title="Operations",
        letters=pending,
        letters_error=letters_error,
        volumes=volumes or [],
        volumes_error=volumes_error,
        chart=chart,
        category_chart=category_chart,
        reports=reports or [],
        reports_error=reports_error,
        reports_chart=reports_chart,
        rejects=rejects or [],
        rejects_error=rejects_error,
        lag=lag,
        lag_error=lag_error,
    )


async def _letter(request: Request, letter_id: str) -> kafka_ops.Letter:
    for letter in await kafka_ops.read_letters(console_context(request).settings):
        if letter.id == letter_id:
            return letter
    raise Refused(404, "No such dead letter", "That dead letter is no longer on the topic (retention ended).")


@router.post("/dead-letters/{letter_id}/replay")
async def replay_letter(request: Request, ctx: Context, letter_id: str) -> Response:
    async def do(form: FormData, session: Session) -> tuple[str, str | None, str]:
        found = await _letter(request, letter_id)
        if found.letter.source_topic not in REPLAYABLE:
            raise Refused(
                422,
                "Cannot replay",
                f"{found.letter.source_topic} is not one of this deployment's topics; discard it instead.",
            )
        # Decision and replay together: a failed produce rolls the decision back, so it can be retried.
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.decide_dead_letter(
                conn, found.partition, found.offset, "replayed", session.username
            ):
                raise Refused(409, "Already handled", "That dead letter was already replayed or discarded.")
            await kafka_ops.replay(ctx.settings, found.letter)
        return (
            f"Replayed to {found.letter.source_topic}: {found.letter.service} will read it again.",
            None,
            "/operations",
        )

    return await _act(request, "replay dead letter", letter_id, "operator", do)


@router.post("/dead-letters/{letter_id}/discard")
async def discard_letter(request: Request, ctx: Context, letter_id: str) -> Response:
    async def do(form: FormData, session: Session) -> tuple[str, str | None, str]:
        found = await _letter(request, letter_id)
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.decide_dead_letter(
                conn, found.partition, found.offset, "discarded", session.username
            ):
                raise Refused(409, "Already handled", "That dead letter was already replayed or discarded.")
        return "Dead letter discarded: it is hidden from the list.", None, "/operations"

    return await _act(request, "discard dead letter", letter_id, "operator", do)


# --- audit and operators ------------------------------------------------------------------------------


@router.get("/audit")
async def audit_page(request: Request, ctx: Context) -> Response:
    session = await page_session(request)
    async with ctx.pool.acquire() as conn:
        rows = await repo.list_audit(conn, 500)
    return render(request, "audit.html", session, title="Audit", rows=rows)


@router.get("/operators")
async def operators_page(request: Request, ctx: Context) -> Response:
    session = await page_session(request)
    async with ctx.pool.acquire() as conn:
        operators = await repo.list_operators(conn)
    return render(request, "operators.html", session, title="Operators", operators=operators, roles=ROLES)


@router.post("/operators")
async def create_operator(request: Request, ctx: Context) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        username = str(form.get("username") or "").strip().lower()
        role = str(form.get("role") or "")
        if not USERNAME.match(username):
            raise Refused(
                422, "Check the form", "User name: 2–63 lower-case letters, digits, '.', '_' or '-'."
            )
        if role not in ROLES:
            raise Refused(422, "Check the form", "Choose a role: viewer, operator or admin.")
        password = generate_password()
        password_hash = hash_password(password)  # scrypt before the unit of work, not inside it
        async with ctx.pool.acquire() as conn, conn.transaction():
            if await repo.find_operator(conn, username):
                raise Refused(409, "Name taken", f"There is already an operator called {username}.")
            await repo.create_operator(conn, username, password_hash, role)
        return (
            f"Operator {username} ({role}) created. Give them this password once, privately.",
            password,
            "/operators",
        )

    return await _act(request, "create operator", str(await _peek(request, "username")), "admin", do)


@router.post("/operators/{username}/disable")
async def disable_operator(request: Request, ctx: Context, username: str) -> Response:
    async def do(form: FormData, _: Session) -> tuple[str, str | None, str]:
        async with ctx.pool.acquire() as conn, conn.transaction():
            if not await repo.set_operator_disabled(conn, username):
                raise Refused(404, "No such operator", f"No active operator called {username}.")
        return f"Operator {username} disabled; their sessions ended.", None, "/operators"

    return await _act(request, "disable operator", username, "admin", do)


async def _peek(request: Request, field: str) -> str:
    value = (await request.form()).get(field)
    return value[:100] if isinstance(value, str) else ""
