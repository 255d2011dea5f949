"""HTTP plumbing every service shares: the edge guard, problem details, OpenAPI errors, health, metrics."""

from __future__ import annotations

import ipaddress
import json
import logging
import re
import secrets
from collections.abc import Awaitable, Callable, Iterable
from typing import Any
from urllib.parse import parse_qsl

import asyncpg
from fastapi import FastAPI, Request, Security
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, PlainTextResponse
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from prometheus_client import CONTENT_TYPE_LATEST, REGISTRY, generate_latest
from pydantic import SecretStr
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from shared.refusals import Conflict, Invalid, NotFound, Refusal

__all__ = [
    "DEFAULT_MAX_BODY_BYTES",
    "NO_CONTROL_PATTERN",
    "PROBLEM_JSON",
    "EdgeMiddleware",
    "Problem",
    "add_operational_routes",
    "body_limit",
    "document_problems",
    "install_problem_handlers",
    "operator_token",
    "problem_response",
    "refusal_problem",
]

log = logging.getLogger(__name__)
PROBLEM_JSON = "application/problem+json"
ReadyCheck = Callable[[], Awaitable[bool]]


class Problem(Exception):
    """Raise to answer with `application/problem+json` (RFC 9457)."""

    def __init__(
        self,
        status: int,
        title: str,
        detail: str = "",
        *,
        type_: str = "about:blank",
        errors: Iterable[dict[str, Any]] = (),
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail or title)
        self.status, self.title, self.detail, self.type = status, title, detail, type_
        self.errors = list(errors)
        self.headers = headers or {}


def problem_response(p: Problem) -> JSONResponse:
    body: dict[str, Any] = {"type": p.type, "title": p.title, "status": p.status}
    if p.detail:
        body["detail"] = p.detail
    if p.errors:
        body["errors"] = p.errors
    return JSONResponse(body, status_code=p.status, media_type=PROBLEM_JSON, headers=p.headers)


def _field(loc: Iterable[Any]) -> str:
    parts = [str(x) for x in loc]
    if parts and parts[0] in ("body", "query", "path", "header", "form"):
        parts = parts[1:] or parts
    return ".".join(parts)


_REFUSAL_STATUS: dict[type[Refusal], int] = {NotFound: 404, Conflict: 409, Invalid: 422}


def refusal_problem(exc: Refusal) -> Problem:
    """A use case's refusal as the HTTP problem it answers (404, 409 or 422)."""
    status = next(code for kind, code in _REFUSAL_STATUS.items() if isinstance(exc, kind))
    return Problem(status, exc.title, exc.detail, errors=exc.errors)


def install_problem_handlers(app: FastAPI) -> None:
    """Every error the app returns becomes problem+json naming the bad fields."""

    @app.exception_handler(Problem)
    async def _problem(_: Request, exc: Problem) -> JSONResponse:
        return problem_response(exc)

    @app.exception_handler(Refusal)
    async def _refused(_: Request, exc: Refusal) -> JSONResponse:
        return problem_response(refusal_problem(exc))

    @app.exception_handler(RequestValidationError)
    async def _invalid(_: Request, exc: RequestValidationError) -> JSONResponse:
        errors = [{"field": _field(e["loc"]), "message": e["msg"], "type": e["type"]} for e in exc.errors()]
        return problem_response(
            Problem(
                422,
                "Request body or parameters are invalid",
                "; ".join(f"{e['field']}: {e['message']}" for e in errors),
                errors=errors,
            )
        )

    @app.exception_handler(StarletteHTTPException)
    async def _http(request: Request, exc: StarletteHTTPException) -> JSONResponse:
        if isinstance(exc, _Refused):
            return problem_response(exc.problem)
        headers = dict(exc.headers or {})
        if exc.status_code == 405:
            headers["Allow"] = _allowed_methods(request.scope) or headers.get("Allow", "")
        return problem_response(Problem(exc.status_code, str(exc.detail), headers=headers))

    @app.exception_handler(asyncpg.PostgresConnectionError)
    @app.exception_handler(asyncpg.InterfaceError)
    @app.exception_handler(asyncpg.TooManyConnectionsError)
    @app.exception_handler(asyncpg.CannotConnectNowError)
    @app.exception_handler(TimeoutError)
    async def _unavailable(_: Request, exc: Exception) -> JSONResponse:
        # The database is away or saturated: a retryable 503, never a 500.
        log.warning("dependency unavailable", extra={"error": type(exc).__name__})
        return problem_response(
            Problem(503, "Service temporarily unavailable", "try again shortly", headers={"Retry-After": "5"})
        )


