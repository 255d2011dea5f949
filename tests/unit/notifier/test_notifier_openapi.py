"""The notifier's OpenAPI documents every status its pages and webhook answer: /subscribe's 422 page for
a place not given (a fuzzing finding of issue 11), sign-up refusals, used or ended links, the webhook's
401."""

from __future__ import annotations

import pytest

from services.docs import openapi
from services.notifier.alerts import resolve_place
from services.notifier.settings import NotifierSettings
from services.notifier.web import refusal_status
from shared.gazetteer.selection import UnknownArea
from shared.refusals import Refusal


class NoPlaces:
    """A gazetteer that knows no street, ward or point: every place given is one it cannot find."""

    def __getattr__(self, name: str):
        def unknown(*_: object) -> None:
            raise UnknownArea("place", f"no such place ({name})")

        return unknown


@pytest.fixture(scope="module")
def paths() -> dict:
    return openapi("notifier")["paths"]


def _responses(paths: dict, method: str, path: str) -> dict:
    return paths[path][method]["responses"]


@pytest.mark.parametrize(
    "form",
    [{}, {"kind": "street"}, {"street_id": "s-1"}, {"ward_code": "W9"}, {"kind": "nowhere"}, {"lat": "51.5"}],
)
def test_a_place_not_given_is_a_documented_422_page(paths, form):
    with pytest.raises(Refusal) as refused:
        resolve_place(NoPlaces(), NotifierSettings.model_construct(), form)  # type: ignore[arg-type]
    status = str(refusal_status(refused.value))
    assert status == "422"
    for method in ("get", "post"):
        # A refusal answers as a plain-language page (install_alert_errors), never as JSON.
        assert "text/html" in _responses(paths, method, "/subscribe")[status]["content"]


def test_sign_up_refusals_are_documented(paths):
    assert {"200", "409", "422", "429", "503"} <= set(_responses(paths, "post", "/subscribe"))


@pytest.mark.parametrize(
    ("method", "path"),
    [
        ("get", "/confirm/{token}"),
        ("post", "/confirm/{token}"),
        ("get", "/manage/{token}"),
        ("post", "/manage/{token}"),
    ],
)
def test_used_expired_or_ended_links_are_documented(paths, method, path):
    assert {"404", "410"} <= set(_responses(paths, method, path))


@pytest.mark.parametrize("method", ["get", "post"])
def test_managing_unconfirmed_alerts_is_a_documented_409(paths, method):
    assert "409" in _responses(paths, method, "/manage/{token}")


def test_the_bounce_webhook_documents_its_token_and_switch(paths):
    responses = _responses(paths, "post", "/v1/bounces")
    assert {"200", "401", "404", "422"} <= set(responses)
    assert "application/problem+json" in responses["401"]["content"]
