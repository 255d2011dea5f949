"""The console through HTTP against real ingest, partners and aggregator services on loopback sockets,
real Kafka and PostgreSQL; keys, roles, CSRF, sessions, the audit, privacy, withdrawals, dead letters."""

from __future__ import annotations

import asyncio
import base64
import datetime as dt
import re
import threading
import uuid
from collections.abc import Callable
from contextlib import AsyncExitStack
from typing import Any

import asyncpg
import httpx
import pytest
from aiokafka import AIOKafkaProducer

from services.aggregator.main import create_app as create_aggregator
from services.aggregator.settings import AggregatorSettings
from services.console import repository as console_repo
from services.console.main import create_app as create_console
from services.console.security import hash_password
from services.console.settings import ConsoleSettings
from services.ingest.main import create_app as create_ingest
from services.ingest.settings import IngestSettings
from services.partners.main import create_app as create_partners
from services.partners.settings import PartnersSettings
from services.prompter.main import create_app as create_prompter
from services.prompter.settings import PrompterSettings
from shared.contracts import COUNCIL_SIGNALS, DEAD_LETTERS, DeadLettered
from tests.support import loopback_socket, serve

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

TOKENS = {"ingest": "i" * 32, "aggregator": "a" * 32, "partners": "p" * 32, "prompter": "m" * 32}
HEX64 = re.compile(r"\b[0-9a-f]{64}\b")