def operator_token(setting: str, *, realm: str) -> Callable[..., Awaitable[None]]:
    """A dependency admitting `Authorization: Bearer <token>` equal to `settings.<setting>`.

    Everyone is refused while the setting is unset. Declared through FastAPI's security classes, so
    the OpenAPI document names the scheme (`operatorToken`) and each guarded operation's 401/403.
    """
    scheme = HTTPBearer(
        auto_error=False, scheme_name="operatorToken", description="An operator token (service setting)."
    )

    async def check(
        request: Request, credentials: HTTPAuthorizationCredentials | None = Security(scheme)
    ) -> None:
        token = getattr(request.app.state.runtime.settings, setting, None)
        given = credentials.credentials if credentials else ""
        if token is None or not secrets.compare_digest(given.encode(), token.get_secret_value().encode()):
            raise Problem(
                401,
                "Operator token required",
                "send Authorization: Bearer <operator token>",
                headers={"WWW-Authenticate": f'Bearer realm="{realm}"'},
            )

    return check


def _allowed_methods(scope: Scope) -> str:
    """Every method the documented path answers (Starlette names only the first matching route's)."""
    found = _operations(scope)
    return ", ".join(sorted(m.upper() for m in found[0])) if found else ""


def add_operational_routes(
    app: FastAPI, ready_checks: dict[str, ReadyCheck], *, metrics_token: SecretStr | None = None
) -> None:
    """`/healthz` (the process is alive), `/readyz` (its broker and database are reachable), `/metrics`.

    `/metrics` shows live activity (e.g. signal arrivals), so it answers only a scraper that sends
    `Authorization: Bearer <METRICS_TOKEN>`, or, while no token is set, only loopback clients.
    """

    @app.get("/healthz", include_in_schema=False)
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", include_in_schema=False)
    async def readyz() -> JSONResponse:
        results: dict[str, bool] = {}
        for name, check in ready_checks.items():
            try:
                results[name] = await check()
            except Exception:  # a failing dependency means not ready, never a 500
                log.warning("readiness check failed", extra={"check": name}, exc_info=True)
                results[name] = False
        ok = all(results.values())
        return JSONResponse(
            {"status": "ready" if ok else "not ready", "checks": results}, status_code=200 if ok else 503
        )

    @app.get("/metrics", include_in_schema=False)
    async def metrics(request: Request) -> PlainTextResponse:
        if not _may_read_metrics(request, metrics_token):
            raise Problem(
                401,
                "Metrics token required",
                "send Authorization: Bearer <METRICS_TOKEN>",
                headers={"WWW-Authenticate": 'Bearer realm="metrics"'},
            )
        return PlainTextResponse(generate_latest(REGISTRY), media_type=CONTENT_TYPE_LATEST)


def _may_read_metrics(request: Request, token: SecretStr | None) -> bool:
    if token is None:
        host = request.client.host if request.client else ""
        try:
            return ipaddress.ip_address(host).is_loopback
        except ValueError:
            return False
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    return scheme.lower() == "bearer" and secrets.compare_digest(
        given.encode(), token.get_secret_value().encode()
    )


# --- The edge: what every request must satisfy before any route sees it -------------------------

