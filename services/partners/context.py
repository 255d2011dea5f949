"""What the partner service holds while it runs, built at startup; routes take it as `context: Context`."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends

from shared.ratelimit import TokenBucket
from shared.service import running_context

from .geometry import AreaGeometry
from .settings import PartnersSettings

__all__ = ["Context", "PartnersContext"]


@dataclass(frozen=True)
class PartnersContext:
    settings: PartnersSettings
    pool: asyncpg.Pool
    geometry: AreaGeometry  # street and ward shapes for GeoJSON and webhook bodies
    replay_limiter: TokenBucket  # webhook replays, keyed by partner

    @classmethod
    def build(cls, settings: PartnersSettings, pool: asyncpg.Pool, geometry: AreaGeometry) -> PartnersContext:
        per_hour = settings.webhook_replay_per_hour
        return cls(
            settings=settings,
            pool=pool,
            geometry=geometry,
            replay_limiter=TokenBucket(per_hour / 60.0, burst=per_hour),
        )


# What a route declares to be given the context: `context: Context`.
Context = Annotated[PartnersContext, Depends(running_context)]
