"""Street and ward feeds and pages answered from memory before the framework's routing and middleware.

A repeat GET of a street's or ward's feed or page is answered by `views.remembered_response` from the
validators and rendered bodies in memory (kept current by the listener's NOTIFYs): no query, no
rendering. What is left of such a request's cost is the framework around it: routing over every route,
dependency solving, four middleware layers (about three quarters of the server's time under `wrk`).
This layer answers those requests first, with exactly the response the route would give (status,
headers and body, gzip included, which is cached by ETag instead of compressed per request); anything
else, or anything not in memory, goes on to the app unchanged.
"""

from __future__ import annotations

import re
import zlib

from starlette.datastructures import MutableHeaders
from starlette.requests import HTTPConnection
from starlette.responses import Response
from starlette.types import ASGIApp, Receive, Scope, Send

from shared.service import Runtime

from .context import FeedsContext
from .feedcache import BodyCache
from .views import remembered_response

__all__ = ["FromMemory"]

# `/streets/{id}` and `/wards/{code}`, with an optional format suffix: web.py's routes of feeds whose
# targets are made once (`FeedsContext.targets`, keyed by this path without the suffix).
_FEED_PATH = re.compile(r"(/(?:streets|wards)/[^/.]+)(?:\.(atom|rss|json))?")
# A GET carrying a body goes through the app, whose edge checks refuse it when it is too large.
_BODY_HEADERS = (b"content-length", b"transfer-encoding")


class FromMemory:
    """ASGI middleware, outermost of the app's own: remembered street and ward feeds and pages.

    `gzip_minimum_size` and `gzip_level` are the app's `GZipMiddleware`'s, whose answer this layer
    reproduces: a body of at least that size gets `Vary: Accept-Encoding` added and, for a client
    asking for gzip, the same compressed bytes (zlib at that level, gzip wrapper without a time).
    """

    def __init__(
        self, app: ASGIApp, *, runtime: Runtime[FeedsContext], gzip_minimum_size: int, gzip_level: int
    ) -> None:
        self.app = app
        self.runtime = runtime
        self.gzip_minimum_size = gzip_minimum_size
        self.gzip_level = gzip_level
        self._gzipped: BodyCache | None = None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "GET" and not scope["query_string"]:
            found = _FEED_PATH.fullmatch(scope["path"])
            if found is not None and not scope.get("root_path"):
                response = self._answer(scope, found[1], found[2] or "html")
                if response is not None:
                    await response(scope, receive, send)
                    return
        await self.app(scope, receive, send)

    def _answer(self, scope: Scope, path: str, fmt: str) -> Response | None:
        try:
            ctx = self.runtime.context
        except RuntimeError:  # not started yet
            return None
        target = ctx.targets.get(path)  # only a street or ward the app has already answered for
        if target is None or any(name in _BODY_HEADERS for name, _ in scope["headers"]):
            return None
        connection = HTTPConnection(scope)
        response = remembered_response(ctx, target, fmt, connection)
        if response is None or len(response.body) < self.gzip_minimum_size:
            return response  # a 304 or a small body: GZipMiddleware leaves those as they are
        headers = MutableHeaders(raw=response.raw_headers)
        headers.add_vary_header("Accept-Encoding")
        if "gzip" in connection.headers.get("Accept-Encoding", ""):
            response.body = self._gzip(ctx, headers["etag"], bytes(response.body))
            headers["Content-Encoding"] = "gzip"
            headers["Content-Length"] = str(len(response.body))
        return response

    def _gzip(self, ctx: FeedsContext, etag: str, body: bytes) -> bytes:
        """`body` compressed as GZipMiddleware would, once per ETag (a strong ETag names the bytes)."""
        if self._gzipped is None:  # a fifth of the rendered feeds' budget: feeds compress ~5x or better
            self._gzipped = BodyCache(ctx.bodies.max_bytes // 5)
        gzipped = self._gzipped.get(etag)
        if gzipped is None:
            compressor = zlib.compressobj(self.gzip_level, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
            gzipped = compressor.compress(body) + compressor.flush()
            self._gzipped.put(etag, gzipped)
        return gzipped