DEFAULT_MAX_BODY_BYTES = 4 * 1024 * 1024  # a full ingest batch (5,000 signals) fits; override per route
BODY_LIMIT_KEY = "x-max-body-bytes"
# C0 controls and DEL: never meaningful in a path or query, and PostgreSQL refuses NUL in text.
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
# In form and JSON text, line breaks and tabs are ordinary text; NUL and the other controls are not.
_CONTROL_IN_TEXT = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")
NO_CONTROL_PATTERN = r"^[^\x00-\x1f\x7f]*$"
NO_CONTROL_IN_TEXT_PATTERN = r"^[^\x00-\x08\x0b\x0c\x0e-\x1f\x7f]*$"
NO_NUL_PATTERN = r"^[^\x00]*$"  # JSON text may hold any character PostgreSQL can store


def body_limit(max_bytes: int) -> dict[str, Any]:
    """`openapi_extra` for a route whose body may be larger (or must be smaller) than the default."""
    return {BODY_LIMIT_KEY: max_bytes}


class _Refused(StarletteHTTPException):
    """A refusal at the edge; an HTTPException so that routes reading the body let it through."""

    def __init__(self, problem: Problem):
        super().__init__(problem.status, problem.title)
        self.problem = problem


def _bad_text(where: str, name: str) -> Problem:
    return Problem(
        400,
        "Control characters are not accepted",
        f"{where} parameter '{name}' contains a control character",
        errors=[{"field": name, "message": "control characters (such as NUL) are not accepted"}],
    )


def _json_field_with_nul(value: Any, path: str = "") -> str | None:
    if isinstance(value, str):
        return path or "(body)" if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            where = f"{path}.{key}" if path else str(key)
            if "\x00" in key:
                return where
            if found := _json_field_with_nul(item, where):
                return found
    if isinstance(value, list):
        for i, item in enumerate(value):
            if found := _json_field_with_nul(item, f"{path}[{i}]"):
                return found
    return None


