"""What ingest holds while it runs, built at startup; routes take it via `ingest_context`."""

from __future__ import annotations

from dataclasses import dataclass

import asyncpg
from fastapi import Request

from shared.gazetteer.model import Gazetteer

from .auth import RateLimiter
from .pipeline import Pipeline
from .settings import IngestSettings

__all__ = ["IngestContext", "ingest_context"]


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    pool: asyncpg.Pool
    gazetteer: Gazetteer
    limiter: RateLimiter  # per council system's key
    pipeline: Pipeline  # anonymise, place and publish: every way in goes through it


def ingest_context(request: Request) -> IngestContext:
    """FastAPI dependency: the running ingest service's context."""
    context: IngestContext = request.app.state.runtime.context
    return context
