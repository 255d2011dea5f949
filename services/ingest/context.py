"""What ingest holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends

from shared.gazetteer.model import Gazetteer
from shared.service import running_context

from .auth import RateLimiter
from .known_systems import KnownSystems
from .pipeline import Pipeline
from .settings import IngestSettings

__all__ = ["Context", "IngestContext"]


@dataclass(frozen=True)
class IngestContext:
    settings: IngestSettings
    pool: asyncpg.Pool
    gazetteer: Gazetteer
    limiter: RateLimiter  # per council system's key
    pipeline: Pipeline  # anonymise, place and publish: every way in goes through it
    systems: KnownSystems  # council systems by key hash, kept while PostgreSQL tells of changes


# What a route declares to be given the context: `context: Context`.
Context = Annotated[IngestContext, Depends(running_context)]