class EdgeMiddleware:
    """Refuse, before routing, what no route can use: control characters and oversized bodies.

    Path and query parameters holding a control character answer 400 naming the parameter (a NUL would
    otherwise reach PostgreSQL, which refuses it: a 500). JSON and urlencoded-form bodies are checked for
    NUL and other non-whitespace controls the same way. A body larger than the route's limit
    (`body_limit()`, default `DEFAULT_MAX_BODY_BYTES`) answers 413 without being read further.
    """

    def __init__(self, app: ASGIApp, *, max_body_bytes: int = DEFAULT_MAX_BODY_BYTES) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        found = _operations(scope)
        try:
            _check_path(scope, found)
            _check_query(scope)
            limit = self._limit(scope, found)
            _check_declared_length(scope, limit)
            if _is_text_body(scope):
                body = await _read_body(receive, limit)
                _check_body(scope, body)
                receive = _replay(body, receive)
            else:
                receive = _counting(receive, limit)
        except _Refused as refused:
            await problem_response(refused.problem)(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            started = started or message["type"] == "http.response.start"
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except _Refused as refused:  # the body grew past the limit while a route was reading it
            if started:
                raise
            await problem_response(refused.problem)(scope, receive, send)

    def _limit(self, scope: Scope, found: tuple[dict[str, Any], dict[str, str]] | None) -> int:
        operation = found[0].get(scope.get("method", "").lower(), {}) if found else {}
        return int(operation.get(BODY_LIMIT_KEY, self.max_body_bytes))


_Template = tuple[re.Pattern[str], dict[str, dict[str, Any]]]


def _templates(app: Any) -> list[_Template]:
    """The app's documented paths as regexes, with their operations (built once per app)."""
    cached = getattr(app.state, "edge_templates", None)
    if cached is None:
        cached = []
        for path, item in app.openapi().get("paths", {}).items():
            parts = re.split(r"\{([^}:]+)(?::[^}]*)?\}", path)
            pattern = "".join(
                re.escape(part) if i % 2 == 0 else f"(?P<{part}>[^/]+)" for i, part in enumerate(parts)
            )
            operations = {m: op for m, op in item.items() if m in _METHODS}
            cached.append((re.compile(f"^{pattern}$"), operations))
        app.state.edge_templates = cached
    return cached


def _operations(scope: Scope) -> tuple[dict[str, dict[str, Any]], dict[str, str]] | None:
    """(operations by method, path parameters) of the documented path `scope` is for, if any."""
    app = scope.get("app")
    if app is None or not hasattr(app, "openapi"):
        return None
    try:
        templates = _templates(app)
    except Exception:  # a document that cannot be built must not take requests down with it
        log.exception("OpenAPI document could not be built")
        return None
    path = scope.get("path", "")
    for regex, operations in templates:
        if match := regex.match(path):
            return operations, match.groupdict()
    return None


def _check_path(scope: Scope, found: tuple[dict[str, Any], dict[str, str]] | None) -> None:
    path = scope.get("path", "")
    if not _CONTROL.search(path):
        return
    name = "path"
    for key, value in (found[1] if found else {}).items():
        if _CONTROL.search(value):
            name = key
            break
    raise _Refused(_bad_text("path", name))


def _check_query(scope: Scope) -> None:
    raw = scope.get("query_string", b"").decode("latin-1")
    if not raw:
        return
    for key, value in parse_qsl(raw, keep_blank_values=True):
        if _CONTROL.search(key) or _CONTROL.search(value):
            raise _Refused(_bad_text("query", key))


def _too_large(limit: int) -> _Refused:
    return _Refused(
        Problem(
            413,
            "Request body too large",
            f"at most {limit} bytes are accepted here",
            errors=[{"field": "body", "message": f"at most {limit} bytes"}],
        )
    )


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope.get("headers", ()):
        if key.lower() == name:
            text: str = value.decode("latin-1")
            return text
    return ""


def _check_declared_length(scope: Scope, limit: int) -> None:
    length = _header(scope, b"content-length")
    if length.isdigit() and int(length) > limit:
        raise _too_large(limit)


def _media_type(scope: Scope) -> str:
    return _header(scope, b"content-type").split(";")[0].strip().lower()


def _is_text_body(scope: Scope) -> bool:
    media = _media_type(scope)
    return (
        media == "application/x-www-form-urlencoded" or media == "application/json" or media.endswith("+json")
    )


async def _read_body(receive: Receive, limit: int) -> bytes:
    chunks, size = [], 0
    while True:
        message = await receive()
        if message["type"] != "http.request":
            break
        chunk = message.get("body", b"")
        size += len(chunk)
        if size > limit:
            raise _too_large(limit)
        chunks.append(chunk)
        if not message.get("more_body", False):
            break
    return b"".join(chunks)


def _check_body(scope: Scope, body: bytes) -> None:
    if not body:
        return
    if _media_type(scope) == "application/x-www-form-urlencoded":
        for key, value in parse_qsl(body.decode("latin-1"), keep_blank_values=True):
            if _CONTROL_IN_TEXT.search(key) or _CONTROL_IN_TEXT.search(value):
                raise _Refused(_bad_text("form", key))
        return
    # JSON can carry NUL only as a \u0000 escape: parse only when one may be there.
    if b"\\u0000" not in body:
        return
    try:
        document = json.loads(body)
    except ValueError:
        return  # not JSON: the route answers that
    if found := _json_field_with_nul(document):
        raise _Refused(_bad_text("body", found))


def _replay(body: bytes, receive: Receive) -> Receive:
    sent = False

    async def replay() -> Message:
        nonlocal sent
        if not sent:
            sent = True
            return {"type": "http.request", "body": body, "more_body": False}
        return await receive()  # after the body: wait for the disconnect, as the server would

    return replay


def _counting(receive: Receive, limit: int) -> Receive:
    size = 0

    async def counted() -> Message:
        nonlocal size
        message = await receive()
        if message["type"] == "http.request":
            size += len(message.get("body", b""))
            if size > limit:
                raise _too_large(limit)
        return message

    return counted


# --- OpenAPI: every operation documents the problems the edge and the handlers can answer -------

_PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "title": "Problem",
    "description": "RFC 9457 problem details; `errors` names each bad field.",
    "required": ["type", "title", "status"],
    "properties": {
        "type": {"type": "string"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "errors": {"type": "array", "items": {"type": "object"}},
    },
}
_WHY = {
    400: "A parameter or body field holds a control character (the problem names it)",
    401: "Missing or unknown credentials",
    403: "These credentials may not do this",
    404: "Not found",
    409: "Conflicts with the current state",
    413: "Request body too large",
    415: "Unsupported request media type",
    422: "Parameters or body invalid (the problem names each field)",
    503: "A dependency (database, broker) is unavailable; retry",
}
_METHODS = ("get", "put", "post", "delete", "patch", "head", "options", "trace")


def _without_control(schema: dict[str, Any]) -> None:
    """Free-text string parameters say what the edge refuses, so valid-by-schema input is accepted."""
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, ()):
            _without_control(sub)
    if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & schema.keys():
        schema["pattern"] = NO_CONTROL_PATTERN


