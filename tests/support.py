"""Helpers for integration tests that need an app on a real socket (SSE, several replicas)."""

from __future__ import annotations

import asyncio
import socket
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

import uvicorn
from fastapi import FastAPI


def loopback_socket() -> tuple[socket.socket, str]:
    """A bound socket on a free loopback port, and its base URL (bind first: no port race)."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    return sock, f"http://127.0.0.1:{sock.getsockname()[1]}"


@asynccontextmanager
async def serve(app: FastAPI, sock: socket.socket) -> AsyncIterator[None]:
    """Run `app` with uvicorn (lifespan included) on `sock` until the block ends."""
    server = uvicorn.Server(uvicorn.Config(app, log_config=None, lifespan="on"))
    task = asyncio.create_task(server.serve(sockets=[sock]))
    while not server.started:
        if task.done():
            task.result()  # start-up failed: raise its error here
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await task