class ConsoleStack:
    """Ingest, partners, aggregator and the console served from a thread of their own (so that a
    synchronous browser test can drive them too); `urls` by name, operators created on request."""

    def __init__(self, database_url: str, kafka: str, run_id: str) -> None:
        self.database_url, self.kafka, self.run_id = database_url, kafka, run_id
        self.urls: dict[str, str] = {}
        self._started = threading.Event()
        self._error: BaseException | None = None
        self._loop: asyncio.AbstractEventLoop | None = None
        self._stop: asyncio.Event | None = None
        self._thread = threading.Thread(target=self._run, name="console-stack", daemon=True)

    def __enter__(self) -> ConsoleStack:
        self._thread.start()
        self._started.wait(timeout=180)
        if self._error is not None:
            raise self._error
        if not self._started.is_set():
            raise TimeoutError("the console stack did not start")
        return self

    def __exit__(self, *exc: Any) -> None:
        if self._loop and self._stop:
            self._loop.call_soon_threadsafe(self._stop.set)
        self._thread.join(timeout=60)

    def _run(self) -> None:
        try:
            asyncio.run(self._main())
        except BaseException as exc:  # surfaced in __enter__
            self._error = exc
            self._started.set()

    def _apps(self) -> dict[str, Any]:
        common = {"_env_file": None, "database_url": self.database_url, "kafka_bootstrap_servers": self.kafka}
        rid = self.run_id
        return {
            "ingest": lambda: create_ingest(
                IngestSettings(
                    **common,
                    pseudonym_keys="1:" + "s" * 40,
                    pseudonym_key_version=1,
                    consumer_group=f"console-ingest-{rid}",
                    operator_token=TOKENS["ingest"],
                )
            ),
            "partners": lambda: create_partners(
                PartnersSettings(
                    **common,
                    group_id=f"console-partners-{rid}",
                    load_gazetteer=False,
                    operator_token=TOKENS["partners"],
                )
            ),
            "prompter": lambda: create_prompter(
                PrompterSettings(**common, group_id=f"console-prompter-{rid}", admin_token=TOKENS["prompter"])
            ),
            "aggregator": lambda: create_aggregator(
                AggregatorSettings(
                    **common, group_id=f"console-aggregator-{rid}", operator_token=TOKENS["aggregator"]
                )
            ),
        }

    async def _main(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        async with AsyncExitStack() as stack:
            for name, make in self._apps().items():
                sock, url = loopback_socket()
                await stack.enter_async_context(serve(make(), sock))
                self.urls[name] = url
            sock, url = loopback_socket()
            settings = ConsoleSettings(
                _env_file=None,
                database_url=self.database_url,
                kafka_bootstrap_servers=self.kafka,
                base_url=url,
                ingest_url=self.urls["ingest"],
                partners_url=self.urls["partners"],
                aggregator_url=self.urls["aggregator"],
                prompter_url=self.urls["prompter"],
                feeds_url="http://127.0.0.1:9",  # not started: the overview says so
                prompter_token=TOKENS["prompter"],
                ingest_token=TOKENS["ingest"],
                partners_token=TOKENS["partners"],
                aggregator_token=TOKENS["aggregator"],
            )
            await stack.enter_async_context(serve(create_console(settings), sock))
            self.urls["console"] = url
            self._started.set()
            await self._stop.wait()

    async def add_operator(self, username: str, role: str, password: str = "correct horse battery") -> str:
        conn = await asyncpg.connect(self.database_url)
        try:
            await console_repo.create_operator(conn, username, hash_password(password), role)
        finally:
            await conn.close()
        return password


def csrf_of(html: str) -> str:
    found = re.search(r'name="csrf_token" value="([^"]+)"', html)
    assert found, "no CSRF token in the page"
    return found.group(1)


def secret_of(html: str) -> str:
    found = re.search(r'value="([^"]+)" data-secret', html)
    assert found, "no secret shown"
    return found.group(1)


async def sign_in(base: str, username: str, password: str) -> httpx.AsyncClient:
    client = httpx.AsyncClient(base_url=base, timeout=30)
    page = await client.get("/sign-in")
    answer = await client.post(
        "/sign-in", data={"username": username, "password": password, "csrf_token": csrf_of(page.text)}
    )
    assert answer.status_code == 303, answer.text
    client.cookies.update(answer.cookies)
    return client


async def audit_rows(database_url: str) -> list[asyncpg.Record]:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetch("SELECT * FROM console.audit ORDER BY id")
    finally:
        await conn.close()


async def until(check: Callable, what: str, within: float = 90.0) -> Any:
    deadline = asyncio.get_running_loop().time() + within
    while True:
        result = await check()
        if result:
            return result
        if asyncio.get_running_loop().time() > deadline:
            pytest.fail(f"never happened: {what}")
        await asyncio.sleep(0.5)


@pytest.fixture
async def console(stack, fresh_database_url, random_id):
    with ConsoleStack(fresh_database_url, stack["kafka"], random_id) as running:
        yield running


async def _ingest_status(stack: ConsoleStack, key: str) -> int:
    async with httpx.AsyncClient(timeout=30) as client:
        answer = await client.post(
            f"{stack.urls['ingest']}/v1/signals", json=[], headers={"Authorization": f"Bearer {key}"}
        )
    return answer.status_code


async def test_council_system_keys_are_created_shown_once_rotated_and_revoked(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    page = await client.get("/systems")
    made = await client.post(
        "/systems",
        data={
            "csrf_token": csrf_of(page.text),
            "name": f"Housing {random_id}",
            "council_id": "camden",
            "categories": ["isolation", "fly_tipping"],
            "rate_per_minute": "120",
        },
    )
    assert made.status_code == 200, made.text
    assert made.headers["cache-control"] == "no-store"
    key = secret_of(made.text)
    assert await _ingest_status(console, key) != 401
    listing = await client.get("/systems")
    assert f"Housing {random_id}" in listing.text and key not in listing.text
    system_id = re.search(rf"Housing {random_id}<br><span class=\"meta\">([0-9a-f-]{{36}})", listing.text)[1]
    csrf = csrf_of(listing.text)

    changed = await client.post(
        f"/systems/{system_id}/settings",
        data={"csrf_token": csrf, "categories": ["fly_tipping"], "rate_per_minute": ""},
    )
    assert changed.status_code == 200 and "may now send fly_tipping" in changed.text
    bad_rate = await client.post(
        f"/systems/{system_id}/settings",
        data={"csrf_token": csrf, "categories": ["fly_tipping"], "rate_per_minute": "lots"},
    )
    assert bad_rate.status_code == 422 and "whole number" in bad_rate.text

    rotated = await client.post(f"/systems/{system_id}/rotate", data={"csrf_token": csrf})
    new_key = secret_of(rotated.text)
    assert new_key != key
    assert await _ingest_status(console, key) == 401
    assert await _ingest_status(console, new_key) != 401

    asks = await client.get(f"/systems/{system_id}/revoke", params={"name": "Housing"})
    assert asks.status_code == 200 and "cannot be undone" in asks.text and "Yes, revoke" in asks.text
    assert await _ingest_status(console, new_key) != 401  # asking changes nothing
    revoked = await client.post(f"/systems/{system_id}/revoke", data={"csrf_token": csrf})
    assert revoked.status_code == 200 and "revoked" in revoked.text
    assert await _ingest_status(console, new_key) == 401
    again = await client.post(f"/systems/{system_id}/revoke", data={"csrf_token": csrf})
    assert again.status_code == 422 and "revoked" in again.text

    actions = [(r["action"], r["outcome"]) for r in await audit_rows(console.database_url)]
    for expected in [
        ("sign in", "done"),
        ("create council system", "done"),
        ("set council system categories and rate", "done"),
        ("set council system categories and rate", "failed"),
        ("rotate council system key", "done"),
        ("revoke council system", "done"),
        ("revoke council system", "failed"),
    ]:
        assert expected in actions, expected
    for row in await audit_rows(console.database_url):
        assert key not in row["detail"] and new_key not in row["detail"]
    audit_page = await client.get("/audit")
    assert "rotate council system key" in audit_page.text and f"op-{random_id}" in audit_page.text
    await client.aclose()


async def test_partner_keys_through_the_console(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    csrf = csrf_of((await client.get("/partners")).text)
    made = await client.post("/partners", data={"csrf_token": csrf, "name": f"Food bank {random_id}"})
    key = secret_of(made.text)
    needs = f"{console.urls['partners']}/v1/needs"
    async with httpx.AsyncClient(timeout=30) as api:
        assert (await api.get(needs, headers={"Authorization": f"Bearer {key}"})).status_code == 200
        listing = await client.get("/partners")
        partner_id = re.search(
            rf"Food bank {random_id}<br><span class=\"meta\">([0-9a-f-]{{36}})", listing.text
        )[1]
        new_key = secret_of(
            (await client.post(f"/partners/{partner_id}/rotate", data={"csrf_token": csrf})).text
        )
        assert (await api.get(needs, headers={"Authorization": f"Bearer {key}"})).status_code == 401
        assert (await api.get(needs, headers={"Authorization": f"Bearer {new_key}"})).status_code == 200
        await client.post(f"/partners/{partner_id}/revoke", data={"csrf_token": csrf})
        assert (await api.get(needs, headers={"Authorization": f"Bearer {new_key}"})).status_code in (
            401,
            403,
        )
    empty = await client.post("/partners", data={"csrf_token": csrf, "name": " "})
    assert empty.status_code == 422 and "name" in empty.text
    actions = {(r["action"], r["outcome"]) for r in await audit_rows(console.database_url)}
    assert {("create partner", "done"), ("rotate partner key", "done"), ("revoke partner", "done")} <= actions
    assert ("create partner", "failed") in actions
    await client.aclose()


async def test_a_viewer_sees_no_change_buttons_and_a_forged_post_changes_nothing(console, random_id):
    password = await console.add_operator(f"viewer-{random_id}", "viewer")
    client = await sign_in(console.urls["console"], f"viewer-{random_id}", password)
    for path in ("/systems", "/partners", "/privacy", "/operations", "/operators"):
        page = await client.get(path)
        assert page.status_code == 200, path
        forms = re.findall(r'<form method="post" action="([^"]+)"', page.text)
        assert forms == ["/sign-out"], (path, forms)
    csrf = csrf_of((await client.get("/systems")).text)  # the viewer's own valid token
    asked = await client.get(f"/systems/{uuid.uuid4()}/revoke")
    assert asked.status_code == 403 and "Yes, revoke" not in asked.text
    forged = await client.post(
        "/systems",
        data={"csrf_token": csrf, "name": "forged", "council_id": "camden", "categories": ["isolation"]},
    )
    assert forged.status_code == 403 and "cannot do this" in forged.text
    async with httpx.AsyncClient(timeout=30) as api:
        systems = (
            await api.get(
                f"{console.urls['ingest']}/v1/admin/systems",
                headers={"Authorization": f"Bearer {TOKENS['ingest']}"},
            )
        ).json()
    assert not [s for s in systems if s["name"] == "forged"]
    forged_admin = await client.post(
        "/operators", data={"csrf_token": csrf, "username": "evil", "role": "admin"}
    )
    assert forged_admin.status_code == 403
    refused = [r for r in await audit_rows(console.database_url) if r["outcome"] == "refused"]
    assert {r["action"] for r in refused} >= {"create council system", "create operator"}
    assert all(r["username"] == f"viewer-{random_id}" for r in refused)
    await client.aclose()


async def test_forms_without_or_with_a_wrong_csrf_token_are_refused(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    body = {"name": "no token", "council_id": "camden", "categories": ["isolation"]}
    missing = await client.post("/systems", data=body)
    wrong = await client.post("/systems", data={**body, "csrf_token": "x" * 43})
    for answer in (missing, wrong):
        assert answer.status_code == 403
        assert "text/html" in answer.headers["content-type"] and "Nothing was changed" in answer.text
    # Without a session either: refused, audited under "-".
    async with httpx.AsyncClient(base_url=console.urls["console"], timeout=30) as anonymous:
        assert (await anonymous.post("/systems", data=body)).status_code == 403
        assert (await anonymous.post("/sign-in", data={"username": "x", "password": "y"})).status_code == 403
        assert (await anonymous.get("/systems")).status_code == 303
    rows = [r for r in await audit_rows(console.database_url) if r["outcome"] == "refused"]
    assert len([r for r in rows if r["action"] == "create council system"]) == 3
    page = await client.get("/systems")
    assert "no token" not in page.text
    await client.aclose()


async def test_sessions_cookies_sign_out_expiry_and_failed_sign_ins(console, random_id):
    name = f"op-{random_id}"
    password = await console.add_operator(name, "operator")
    async with httpx.AsyncClient(base_url=console.urls["console"], timeout=30) as client:
        page = await client.get("/sign-in")
        csrf = csrf_of(page.text)
        typo = await client.post(
            "/sign-in", data={"username": "my-secret-pw", "password": "x", "csrf_token": csrf}
        )
        assert typo.status_code == 401
        wrong = await client.post(
            "/sign-in", data={"username": name, "password": "nope", "csrf_token": csrf_of(typo.text)}
        )
        assert wrong.status_code == 401 and "do not match" in wrong.text
        ok = await client.post(
            "/sign-in", data={"username": name, "password": password, "csrf_token": csrf_of(wrong.text)}
        )
        assert ok.status_code == 303
        cookie = ok.headers["set-cookie"]
        assert (
            "HttpOnly" in cookie and "SameSite=strict" in cookie and "Secure" not in cookie
        )  # http base URL
        token = ok.cookies["console_session"]
        conn = await asyncpg.connect(console.database_url)
        try:
            stored = await conn.fetchval("SELECT token_hash FROM console.sessions")
            assert stored != token and len(stored) == 64
            client.cookies.set("console_session", token)
            assert (await client.get("/")).status_code == 200
            await conn.execute("UPDATE console.sessions SET last_seen_at = now() - interval '31 minutes'")
            assert (await client.get("/")).status_code == 303  # idle expiry
            await conn.execute("UPDATE console.sessions SET last_seen_at = now()")
            assert (await client.get("/")).status_code == 200
            await conn.execute("UPDATE console.sessions SET created_at = now() - interval '13 hours'")
            assert (await client.get("/")).status_code == 303  # absolute expiry
        finally:
            await conn.close()
    client = await sign_in(console.urls["console"], name, password)
    home = await client.get("/")
    out = await client.post("/sign-out", data={"csrf_token": csrf_of(home.text)})
    assert out.status_code == 303
    client.cookies.clear()
    client.cookies.set("console_session", token)
    assert (await client.get("/")).status_code == 303
    await client.aclose()
    # Five failures in a row lock the name for 15 minutes, even with the right password.
    async with httpx.AsyncClient(base_url=console.urls["console"], timeout=30) as client:
        for _ in range(5):
            page = await client.get("/sign-in")
            await client.post(
                "/sign-in", data={"username": name, "password": "bad", "csrf_token": csrf_of(page.text)}
            )
        page = await client.get("/sign-in")
        locked = await client.post(
            "/sign-in", data={"username": name, "password": password, "csrf_token": csrf_of(page.text)}
        )
        assert locked.status_code == 429
    actions = [(r["action"], r["outcome"]) for r in await audit_rows(console.database_url)]
    assert (
        ("sign in", "failed") in actions
        and ("sign out", "done") in actions
        and ("sign in", "refused") in actions
    )
    # What was typed as a name is kept only when it names an operator (it could be a password).
    assert not [r for r in await audit_rows(console.database_url) if "my-secret-pw" in str(dict(r))]


async def test_privacy_page_shows_withheld_cells_only_as_counts(console, random_id):
    conn = await asyncpg.connect(console.database_url)
    try:
        units = [f"E00{random_id[:4]}{i:03d}" for i in range(5)]
        await conn.executemany(
            "INSERT INTO aggregator.withheld (period, area_id, category, reason)"
            " VALUES ('2026-Q3', $1, $2, $3)",
            [(u, "isolation", "below_min_subjects") for u in units[:3]]
            + [(u, "isolation", "ward_too_small") for u in units[3:]],
        )
        await conn.execute(
            "INSERT INTO aggregator.releases VALUES"
            " ('2026-09', now(), 12, 30, 400), ('2026-10', now(), 14, 28, 410)"
        )
        pseudonym = "ab" * 32
        await conn.execute("INSERT INTO aggregator.epsilon_ledger VALUES ($1, '2026-10', 0.5)", pseudonym)
    finally:
        await conn.close()
    password = await console.add_operator(f"viewer-{random_id}", "viewer")
    client = await sign_in(console.urls["console"], f"viewer-{random_id}", password)
    page = (await client.get("/privacy")).text
    assert re.search(r"<td>2026-Q3</td><td>isolation</td>\s*<td>below_min_subjects</td><td>3</td>", page)
    assert re.search(r"<td>ward_too_small</td><td>2</td>", page)
    assert "2026-10" in page and "2026-09" in page
    assert "<td>2026</td><td>2</td><td>1.0</td><td>6.0</td><td>5.0</td>" in page
    assert "Versions configured: 1" in page
    for path in (
        "/",
        "/privacy",
        "/operations",
        "/systems",
        "/partners",
        "/moderation",
        "/operators",
        "/audit",
    ):
        html = (await client.get(path)).text
        for unit in units:
            assert unit not in html, (path, unit)
        assert not HEX64.search(html), path
    await client.aclose()


async def test_withdrawal_goes_through_ingest_and_the_reference_is_kept_nowhere(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    csrf = csrf_of((await client.get("/systems")).text)
    made = await client.post(
        "/systems",
        data={"csrf_token": csrf, "name": "Adult care", "council_id": "camden", "categories": ["isolation"]},
    )
    assert made.status_code == 200
    privacy = await client.get("/privacy")
    system_id = re.search(r'<option value="([0-9a-f-]{36})">Adult care', privacy.text)[1]
    reference = f"CASE-{random_id}-REF"
    done = await client.post(
        "/withdrawals", data={"csrf_token": csrf, "system_id": system_id, "subject_ref": reference}
    )
    assert done.status_code == 200, done.text
    assert reference not in done.text
    conn = await asyncpg.connect(console.database_url)
    try:
        accepted = await conn.fetchval(
            "SELECT count(*) FROM ingest.accepted_signals WHERE system_id = $1", uuid.UUID(system_id)
        )
        assert accepted == 1
        for schema, table in await conn.fetch(
            "SELECT table_schema, table_name FROM information_schema.tables"
            " WHERE table_schema IN ('console', 'ingest') AND table_type = 'BASE TABLE'"
        ):
            rows = await conn.fetch(f'SELECT t::text AS row FROM {schema}."{table}" t')
            assert not [r for r in rows if reference in r["row"]], (schema, table)
    finally:
        await conn.close()
    empty = await client.post(
        "/withdrawals", data={"csrf_token": csrf, "system_id": system_id, "subject_ref": ""}
    )
    assert empty.status_code == 422 and "reference" in empty.text
    await client.aclose()


async def test_dead_letters_are_listed_replayed_and_discarded(console, random_id, kafka_settings):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)

    async def letter_ids() -> set[str]:
        page = (await client.get("/operations")).text
        return set(re.findall(r'action="/dead-letters/([0-9]+-[0-9]+)/replay"', page))

    before = await letter_ids()
    producer = AIOKafkaProducer(bootstrap_servers=console.kafka, acks="all")
    await producer.start()
    try:
        for i in range(2):
            await producer.send_and_wait(
                COUNCIL_SIGNALS.name, value=b"{not json " + random_id.encode(), key=f"k{i}".encode()
            )
    finally:
        await producer.stop()
    new = await until(lambda: _more(letter_ids, before, 2), "two dead letters on the operations page")
    first, second = sorted(new)[:2]
    page = (await client.get("/operations")).text
    csrf = csrf_of(page)
    replayed = await client.post(f"/dead-letters/{first}/replay", data={"csrf_token": csrf})
    assert replayed.status_code == 200 and "Replayed" in replayed.text
    # Still bad input: ingest dead-letters the replayed copy again, a new letter appears.
    await until(lambda: _more(letter_ids, before | {first, second}, 1), "the replayed letter to come back")
    discarded = await client.post(f"/dead-letters/{second}/discard", data={"csrf_token": csrf})
    assert discarded.status_code == 200
    remaining = await letter_ids()
    assert first not in remaining and second not in remaining
    twice = await client.post(f"/dead-letters/{second}/discard", data={"csrf_token": csrf})
    assert twice.status_code == 422
    # A letter naming a topic that is not the project's own is never replayed (only discarded).
    forged = DeadLettered(
        service="ingest",
        source_topic="somewhere-else",
        original_b64=base64.b64encode(b"x").decode(),
        reason="forged",
        dead_lettered_at=dt.datetime.now(dt.UTC),
    )
    producer = AIOKafkaProducer(bootstrap_servers=console.kafka, acks="all")
    await producer.start()
    try:
        sent = await producer.send_and_wait(
            DEAD_LETTERS.name, forged.model_dump_json().encode(), key=b"forged"
        )
    finally:
        await producer.stop()
    # Found by where it was written: other letters may arrive meanwhile (the replayed copy may be
    # dead-lettered more than once while ingest's consumers rebalance).
    odd = f"{sent.partition}-{sent.offset}"

    async def forged_listed() -> bool:
        return odd in await letter_ids()

    await until(forged_listed, "the forged letter")
    refused = await client.post(f"/dead-letters/{odd}/replay", data={"csrf_token": csrf})
    assert refused.status_code == 422 and "discard it instead" in refused.text
    actions = [(r["action"], r["outcome"]) for r in await audit_rows(console.database_url)]
    assert ("replay dead letter", "done") in actions and ("discard dead letter", "done") in actions
    await client.aclose()


async def _more(ids: Callable, known: set[str], at_least: int) -> set[str] | None:
    new = (await ids()) - known
    return new if len(new) >= at_least else None


async def test_operations_and_overview_show_volumes_lag_and_health(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    csrf = csrf_of((await client.get("/systems")).text)
    made = await client.post(
        "/systems",
        data={"csrf_token": csrf, "name": "Volumes", "council_id": "camden", "categories": ["fly_tipping"]},
    )
    key = secret_of(made.text)
    now = dt.datetime.now(dt.UTC).isoformat()
    street = await _first_street(console.database_url)
    async with httpx.AsyncClient(timeout=30) as api:
        sent = await api.post(
            f"{console.urls['ingest']}/v1/signals",
            headers={"Authorization": f"Bearer {key}"},
            json=[
                {
                    "event_id": f"e{i}",
                    "category": "fly_tipping",
                    "action": "raised",
                    "subject_ref": f"r{i}",
                    "occurred_at": now,
                    "location": {"street_id": "nope-no-such-street" if i == 3 else street},
                }
                for i in range(4)
            ],
        )
        assert sent.status_code in (200, 202, 207), sent.text
        report = await api.post(
            f"{console.urls['ingest']}/open311/v2/requests.json",
            data={"api_key": key, "service_code": "fly_tipping", "lat": "51.5433", "long": "-0.1310"},
        )
        assert report.status_code in (200, 201), report.text
    page = (await client.get("/operations")).text
    assert '<svg role="img"' in page and "Signals accepted per day" in page
    assert "Open311 reports per day" in page
    assert re.search(r"<td>fly_tipping</td><td>1</td>", page), page
    # three signals and one Open311 report, per system and category
    assert re.search(r"<td>Volumes</td><td>fly_tipping</td><td>4</td>", page), page
    assert "Signals accepted per category" in page
    assert "Rejected signals" in page
    overview = (await client.get("/")).text
    assert re.search(r"<td>ingest</td><td class=\"ok\">ready</td>", overview)
    assert re.search(r"<td>prompter</td><td class=\"ok\">ready</td>", overview)
    assert re.search(r"<td>feeds</td><td class=\"bad\">not reachable", overview)
    await client.aclose()


async def _first_street(database_url: str) -> str:
    conn = await asyncpg.connect(database_url)
    try:
        return await conn.fetchval("SELECT id FROM gazetteer.streets ORDER BY id LIMIT 1")
    finally:
        await conn.close()


async def test_moderation_of_opportunities_platforms_and_organisation_keys(console, random_id):
    password = await console.add_operator(f"op-{random_id}", "operator")
    client = await sign_in(console.urls["console"], f"op-{random_id}", password)
    page = await client.get("/moderation")
    assert page.status_code == 200
    csrf = csrf_of(page.text)
    made = await client.post("/organisations", data={"csrf_token": csrf, "name": f"Lunch club {random_id}"})
    key = secret_of(made.text)
    prompter = console.urls["prompter"]
    street = await _first_street(console.database_url)
    async with httpx.AsyncClient(base_url=prompter, timeout=30) as api:
        auth = {"Authorization": f"Bearer {key}"}
        created = await api.post(
            "/v1/opportunities",
            headers=auth,
            json={
                "title": f"Tea hosts {random_id}",
                "what": "Pour tea.",
                "contact_phone": "020 7974 4444",
                "categories": ["isolation"],
                "area": {"street_ids": [street]},
            },
        )
        assert created.status_code == 201, created.text
        opportunity_id = created.json()["id"]

        async def public_titles() -> list[str]:
            return [o["title"] for o in (await api.get("/v1/opportunities")).json()["opportunities"]]

        listing = await client.get("/moderation")
        assert f"Tea hosts {random_id}" in listing.text
        off = await client.post(f"/opportunities/{opportunity_id}/pause", data={"csrf_token": csrf})
        assert off.status_code == 200 and "switched off" in off.text
        assert f"Tea hosts {random_id}" not in await public_titles()
        on = await client.post(f"/opportunities/{opportunity_id}/resume", data={"csrf_token": csrf})
        assert on.status_code == 200
        assert f"Tea hosts {random_id}" in await public_titles()

        platform = {
            "csrf_token": csrf,
            "name": "Camden litter pickers",
            "description": "Borough litter picks.",
            "url": "https://litter.example.org/",
            "categories": ["litter"],
            "coverage": "borough",
        }
        added = await client.post("/platforms", data={**platform, "id": f"litter-{random_id}"})
        assert added.status_code == 200, added.text
        edited = await client.post(
            f"/platforms/litter-{random_id}/edit", data={**platform, "name": "Camden litter heroes"}
        )
        assert edited.status_code == 200, edited.text
        switched = await client.post(
            f"/platforms/litter-{random_id}/switch", data={"csrf_token": csrf, "enabled": "off"}
        )
        assert switched.status_code == 200, switched.text
        ours = [
            p
            for p in (await api.get("/v1/platforms")).json()["platforms"]
            if p["id"] == f"litter-{random_id}"
        ]
        assert ours and ours[0]["name"] == "Camden litter heroes" and ours[0]["enabled"] is False
        bad_url = await client.post(
            "/platforms", data={**platform, "id": f"bad-{random_id}", "url": "ftp://x"}
        )
        assert bad_url.status_code == 422 and "url" in bad_url.text

        org_id = re.search(
            rf"Lunch club {random_id}<br><span class=\"meta\">([0-9a-f-]{{36}})", listing.text
        )[1]
        new_key = secret_of(
            (await client.post(f"/organisations/{org_id}/rotate", data={"csrf_token": csrf})).text
        )
        assert (await api.get("/v1/organisation/offers", headers=auth)).status_code == 401
        new_auth = {"Authorization": f"Bearer {new_key}"}
        assert (await api.get("/v1/organisation/offers", headers=new_auth)).status_code == 200
        await client.post(f"/organisations/{org_id}/revoke", data={"csrf_token": csrf})
        assert (await api.get("/v1/organisation/offers", headers=new_auth)).status_code == 403
    actions = {(r["action"], r["outcome"]) for r in await audit_rows(console.database_url)}
    for expected in (
        "create organisation",
        "pause opportunity",
        "resume opportunity",
        "add platform",
        "edit platform",
        "switch platform",
        "rotate organisation key",
        "revoke organisation",
    ):
        assert (expected, "done") in actions, expected
    assert ("add platform", "failed") in actions
    await client.aclose()


async def test_every_post_route_is_audited_even_when_refused(console, random_id):
    """Audit completeness: each POST route of the console, forged without a token by a signed-in viewer,
    is refused and leaves exactly one audit row naming the viewer; no route changes anything unaudited."""
    from services.console import moderation, web

    every = [*web.router.routes, *moderation.router.routes]
    routes = sorted({r.path for r in every if "POST" in getattr(r, "methods", set())} - {"/sign-in"})
    assert len(routes) >= 20, routes
    password = await console.add_operator(f"viewer-{random_id}", "viewer")
    client = await sign_in(console.urls["console"], f"viewer-{random_id}", password)
    for path in routes:
        url = re.sub(r"\{[a-z_]+_id\}", str(uuid.uuid4()), path).replace("{username}", "someone")
        before = len(await audit_rows(console.database_url))
        answer = await client.post(url, data={"name": "x"})
        assert answer.status_code == 403, (path, answer.status_code)
        rows = (await audit_rows(console.database_url))[before:]
        assert [(r["username"], r["outcome"]) for r in rows] == [(f"viewer-{random_id}", "refused")], path
    await client.aclose()


async def test_admins_create_and_disable_operators_and_only_admins_may(console, random_id):
    admin_password = await console.add_operator(f"admin-{random_id}", "admin")
    admin = await sign_in(console.urls["console"], f"admin-{random_id}", admin_password)
    csrf = csrf_of((await admin.get("/operators")).text)
    made = await admin.post(
        "/operators", data={"csrf_token": csrf, "username": f"new-{random_id}", "role": "operator"}
    )
    assert made.status_code == 200, made.text
    password = secret_of(made.text)
    assert password not in (await admin.get("/operators")).text
    newcomer = await sign_in(console.urls["console"], f"new-{random_id}", password)
    assert (await newcomer.get("/systems")).status_code == 200
    # An operator may change keys but not operators.
    own = csrf_of((await newcomer.get("/operators")).text)
    refused = await newcomer.post(
        "/operators", data={"csrf_token": own, "username": "sneaky", "role": "admin"}
    )
    assert refused.status_code == 403
    taken = await admin.post(
        "/operators", data={"csrf_token": csrf, "username": f"new-{random_id}", "role": "viewer"}
    )
    assert taken.status_code == 422 and "already" in taken.text
    bad = await admin.post("/operators", data={"csrf_token": csrf, "username": "Bad Name", "role": "viewer"})
    assert bad.status_code == 422 and "User name" in bad.text
    disabled = await admin.post(f"/operators/new-{random_id}/disable", data={"csrf_token": csrf})
    assert disabled.status_code == 200 and "sessions ended" in disabled.text
    assert (await newcomer.get("/systems")).status_code == 303  # the open session ended at once
    page = await newcomer.get("/sign-in")
    again = await newcomer.post(
        "/sign-in",
        data={"username": f"new-{random_id}", "password": password, "csrf_token": csrf_of(page.text)},
    )
    assert again.status_code == 401
    conn = await asyncpg.connect(console.database_url)
    try:
        stored = await conn.fetchval(
            "SELECT password_hash FROM console.operators WHERE username = $1", f"new-{random_id}"
        )
    finally:
        await conn.close()
    assert stored.startswith("scrypt$") and password not in stored
    actions = {(r["username"], r["action"], r["outcome"]) for r in await audit_rows(console.database_url)}
    assert (f"admin-{random_id}", "create operator", "done") in actions
    assert (f"admin-{random_id}", "disable operator", "done") in actions
    assert (f"new-{random_id}", "create operator", "refused") in actions
    for client in (admin, newcomer):
        await client.aclose()
