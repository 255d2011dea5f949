"""Where each component's migrations live, and applying all of them (for `streetneeds migrate`)."""

from __future__ import annotations

from pathlib import Path

from .db import apply_migrations, create_pool
from .registry import GAZETTEER_MIGRATIONS, SERVICES

__all__ = ["MIGRATIONS", "migrate_all"]

# schema -> folder of NNN_name.sql files. Order matters only in that reference data comes first.
MIGRATIONS: dict[str, Path] = {
    "gazetteer": GAZETTEER_MIGRATIONS,
    **{service.schema: service.migrations for service in SERVICES},
}


async def migrate_all(database_url: str) -> dict[str, list[str]]:
    pool = await create_pool(database_url, max_size=1)
    try:
        async with pool.acquire() as conn:
            return {
                schema: await apply_migrations(conn, schema, folder)
                for schema, folder in MIGRATIONS.items()
                if folder.is_dir()
            }
    finally:
        await pool.close()