def _text_without_control(
    schema: dict[str, Any], pattern: str, components: dict[str, Any], seen: set[str]
) -> None:
    """Body string fields (through `$ref`s) say which characters the edge refuses in them."""
    ref = schema.get("$ref", "")
    if ref.startswith("#/components/schemas/"):
        name = ref.rsplit("/", 1)[1]
        if name not in seen and name in components.get("schemas", {}):
            seen.add(name)
            _text_without_control(components["schemas"][name], pattern, components, seen)
        return
    for key in ("anyOf", "oneOf", "allOf"):
        for sub in schema.get(key, ()):
            _text_without_control(sub, pattern, components, seen)
    for sub in schema.get("properties", {}).values():
        _text_without_control(sub, pattern, components, seen)
    if isinstance(schema.get("items"), dict):
        _text_without_control(schema["items"], pattern, components, seen)
    if isinstance(schema.get("additionalProperties"), dict):
        _text_without_control(schema["additionalProperties"], pattern, components, seen)
    if schema.get("type") == "string" and not {"pattern", "enum", "const", "format"} & schema.keys():
        schema["pattern"] = pattern
    if schema.get("type") == "object" or "properties" in schema:
        # Members a route does not declare are refused on the same terms as the declared ones.
        schema.setdefault("propertyNames", {"pattern": pattern})
        if "additionalProperties" not in schema:
            free = "FreeText" if pattern == NO_CONTROL_IN_TEXT_PATTERN else "FreeJson"
            schema["additionalProperties"] = {"$ref": f"#/components/schemas/{free}"}


def _free_form_schemas() -> dict[str, Any]:
    """Any JSON value without NUL (free-form JSON members); any text without controls (form fields)."""
    free_json = "#/components/schemas/FreeJson"
    return {
        "FreeJson": {
            "description": "Any JSON value whose text holds no NUL.",
            "anyOf": [
                {"type": "string", "pattern": NO_NUL_PATTERN},
                {"type": ["number", "boolean", "null"]},
                {"type": "array", "items": {"$ref": free_json}},
                {
                    "type": "object",
                    "propertyNames": {"pattern": NO_NUL_PATTERN},
                    "additionalProperties": {"$ref": free_json},
                },
            ],
        },
        "FreeText": {"type": "string", "pattern": NO_CONTROL_IN_TEXT_PATTERN},
    }


