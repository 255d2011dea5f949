"""Organisations' web pages on a fresh database: sign-in with a key, a session cookie, a CSRF token on
every form, ownership (another's opportunity is a 404 page), errors naming the field, the council's
views, and the public impact pages with their charts."""

from __future__ import annotations

import re
import uuid
from collections.abc import AsyncIterator

import asyncpg
import httpx
import pytest

from services.prompter.main import create_app
from services.prompter.settings import PrompterSettings
from shared.keys import hash_key, new_key

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]
BASE = "http://prompter.test"


@pytest.fixture
async def app(fresh_database_url: str, kafka_bootstrap: str) -> AsyncIterator:
    settings = PrompterSettings(
        database_url=fresh_database_url,
        kafka_bootstrap_servers=kafka_bootstrap,
        group_id=f"prompter-test-{uuid.uuid4().hex}",
        base_url=BASE,
        _env_file=None,
    )
    app = create_app(settings)
    async with app.router.lifespan_context(app):
        yield app


@pytest.fixture
async def db(fresh_database_url: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(fresh_database_url)
    yield conn
    await conn.close()


def _client(app) -> httpx.AsyncClient:
    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url=BASE)


async def _org(db, name: str, kind: str = "vcs", council_admin: bool = False) -> str:
    key = new_key("sno_")
    await db.execute(
        "INSERT INTO prompter.organisations (id, name, kind, council_admin, key_hash)"
        " VALUES ($1, $2, $3, $4, $5)",
        uuid.uuid4(),
        name,
        kind,
        council_admin,
        hash_key(key),
    )
    return key


def _csrf(html: str) -> str:
    return re.search(r'name="csrf_token" value="([^"]+)"', html)[1]


async def _sign_in(client: httpx.AsyncClient, key: str) -> str:
    page = await client.get("/organisations")
    assert page.status_code == 200 and 'type="password"' in page.text
    done = await client.post("/organisations/sign-in", data={"api_key": key, "csrf_token": _csrf(page.text)})
    assert done.status_code == 303 and done.headers["location"] == "/organisations/home"
    cookie = done.headers["set-cookie"]
    assert "sn_org_session=" in cookie and "HttpOnly" in cookie and "SameSite=lax" in cookie
    home = await client.get("/organisations/home")
    assert home.status_code == 200
    return _csrf(home.text)


def _form(street_id: str, csrf: str | None, **overrides) -> dict:
    form = {
        "title": "Saturday litter pick",
        "what": "Pick litter with neighbours; we bring gloves and bags.",
        "url": "https://www.example.org/litter",
        "categories": ["litter", "fly_tipping"],
        "street_ids": street_id,
        "times": "Saturdays 10am",
        "time_needed": "One hour",
        **overrides,
    }
    if csrf is not None:
        form["csrf_token"] = csrf
    return form


