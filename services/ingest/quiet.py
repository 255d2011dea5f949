"""Unexpected errors answered with a 500 and logged by type and place only: a message may quote input."""

from __future__ import annotations

import json
import logging
import traceback

from starlette.types import ASGIApp, Message, Receive, Scope, Send

__all__ = ["QuietErrors", "where"]

log = logging.getLogger(__name__)


def where(exc: BaseException) -> str:
    """`file:line` of the innermost frame, without the exception's message or any local value."""
    frames = traceback.extract_tb(exc.__traceback__)
    if not frames:
        return "?"
    last = frames[-1]
    return f"{last.filename.rsplit('/', 2)[-1]}:{last.lineno}"


class QuietErrors:
    """Outermost application middleware of ingest: nothing a council sent can reach a log line.

    Starlette's own error middleware would log the traceback, whose last line is the exception's
    message — pydantic's quote the input (an address, a name). This one catches first, logs the
    exception's type and where it happened, and answers a problem+json 500 when it still can.
    """

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        started = False

        async def tracking_send(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
            await send(message)

        try:
            await self.app(scope, receive, tracking_send)
        except Exception as exc:
            log.error(
                "unhandled error",
                extra={"error": type(exc).__name__, "where": where(exc), "path": scope.get("path", "")},
            )
            if started:
                return
            body = json.dumps({"type": "about:blank", "title": "Internal error", "status": 500}).encode()
            await send(
                {
                    "type": "http.response.start",
                    "status": 500,
                    "headers": [
                        (b"content-type", b"application/problem+json"),
                        (b"content-length", str(len(body)).encode()),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": body})
