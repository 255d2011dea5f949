"""What the console holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request

from shared.service import running_context

from .settings import ConsoleSettings
from .targets import Targets

__all__ = ["ConsoleContext", "Context", "console_context"]


@dataclass(frozen=True)
class ConsoleContext:
    settings: ConsoleSettings
    pool: asyncpg.Pool
    targets: Targets  # calls to the other services' APIs


def console_context(request: Request) -> ConsoleContext:
    """FastAPI dependency (and plain helper): the running console's context."""
    context: ConsoleContext = request.app.state.runtime.context
    return context


# What a route declares to be given the context: `context: Context`.
Context = Annotated[ConsoleContext, Depends(running_context)]
