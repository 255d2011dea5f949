"""'I can help' counted once per resident: the helper cookie, the response id; CAP names real ways to help."""

from __future__ import annotations

import datetime as dt
import uuid

from starlette.requests import Request

from services.feeds import actions
from services.feeds.cap import _instruction
from services.feeds.help import HELPER_COOKIE, client_key, helper_token
from shared.contracts import OpportunityLink, PromptPublished


def _request(cookie: str | None = None, client=("203.0.113.9", 5000)) -> Request:
    headers = [(b"cookie", f"{HELPER_COOKIE}={cookie}".encode())] if cookie is not None else []
    return Request({"type": "http", "method": "POST", "path": "/", "headers": headers, "client": client})


def test_a_new_browser_gets_a_random_helper_token_and_a_known_one_keeps_it():
    token, new = helper_token(_request())
    assert new and len(token) >= 16
    assert helper_token(_request(token)) == (token, False)
    other, new = helper_token(_request("x"))  # too short or malformed: replaced, never trusted
    assert new and other != "x"
    assert helper_token(_request("a<script>" * 4))[1] is True
    assert client_key(_request()) == "203.0.113.9" and client_key(_request(client=None)) == ""


def test_the_response_id_is_the_same_for_one_resident_and_prompt_only():
    def response_id(helper: str, prompt_id: str) -> uuid.UUID:
        return uuid.uuid5(actions._RESPONSES, f"{helper}\n{prompt_id}")

    assert response_id("h1", "a:litter") == response_id("h1", "a:litter")
    assert (
        len({response_id("h1", "a:litter"), response_id("h2", "a:litter"), response_id("h1", "b:litter")})
        == 3
    )
    assert response_id("h1", "a:litter").version == 5


def _prompt(*links: OpportunityLink) -> PromptPublished:
    return PromptPublished(
        prompt_id="way/1:litter",
        revision=1,
        area_id="way/1",
        area_kind="street",
        area_name="Agar Grove",
        street_ids=("way/1",),
        category="litter",
        sensitivity="place",
        title="3 reports of litter on Agar Grove this month",
        body="A litter pick with neighbours takes about an hour.",
        opportunities=links,
        published_at=dt.datetime(2026, 11, 20, 9, tzinfo=dt.UTC),
    )


def test_cap_instruction_names_the_real_ways_to_help_local_first():
    local = OpportunityLink(
        opportunity_id="o1",
        title="Saturday litter pick",
        organisation="Agar Grove Friends",
        when="Saturdays 10am",
        contact_email="pick@example.org",
        contact_phone="020 7946 0123",
    )
    platform = OpportunityLink(
        opportunity_id="platform:fixmystreet",
        title="FixMyStreet",
        organisation="FixMyStreet",
        url="https://www.fixmystreet.com",
        kind="platform",
    )
    assert _instruction(_prompt(local, platform)).splitlines() == [
        "Ways to help, local groups first:",
        "Saturday litter pick (Agar Grove Friends), Saturdays 10am: pick@example.org or 020 7946 0123",
        "FixMyStreet: https://www.fixmystreet.com",
    ]
    assert _instruction(_prompt(platform)).splitlines()[0] == "Ways to help:"
