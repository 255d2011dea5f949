"""Errors: an accessible HTML page for browsers on residents' pages, problem+json for everyone else."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI, Form

from services.feeds.errors import install_html_errors, is_page, prefers_html
from services.feeds.refusals import GazetteerNotLoaded, SubscriptionEnded, TooManyResponses
from shared.http import Problem, install_problem_handlers
from shared.refusals import Invalid, NotFound

BROWSER = "text/html,application/xhtml+xml,application/xml;q=0.9,image/avif,*/*;q=0.8"


@pytest.mark.parametrize(
    ("accept", "html"),
    [
        (BROWSER, True),
        ("text/html", True),
        ("text/*;q=0.5, application/json;q=0.4", True),
        ("application/json, text/html;q=0.9", False),
        ("application/problem+json", False),
        ("*/*", False),  # httpx, curl and most HTTP libraries
        ("", False),
        ("text/html;q=0", False),
        ("TEXT/HTML;Q=0.8, */*;q=0.1", True),
        ("text/html;q=oops", False),
    ],
)
def test_accept_negotiation(accept, html):
    assert prefers_html(accept) is html


@pytest.mark.parametrize(
    ("path", "page"),
    [
        ("/streets/s-1", True),
        ("/wards/E05013652", True),
        ("/prompts/a:b", True),
        ("/s/tok", True),
        ("/n/abc", True),
        ("/subscriptions", True),
        ("/nowhere", True),
        ("/v1/subscriptions", False),
        ("/cap/x.xml", False),
        ("/streets/s-1.atom", False),
        ("/s/tok.rss", False),
        ("/wards/W1.json", False),
        ("/s/tok/events", False),
        ("/metrics", False),
    ],
)
def test_which_paths_are_pages(path, page):
    assert is_page(path) is page


@pytest.fixture
def client() -> httpx.AsyncClient:
    app = FastAPI()
    install_problem_handlers(app)
    install_html_errors(app, "https://feeds.example.org")

    @app.get("/streets/{street_id}")
    async def street(street_id: str):
        raise Problem(404, "No such street", f"no street with id {street_id!r}")

    @app.get("/streets/{street_id}.atom")
    async def street_atom(street_id: str):
        raise Problem(404, "No such street")

    @app.get("/s/{token}")
    async def ended(token: str):
        raise Problem(410, "This subscription was ended", "Subscribe again to follow these streets.")

    @app.post("/subscriptions")
    async def subscribe(radius_m: float = Form(..., gt=0)):
        return {}

    @app.post("/prompts/{prompt_id}/help")
    async def help_(prompt_id: str):
        raise Problem(
            429,
            "Too many responses",
            "Thank you! Please try again a little later.",
            headers={"Retry-After": "30"},
        )

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


async def test_browsers_get_an_accessible_page_with_the_same_status_and_headers(client):
    async with client:
        for method, path, status, text in [
            ("GET", "/streets/s-<b>", 404, "no street with id &#39;s-&lt;b&gt;&#39;"),
            ("GET", "/s/tok", 410, "Subscribe again"),
            ("POST", "/prompts/p/help", 429, "Please wait a little"),
            ("GET", "/no/such/page", 404, "Not Found"),
        ]:
            r = await client.request(method, path, headers={"Accept": BROWSER})
            assert r.status_code == status and r.headers["content-type"].startswith("text/html"), path
            assert text in r.text and 'lang="en-GB"' in r.text and 'href="#main"' in r.text
            assert '<a href="https://feeds.example.org/">Find a street</a>' in r.text
            assert r.headers["cache-control"] == "no-store" and r.headers["referrer-policy"] == "no-referrer"
        assert r.headers["content-length"] == str(len(r.content))
        limited = await client.post("/prompts/p/help", headers={"Accept": BROWSER})
        assert limited.headers["retry-after"] == "30"
        invalid = await client.post("/subscriptions", data={"radius_m": "-1"}, headers={"Accept": BROWSER})
        assert invalid.status_code == 422 and "<title>Error: " in invalid.text
        # Residents read plain words, not field names.
        assert 'role="alert"' in invalid.text and "radius_m" not in invalid.text
        assert "<li>Distance: Input should be greater than 0</li>" in invalid.text


async def test_feeds_api_and_non_browser_clients_keep_problem_json(client):
    async with client:
        for path, accept in [
            ("/streets/s-1.atom", BROWSER),
            ("/streets/s-1", "*/*"),
            ("/streets/s-1", "application/json"),
            ("/s/tok", "application/problem+json"),
        ]:
            r = await client.get(path, headers={"Accept": accept})
            assert r.headers["content-type"] == "application/problem+json", (path, accept)
            assert r.json()["status"] in (404, 410)
        invalid = await client.post("/subscriptions", data={"radius_m": "-1"})
        assert invalid.status_code == 422 and invalid.json()["errors"][0]["field"] == "radius_m"


@pytest.fixture
def refusing() -> httpx.AsyncClient:
    """The feeds' use cases refuse without HTTP types; the edge answers each with its status."""
    app = FastAPI()
    install_problem_handlers(app)
    install_html_errors(app, "https://feeds.example.org")
    refusals: dict[str, Exception] = {
        "missing": NotFound("No such subscription"),
        "ended": SubscriptionEnded("This subscription was ended", "Subscribe again to follow these streets."),
        "limited": TooManyResponses(30),
        "unloaded": GazetteerNotLoaded(),
        "invalid": Invalid(
            "The subscription is not valid", "give the ward's code", errors=[{"field": "ward_code"}]
        ),
    }

    @app.get("/s/{name}")
    async def refuse(name: str) -> None:
        raise refusals[name]

    return httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://test")


@pytest.mark.parametrize(
    ("name", "status", "title", "retry_after"),
    [
        ("missing", 404, "No such subscription", None),
        ("ended", 410, "This subscription was ended", None),
        ("limited", 429, "Too many responses", "30"),
        ("unloaded", 503, "The street gazetteer is not loaded yet", "30"),
        ("invalid", 422, "The subscription is not valid", None),
    ],
)
async def test_feeds_refusals_are_answered_at_the_edge(refusing, name, status, title, retry_after):
    async with refusing:
        api = await refusing.get(f"/s/{name}", headers={"Accept": "application/json"})
        page = await refusing.get(f"/s/{name}", headers={"Accept": BROWSER})
    assert api.status_code == status and api.headers["content-type"] == "application/problem+json"
    assert api.json()["title"] == title and api.headers.get("retry-after") == retry_after
    assert page.status_code == status and page.headers["content-type"].startswith("text/html")
    assert title in page.text and page.headers.get("retry-after") == retry_after
    assert page.headers["cache-control"] == "no-store" and page.headers["referrer-policy"] == "no-referrer"
