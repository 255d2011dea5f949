"""The street areas a residents' service (feeds, notifier) serves, loaded once when it starts."""

from __future__ import annotations

import logging

import asyncpg

from . import repository
from .model import Gazetteer
from .selection import Areas

__all__ = ["load_areas"]

log = logging.getLogger(__name__)


async def load_areas(pool: asyncpg.Pool, gazetteer: Gazetteer | None = None, *, empty: str) -> Areas | None:
    """`gazetteer` (tests) or the stored one; None while nothing is imported, `empty` saying what then
    answers 503 (the service still starts, so its other pages and health checks work)."""
    if gazetteer is None:
        async with pool.acquire() as conn:
            gazetteer = await repository.load(conn)
    if not gazetteer.streets:
        log.warning("the gazetteer is empty: run `streetneeds gazetteer import` (%s answer 503)", empty)
        return None
    return Areas(gazetteer)
