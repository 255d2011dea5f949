"""The bounce webhook's `permanent` is strict: 0/1 or "yes" is a 422 naming the field, not a guess (the
OpenAPI types it boolean; pydantic's lax mode used to take them, a fuzzing finding of issue 11)."""

from __future__ import annotations

import httpx
import pytest
from fastapi import FastAPI

from services.notifier.webhooks import Bounces, router
from shared.http import PROBLEM_JSON, install_problem_handlers


@pytest.fixture
async def client():
    app = FastAPI()
    install_problem_handlers(app)
    app.include_router(router)
    async with httpx.AsyncClient(transport=httpx.ASGITransport(app=app), base_url="http://t") as c:
        yield c


@pytest.mark.parametrize("value", [0, 1, "true", "false", "yes", "no", 1.0, None])
async def test_permanent_takes_only_true_or_false(client, value):
    event = {"type": "bounce", "email": "someone@example.org", "permanent": value}
    response = await client.post("/v1/bounces", json={"events": [event]})
    assert response.status_code == 422, response.text
    assert response.headers["content-type"].startswith(PROBLEM_JSON)
    assert [e["field"] for e in response.json()["errors"]] == ["events.0.permanent"]


def test_true_false_and_absent_still_validate():
    events = [
        {"type": "bounce", "email": "a@example.org", "permanent": False},
        {"type": "complaint", "email": "b@example.org", "permanent": True},
        {"type": "bounce", "email": "c@example.org"},
    ]
    assert [e.permanent for e in Bounces.model_validate({"events": events}).events] == [False, True, True]
