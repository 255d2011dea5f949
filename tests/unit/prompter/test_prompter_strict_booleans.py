"""Request booleans are strict: 0/1 or "yes" for `enabled` or `dbs_needed` is a 422 naming the field
(the OpenAPI types them boolean; pydantic's lax mode used to take them, a fuzzing finding of issue 11)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI
from starlette.datastructures import FormData

from services.prompter.api import router
from services.prompter.auth import council_reader, current_organisation
from services.prompter.forms import opportunity_from_form
from services.prompter.schemas import OpportunityIn, PlatformSwitch
from shared.http import PROBLEM_JSON, install_problem_handlers
from shared.service import running_context

NOT_BOOLEANS = [0, 1, "true", "yes", "on", 1.0, None]
OPPORTUNITY = {
    "title": "Lunch club",
    "contact_email": "club@example.org",
    "categories": ["fly_tipping"],
    "area": {"ward_codes": ["E05013652"]},
}


@pytest.fixture
async def client():
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    # Authentication is tested elsewhere; here every caller gets through to the body's validation.
    app.dependency_overrides[council_reader] = lambda: object()
    app.dependency_overrides[current_organisation] = lambda: object()
    app.dependency_overrides[running_context] = lambda: object()  # no running service; never used
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


def _named(response: httpx.Response, field: str) -> bool:
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    return [e["field"] for e in response.json()["errors"]] == [field]


@pytest.mark.parametrize("value", NOT_BOOLEANS)
async def test_switching_a_platform_takes_only_true_or_false(client, value):
    response = await client.put("/v1/platforms/fixmystreet", json={"enabled": value})
    assert _named(response, "enabled")


@pytest.mark.parametrize("value", NOT_BOOLEANS)
async def test_an_opportunity_takes_only_true_or_false_for_dbs_needed(client, value):
    for method, path in (("POST", "/v1/opportunities"), ("PUT", "/v1/opportunities/" + "0" * 32)):
        response = await client.request(method, path, json={**OPPORTUNITY, "dbs_needed": value})
        assert _named(response, "dbs_needed")


def test_true_and_false_still_validate():
    assert PlatformSwitch.model_validate({"enabled": False}).enabled is False
    assert OpportunityIn.model_validate({**OPPORTUNITY, "dbs_needed": True}).dbs_needed is True
    assert (
        OpportunityIn.model_validate_json(
            '{"title": "t", "categories": ["fly_tipping"], '
            '"contact_phone": "020 7974 4444", "area": {"point": {"lat": 51.5, "lon": -0.1}, "radius_m": 5}, '
            '"dbs_needed": false}'
        ).dbs_needed
        is False
    )


def test_the_organisation_form_still_posts_its_tick_box():
    # HTML form fields are strings: the form turns the tick box into a boolean before validating.
    form = FormData(
        [
            ("title", "Lunch club"),
            ("contact_email", "club@example.org"),
            ("categories", "fly_tipping"),
            ("dbs_needed", "yes"),
            ("lat", "51.5"),
            ("lon", "-0.1"),
            ("radius_m", "200"),
        ]
    )
    assert opportunity_from_form(form).dbs_needed is True
    assert (
        opportunity_from_form(FormData([*form.multi_items()[:3], ("ward_codes", "E05013652")])).dbs_needed
        is False
    )