def _complete_operation(
    op: dict[str, Any], method: str, global_security: bool, components: dict[str, Any]
) -> None:
    params = op.get("parameters", [])
    for param in params:
        if param.get("in") in ("path", "query") and isinstance(param.get("schema"), dict):
            _without_control(param["schema"])
    for media, body in op.get("requestBody", {}).get("content", {}).items():
        if isinstance(body.get("schema"), dict):
            text = NO_CONTROL_IN_TEXT_PATTERN if "form" in media else NO_NUL_PATTERN
            _text_without_control(body["schema"], text, components, set())
    responses = op.setdefault("responses", {})
    media = [PROBLEM_JSON]
    for status, response in responses.items():
        if str(status).startswith("2") and "text/html" in response.get("content", {}):
            media.append("text/html")  # browser pages answer errors as pages too
    for status in _error_statuses(op, params, method, global_security):
        key = str(status)
        if key == "422" or key not in responses:
            responses[key] = {"description": _WHY[status]}
        content = responses[key].setdefault("content", {})
        if key == "422":
            content.pop("application/json", None)  # FastAPI's default; ours is problem+json
        for kind in media:
            content.setdefault(
                kind,
                {"schema": {"$ref": "#/components/schemas/Problem"}} if kind == PROBLEM_JSON else {},
            )
    _declared_problems(responses, media)


def _error_statuses(
    op: dict[str, Any], params: list[dict[str, Any]], method: str, global_security: bool
) -> list[int]:
    """The error statuses every operation like `op` can answer with."""
    statuses = [400, 503]
    if params or "requestBody" in op:
        statuses.append(422)
    if "requestBody" in op:
        statuses += [413, 415]
    if any(p.get("in") == "path" for p in params) or "requestBody" in op:
        statuses.append(404)  # the resource named in the path, or one the body refers to
    if method != "get":
        statuses.append(409)  # the change conflicts with the current state
    if op.get("security") or (global_security and op.get("security") is None):
        statuses += [401, 403]
    return statuses


def _declared_problems(responses: dict[str, Any], media: list[str]) -> None:
    """Problems other routes declared themselves get the right media types too."""
    for key, response in responses.items():
        if key[:1] not in "45" or key == "422":
            continue
        content = response.setdefault("content", {})
        if "application/json" in content:
            content.setdefault(PROBLEM_JSON, content["application/json"])
        for kind in media:
            content.setdefault(
                kind, {"schema": {"$ref": "#/components/schemas/Problem"}} if kind == PROBLEM_JSON else {}
            )


def complete_openapi(document: dict[str, Any]) -> dict[str, Any]:
    """Add the common problem responses, and control-character-free string parameters, to every operation."""
    if document.get("x-problems-documented"):
        return document
    components = document.setdefault("components", {})
    schemas = components.setdefault("schemas", {})
    schemas.setdefault("Problem", _PROBLEM_SCHEMA)
    for name, schema in _free_form_schemas().items():
        schemas.setdefault(name, schema)
    global_security = bool(document.get("security"))
    for item in document.get("paths", {}).values():
        for method in _METHODS:
            if method in item:
                _complete_operation(item[method], method, global_security, components)
    document["x-problems-documented"] = True
    return document


def document_problems(app: FastAPI) -> None:
    """Make `app.openapi()` complete its document, even if a service replaces `app.openapi` later."""
    app.__class__ = _documenting_class(type(app))


_CLASSES: dict[type, type] = {}


def _documenting_class(base: type[FastAPI]) -> type[FastAPI]:
    if base in _CLASSES or getattr(base, "_documents_problems", False):
        return _CLASSES.get(base, base)

    def get(self: FastAPI) -> Callable[[], dict[str, Any]]:
        builder = self.__dict__.get("_openapi_builder") or (lambda: base.openapi(self))

        def openapi() -> dict[str, Any]:
            return complete_openapi(builder())

        return openapi

    def set_(self: FastAPI, builder: Callable[[], dict[str, Any]]) -> None:
        self.__dict__["_openapi_builder"] = builder

    cls = type(base.__name__, (base,), {"openapi": property(get, set_), "_documents_problems": True})
    _CLASSES[base] = cls
    return cls
