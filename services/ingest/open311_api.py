"""Open311 GeoReport v2 endpoint under `/open311/v2/`: every method in `.xml` (required) and `.json`.

Reading shows only the anonymised street-level view: the street's name as `address`, the street's
representative point as `lat`/`long` (never the reported coordinates), `requested_datetime` to the
hour, no description, media or personal field. Errors use the spec's format, not problem+json.
"""

from __future__ import annotations

import datetime as dt
import functools
import secrets
from collections.abc import Awaitable, Callable
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import Response

from shared.contracts import Category, CouncilSignal, Location, info
from shared.gazetteer.model import Gazetteer

from . import repository
from .access import Caller, identify
from .auth import RateLimiter
from .context import Context, IngestContext
from .open311 import (
    Open311Error,
    Open311Form,
    date_range,
    discovery,
    errors_body,
    parse_form,
    place_services,
    render,
    service_definition,
    service_view,
    w3c,
)
from .pipeline import OutOfScope, Pipeline, ProduceFailed
from .places import place_area

__all__ = ["router"]

router = APIRouter(prefix="/open311/v2", tags=["open311"])
_FORMATS = ("xml", "json")
_ERRORS_DOC: dict[int | str, dict[str, Any]] = {
    s: {
        "description": d,
        "content": {"application/xml": {}, "application/json": {"example": [{"code": s, "description": d}]}},
    }
    for s, d in (
        (400, "A required field is missing or invalid, or the location is outside the borough"),
        (403, "api_key missing, unknown, or not allowed this service"),
        (404, "service_code, jurisdiction_id, request or token not found, or the format is not served"),
        (413, "The form is larger than 64 KiB"),
        (429, "Too many requests from this api_key; see Retry-After"),
        (503, "The report could not be recorded; retry"),
    )
}
MAX_FORM_BYTES = 64 * 1024  # a report is a few fields and a 4,000-character description at most
MAX_ID_LENGTH = 64
MAX_ADDRESS = Location.model_fields["address"].metadata[0].max_length
_OK: dict[str, Any] = {"content": {"application/xml": {}, "application/json": {}}}
Route = Callable[..., Awaitable[Response]]


def _respond(
    fmt: str, root: str, item: str, body: Any, status: int = 200, headers: dict[str, str] | None = None
) -> Response:
    content, media = render(fmt, root, item, body)
    return Response(content, status_code=status, media_type=media, headers=headers)


def _error(fmt: str, exc: Open311Error) -> Response:
    return _respond(
        fmt if fmt in _FORMATS else "xml",
        "errors",
        "error",
        errors_body(exc.status, exc.description),
        exc.status,
        exc.headers,
    )


def _open311(route: Route) -> Route:
    """An Open311 method: its `fmt` is checked first, and an `Open311Error` is answered as the spec's
    error list, in that format (XML when the format is not served)."""

    @functools.wraps(route)
    async def answer(**params: Any) -> Response:  # FastAPI passes every parameter by name
        fmt = params["fmt"]
        try:
            if fmt not in _FORMATS:  # never echoed: it may hold anything, control characters included
                raise Open311Error(404, "this format is not served; use .xml or .json")
            return await route(**params)
        except Open311Error as exc:
            return _error(fmt, exc)

    return answer


def _ids(raw: list[str]) -> list[str]:
    """Request ids as given, without any that cannot be one (control characters never reach SQL)."""
    return [i for i in raw if i.isprintable() and len(i) <= MAX_ID_LENGTH]


async def _form(request: Request, ctx: IngestContext) -> tuple[Open311Form, Caller | None]:
    """The parsed form, authenticating first when the key came outside the body.

    A key in the `X-API-Key` header is checked before the body is read (the spec's `api_key` field
    can only be checked after); a body longer than MAX_FORM_BYTES is refused without reading it whole.
    A key in the query string is not taken: URLs end up in logs.
    """
    early = request.headers.get("x-api-key")
    caller = await _authenticate(ctx, early) if early else None
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > MAX_FORM_BYTES:
        raise Open311Error(413, f"the request body is larger than {MAX_FORM_BYTES} bytes")
    body = bytearray()
    async for chunk in request.stream():
        body += chunk
        if len(body) > MAX_FORM_BYTES:
            raise Open311Error(413, f"the request body is larger than {MAX_FORM_BYTES} bytes")
    request._body = bytes(body)  # Starlette parses the form from this instead of the spent stream
    # A file part is no Open311 field (the form is url-encoded; a multipart one could carry files).
    form = parse_form((k, v) for k, v in (await request.form()).multi_items() if isinstance(v, str))
    if early and form.api_key not in (None, early):
        raise Open311Error(403, "the api_key in the body differs from the one given before it")
    return form, caller