async def test_sign_in_csrf_ownership_and_errors(app, db):
    street = await db.fetchval("SELECT id FROM gazetteer.streets ORDER BY id LIMIT 1")
    key_a, key_b = await _org(db, "Friends of Agar Grove"), await _org(db, "Gospel Oak Helpers")
    async with _client(app) as a, _client(app) as b, _client(app) as stranger:
        # Sign-in itself needs the form's token (a double-submit cookie): no login CSRF.
        forged = await stranger.post("/organisations/sign-in", data={"api_key": key_a, "csrf_token": "x"})
        assert forged.status_code == 403 and "<strong>csrf_token</strong>" in forged.text
        page = await stranger.get("/organisations")
        wrong = await stranger.post(
            "/organisations/sign-in", data={"api_key": "sno_nope", "csrf_token": _csrf(page.text)}
        )
        assert wrong.status_code == 401 and "<strong>api_key</strong>" in wrong.text
        assert (await stranger.get("/organisations/home")).headers["location"] == "/organisations"
        assert (await stranger.get("/organisations/opportunities/new")).status_code == 401

        csrf_a = await _sign_in(a, key_a)
        # Every form needs the session's CSRF token: without it, or with another, nothing is stored.
        for bad in (None, "not-the-token"):
            refused = await a.post("/organisations/opportunities", data=_form(street, bad))
            assert refused.status_code == 403 and "csrf_token" in refused.text
        assert await db.fetchval("SELECT count(*) FROM prompter.opportunities") == 0

        invalid = await a.post(
            "/organisations/opportunities", data=_form(street, csrf_a, url="http://10.1.2.3/", categories=[])
        )
        assert invalid.status_code == 422 and 'role="alert"' in invalid.text
        assert "<strong>url</strong>" in invalid.text and "<strong>categories</strong>" in invalid.text
        assert 'value="Saturday litter pick"' in invalid.text  # what was typed is kept
        assert await db.fetchval("SELECT count(*) FROM prompter.opportunities") == 0

        created = await a.post("/organisations/opportunities", data=_form(street, csrf_a))
        assert created.status_code == 303
        opp_id = await db.fetchval("SELECT id FROM prompter.opportunities")
        home = (await a.get("/organisations/home")).text
        assert "Saturday litter pick" in home and f"/organisations/opportunities/{opp_id}/edit" in home

        csrf_b = await _sign_in(b, key_b)
        assert "Saturday litter pick" not in (await b.get("/organisations/home")).text
        # Another organisation: every page and form about it answers 404, and nothing changes.
        assert (await b.get(f"/organisations/opportunities/{opp_id}/edit")).status_code == 404
        assert (
            await b.post(f"/organisations/opportunities/{opp_id}", data=_form(street, csrf_b, title="Mine"))
        ).status_code == 404
        for verb in ("pause", "retire"):
            answer = await b.post(
                f"/organisations/opportunities/{opp_id}/{verb}", data={"csrf_token": csrf_b}
            )
            assert answer.status_code == 404 and "No such opportunity" in answer.text
        # A's token does not work in B's session either.
        assert (
            await b.post(f"/organisations/opportunities/{opp_id}/pause", data={"csrf_token": csrf_a})
        ).status_code == 403
        assert await db.fetchval("SELECT (title, status) FROM prompter.opportunities") == (
            "Saturday litter pick",
            "active",
        )

        form_page = (await a.get("/organisations/opportunities/new")).text
        ward = await db.fetchval(
            "SELECT ward_code FROM gazetteer.streets WHERE ward_code IS NOT NULL LIMIT 1"
        )
        assert f'name="ward_codes" value="{ward}"' in form_page  # wards by name, as ticked boxes
        by_ward = await a.post(
            "/organisations/opportunities",
            data={**_form("", csrf_a, title="Ward-wide walk"), "street_ids": "", "ward_codes": [ward]},
        )
        assert by_ward.status_code == 303
        assert await db.fetchval(
            "SELECT ward_codes FROM prompter.opportunities WHERE title = 'Ward-wide walk'"
        ) == [ward]
        edit = await a.get(f"/organisations/opportunities/{opp_id}/edit")
        assert 'value="Saturday litter pick"' in edit.text and 'value="litter" checked' in edit.text
        changed = await a.post(
            f"/organisations/opportunities/{opp_id}", data=_form(street, csrf_a, title="Sunday litter pick")
        )
        assert changed.status_code == 303
        assert (
            await a.post(f"/organisations/opportunities/{opp_id}/pause", data={"csrf_token": csrf_a})
        ).status_code == 303
        history = (await a.get(f"/organisations/opportunities/{opp_id}/changes")).text
        assert history.index("paused") < history.index("updated") < history.index("created")
        assert "Saturday litter pick → Sunday litter pick" in history.replace("&#34;", '"')

        # Only the council's admin team sees every change and runs the platforms directory.
        assert (await a.get("/organisations/changes")).status_code == 403
        assert (
            await a.post("/organisations/platforms/goodgym", data={"enabled": "no", "csrf_token": csrf_a})
        ).status_code == 403

        assert (await a.post("/organisations/sign-out", data={"csrf_token": csrf_a})).status_code == 303
        assert (await a.get("/organisations/home")).headers["location"] == "/organisations"


async def test_council_admin_pages_and_public_impact_pages(app, db):
    key = await _org(db, "Camden community team", "council", True)
    ward = await db.fetchval("SELECT ward_code FROM gazetteer.streets WHERE ward_code IS NOT NULL LIMIT 1")
    async with _client(app) as council, _client(app) as public:
        csrf = await _sign_in(council, key)
        assert "Every change" in (await council.get("/organisations/home")).text
        assert (await council.get("/organisations/changes")).status_code == 200
        platforms = await council.get("/organisations/platforms")
        assert platforms.status_code == 200 and "GoodGym" in platforms.text
        assert (
            await council.post("/organisations/platforms/goodgym", data={"enabled": "no"})
        ).status_code == 403
        off = await council.post(
            "/organisations/platforms/goodgym", data={"enabled": "no", "csrf_token": csrf}
        )
        assert off.status_code == 303
        assert await db.fetchval("SELECT enabled FROM prompter.platforms WHERE id = 'goodgym'") is False
        last = await council.post(
            "/organisations/platforms/fixmystreet", data={"enabled": "no", "csrf_token": csrf}
        )
        assert last.status_code == 409 and "abandoned_vehicle" in last.text
        bad = await council.post(
            "/organisations/platforms",
            data={"id": "Bad Id", "name": "", "url": "http://localhost/", "csrf_token": csrf},
        )
        assert (
            bad.status_code == 422
            and "<strong>id</strong>" in bad.text
            and "<strong>url</strong>" in bad.text
        )

        borough = await public.get("/impact")
        assert borough.status_code == 200 and borough.text.count('role="img"') == 2
        assert (
            f'href="/impact/wards/{ward}"' in borough.text
            and "<desc" in borough.text
            and "<table>" in borough.text
        )
        ward_page = await public.get(f"/impact/wards/{ward}")
        assert ward_page.status_code == 200 and "What neighbours did in" in ward_page.text
        missing = await public.get("/impact/wards/E99999999")
        assert missing.status_code == 404 and missing.headers["content-type"].startswith("text/html")
        assert "<strong>ward_code</strong>" in missing.text
