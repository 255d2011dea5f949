"""A use case's refusals reach an API client as problem+json with the status of their kind, and a
person as the service's error page."""

from __future__ import annotations

from fastapi import FastAPI, Request, Response
from fastapi.responses import HTMLResponse
from fastapi.testclient import TestClient

from shared.http import PROBLEM_JSON, install_problem_handlers
from shared.refusals import Conflict, Invalid, NotFound, Refusal
from shared.web import install_error_pages, problem_of


def _app(pages: bool) -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    if pages:

        def page(request: Request, response: Response) -> Response | None:
            if "text/html" not in request.headers.get("accept", ""):
                return None
            problem = problem_of(response)
            return HTMLResponse(f"<h1>{problem['title']}</h1>", status_code=response.status_code)

        install_error_pages(app, page)

    kinds: dict[str, type[Refusal]] = {"missing": NotFound, "busy": Conflict, "wrong": Invalid}

    @app.get("/{kind}")
    async def refuse(kind: str) -> None:
        raise kinds[kind]("It did not work", "Because.", errors=[{"field": "x", "message": kind}])

    return app


def test_each_kind_of_refusal_is_its_status_as_problem_json() -> None:
    client = TestClient(_app(pages=False))
    for kind, status in (("missing", 404), ("busy", 409), ("wrong", 422)):
        answer = client.get(f"/{kind}")
        assert answer.status_code == status and answer.headers["content-type"] == PROBLEM_JSON
        assert answer.json() == {
            "type": "about:blank",
            "title": "It did not work",
            "status": status,
            "detail": "Because.",
            "errors": [{"field": "x", "message": kind}],
        }


def test_a_person_gets_the_error_page_and_an_api_client_problem_json() -> None:
    client = TestClient(_app(pages=True))
    page = client.get("/busy", headers={"Accept": "text/html"})
    assert page.status_code == 409 and page.text == "<h1>It did not work</h1>"
    assert client.get("/busy").headers["content-type"] == PROBLEM_JSON