async def _authenticate(ctx: IngestContext, key: str | None) -> Caller:
    if key is None:
        raise Open311Error(403, "api_key was not provided")
    caller = await identify(ctx, key)
    if caller.system is None:
        raise Open311Error(403, "api_key is not valid")
    if caller.wait_s > 0:
        raise Open311Error(
            429, "too many requests; retry later", {"Retry-After": RateLimiter.retry_after(caller.wait_s)}
        )
    return caller


def _service(code: str | None) -> Category:
    if not code:
        raise Open311Error(400, "service_code was not provided")
    if code not in {c.code.value for c in place_services()}:
        raise Open311Error(404, f"service_code {code} was not found")
    return Category(code)


def _request_view(row: repository.Open311Row, gazetteer: Gazetteer, agency: str) -> dict[str, Any]:
    # A report is shown where the aggregator shows it (docs/privacy.md rule 2): its street, or the
    # place unit a small street belongs to, or with no place at all.
    area = place_area(gazetteer, row.street_id)
    point = area.point if area is not None else None
    return {
        "service_request_id": row.service_request_id,
        "status": row.status,
        "service_name": info(row.service_code).name,
        "service_code": row.service_code,
        "agency_responsible": agency,
        "requested_datetime": w3c(row.requested_at),
        "updated_datetime": w3c(row.updated_at),
        "address": area.name if area is not None else None,
        "lat": round(point[1], 6) if point is not None else None,
        "long": round(point[0], 6) if point is not None else None,
    }


