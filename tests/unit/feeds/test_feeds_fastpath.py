"""The layer that answers remembered street and ward feeds before routing leaves every other request
to the app: before start-up, other paths, other methods, a query string, a feed not yet asked for."""

from __future__ import annotations

from types import SimpleNamespace

import pytest

from services.feeds.fastpath import FromMemory
from shared.service import Runtime


def _layer(context: object | None) -> tuple[FromMemory, list[str]]:
    reached: list[str] = []

    async def app(scope, receive, send):
        reached.append(scope["path"])

    runtime = Runtime(name="feeds", settings=SimpleNamespace(), broker=SimpleNamespace())
    if context is not None:
        runtime.provide(context)
    return FromMemory(app, runtime=runtime, gzip_minimum_size=1024, gzip_level=6), reached


def _scope(path: str, method: str = "GET", query: bytes = b"", headers: list | None = None) -> dict:
    return {"type": "http", "method": method, "path": path, "query_string": query, "headers": headers or []}


async def _nothing():
    return {"type": "http.request"}


async def _no_send(message):
    raise AssertionError("the layer answered")


@pytest.mark.parametrize(
    "scope",
    [
        _scope("/streets/s-1.atom"),  # known, but no validators in memory (the listener never caught up)
        _scope("/streets/s-2.atom"),  # a street not asked for yet
        _scope("/streets/s-1/notice"),
        _scope("/streets/s-1.atom", method="HEAD"),
        _scope("/streets/s-1.atom", query=b"x=1"),
        _scope("/streets/s-1.atom", headers=[(b"content-length", b"1")]),
        _scope("/s/token.atom"),
        _scope("/v1/streets"),
    ],
)
async def test_what_memory_cannot_answer_goes_to_the_app(scope):
    context = SimpleNamespace(targets={"/streets/s-1": object()}, hub=SimpleNamespace(seen_seq=None))
    layer, reached = _layer(context)
    await layer(scope, _nothing, _no_send)
    assert reached == [scope["path"]]


async def test_before_start_up_every_request_goes_to_the_app():
    layer, reached = _layer(None)
    await layer(_scope("/streets/s-1.atom"), _nothing, _no_send)
    assert reached == ["/streets/s-1.atom"]
