"""What the console holds while it runs, built at startup and reached by routes through `console_context`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import Request

from .settings import ConsoleSettings
from .targets import Targets

__all__ = ["ConsoleContext", "console_context"]


@dataclass(frozen=True)
class ConsoleContext:
    settings: ConsoleSettings
    pool: asyncpg.Pool
    targets: Targets  # calls to the other services' APIs


def console_context(request: Request) -> ConsoleContext:
    """FastAPI dependency (and plain helper): the running console's context."""
    context: ConsoleContext = request.app.state.runtime.context
    return context