@router.get(
    "/discovery.{fmt}",
    summary="Open311: discovery (where the endpoint is, what it speaks)",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def get_discovery(request: Request, ctx: Context, fmt: str) -> Response:
    settings = ctx.settings
    url = str(request.url_for("list_services", fmt="json")).rsplit("/", 1)[0]
    return _respond(fmt, "discovery", "endpoint", discovery(url, settings.agency_responsible))


@router.get(
    "/services.{fmt}",
    summary="Open311: list services (place categories)",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def list_services(fmt: str) -> Response:
    return _respond(fmt, "services", "service", [service_view(c) for c in place_services()])


@router.get(
    "/services/{service_code}.{fmt}",
    summary="Open311: a service definition",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def get_service(service_code: str, fmt: str) -> Response:
    return _respond(fmt, "service_definition", "", service_definition(info(_service(service_code))))


@router.post(
    "/requests.{fmt}",
    summary="Open311: report an environmental problem",
    description="Form-encoded, as GeoReport v2 and FixMyStreet send it. Personal fields (email, device_id, "
    "deviceid, account_id, first_name, last_name, phone), description and media_url are accepted and "
    "dropped; the location is snapped to a street.",
    responses={200: _OK, **_ERRORS_DOC},
    openapi_extra={
        # The shared edge refuses a larger body before reading it (its per-route limit).
        "x-max-body-bytes": MAX_FORM_BYTES,
        "requestBody": {
            "required": True,
            "content": {
                "application/x-www-form-urlencoded": {
                    "schema": {
                        "type": "object",
                        "required": ["api_key", "service_code"],
                        "properties": {
                            **{
                                k: {"type": "string"}
                                for k in (
                                    "api_key",
                                    "service_code",
                                    "jurisdiction_id",
                                    "address_string",
                                    "address_id",
                                    "email",
                                    "device_id",
                                    "deviceid",
                                    "account_id",
                                    "first_name",
                                    "last_name",
                                    "phone",
                                    "media_url",
                                )
                            },
                            "lat": {"type": "number"},
                            "long": {"type": "number"},
                            "description": {"type": "string", "maxLength": 4000},
                        },
                        "additionalProperties": {
                            "type": "string",
                            "description": "attribute[CODE] or attribute[CODE][]",
                        },
                    }
                }
            },
        },
    },
)
@_open311
async def post_request(request: Request, ctx: Context, fmt: str) -> Response:
    form, caller = await _form(request, ctx)
    if caller is None:
        caller = await _authenticate(ctx, form.api_key)
    system = caller.system
    assert system is not None
    category = _service(form.service_code)
    if form.jurisdiction_id is not None and form.jurisdiction_id != system.council_id:
        raise Open311Error(404, f"jurisdiction_id {form.jurisdiction_id} was not found")
    if form.lat is not None and form.long is not None:
        location = Location(lat=form.lat, lon=form.long)
    elif form.address_string is not None:
        if len(form.address_string) > MAX_ADDRESS:  # refused by name, never quoted (docs/privacy.md rule 1)
            raise Open311Error(400, f"address_string is longer than {MAX_ADDRESS} characters")
        location = Location(address=form.address_string)
    else:
        raise Open311Error(
            400,
            "a location was not provided: send lat and long, or address_string"
            + ("" if form.pinpointed else " (address_id is #NOTPINPOINTED#)"),
        )
    # The report itself is the subject: a later `withdrawn` signal with this reference closes it.
    request_id = secrets.token_hex(8)
    now = dt.datetime.now(dt.UTC)
    signal = CouncilSignal(
        event_id=request_id,
        category=category,
        action="raised",
        subject_ref=request_id,
        occurred_at=now,
        location=location,
    )

    pipeline: Pipeline = ctx.pipeline
    try:
        (outcome,) = await pipeline.accept([signal], system, "open311")  # it records the request
    except OutOfScope:
        raise Open311Error(403, f"this api_key may not report {category.value}") from None
    except ProduceFailed:
        raise Open311Error(
            503, "the report could not be recorded; please retry", {"Retry-After": "5"}
        ) from None
    if outcome.outcome == "rejected":
        raise Open311Error(
            400,
            "; ".join(
                e.replace("location", "lat/long" if form.lat is not None else "address_string", 1)
                for e in outcome.errors
            ),
        )
    body = [
        {
            "service_request_id": request_id,
            "service_notice": ctx.settings.service_notice,
            "account_id": None,
        }
    ]
    return _respond(fmt, "service_requests", "request", body)


@router.get(
    "/requests.{fmt}",
    summary="Open311: query requests (street-level view)",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def list_requests(
    request: Request,
    ctx: Context,
    fmt: str,
    service_request_id: str | None = None,
    service_code: str | None = None,
    start_date: str | None = None,
    end_date: str | None = None,
    status: str | None = None,
) -> Response:
    statuses = _csv(status)
    if statuses and not set(statuses) <= {"open", "closed"}:
        raise Open311Error(400, "status must be open or closed")
    if service_request_id:  # the spec: this overrides all other arguments
        rows = await _rows(ctx, ids=_ids(_csv(service_request_id) or []))
    else:
        start, end = date_range(start_date, end_date, dt.datetime.now(dt.UTC))
        rows = await _rows(
            ctx,
            service_codes=_ids(_csv(service_code) or []) if service_code else None,
            statuses=statuses,
            start=start,
            end=end,
        )
    return _respond(fmt, "service_requests", "request", _views(ctx, rows))


@router.get(
    "/requests/{service_request_id}.{fmt}",
    summary="Open311: one request (street-level view)",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def get_request(ctx: Context, service_request_id: str, fmt: str) -> Response:
    rows = await _found(ctx, service_request_id, "service_request_id")
    return _respond(fmt, "service_requests", "request", _views(ctx, rows))


@router.get(
    "/tokens/{token}.{fmt}",
    summary="Open311: service_request_id from a token",
    description="Requests are created in real time, so a token is the service_request_id itself.",
    responses={200: _OK, **_ERRORS_DOC},
)
@_open311
async def get_token(ctx: Context, token: str, fmt: str) -> Response:
    rows = await _found(ctx, token, "token")
    return _respond(
        fmt,
        "service_requests",
        "request",
        [{"service_request_id": rows[0].service_request_id, "token": token}],
    )


def _csv(raw: str | None) -> list[str] | None:
    values = [v.strip() for v in (raw or "").split(",") if v.strip()]
    return values or None


async def _found(ctx: IngestContext, request_id: str, field: str) -> list[repository.Open311Row]:
    """The request a `service_request_id` or token names (they are the same), or 404 naming `field`."""
    rows = await _rows(ctx, ids=_ids([request_id]))
    if not rows:
        raise Open311Error(404, f"{field} was not found")
    return rows


async def _rows(ctx: IngestContext, **filters: Any) -> list[repository.Open311Row]:
    """Stored requests matching `filters` (repository.open311_rows), read on a connection of their own."""
    async with ctx.pool.acquire() as conn:
        return await repository.open311_rows(conn, **filters)


def _views(ctx: IngestContext, rows: list[repository.Open311Row]) -> list[dict[str, Any]]:
    agency = ctx.settings.agency_responsible
    return [_request_view(r, ctx.gazetteer, agency) for r in rows]
