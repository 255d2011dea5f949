"""Where each component's migrations live, and applying all of them (for `streetneeds migrate`)."""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from urllib.parse import unquote, urlsplit

from pydantic import SecretStr

from .db import READ_ONLY_SCHEMAS, apply_migrations, create_pool, grant_service_role
from .registry import GAZETTEER_MIGRATIONS, SERVICES

__all__ = ["MIGRATIONS", "migrate_all", "service_role_urls"]

# schema -> folder of NNN_name.sql files. Order matters only in that reference data comes first.
MIGRATIONS: dict[str, Path] = {
    "gazetteer": GAZETTEER_MIGRATIONS,
    **{service.schema: service.migrations for service in SERVICES},
}


def service_role_urls(environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """schema -> the service's own database URL, from `<SERVICE>_DATABASE_URL` where set."""
    environ = os.environ if environ is None else environ
    found = {s.schema: environ.get(f"{s.name.upper()}_DATABASE_URL", "") for s in SERVICES}
    return {schema: url for schema, url in found.items() if url}


async def migrate_all(
    database_url: str | SecretStr, roles: dict[str, str] | None = None
) -> dict[str, list[str]]:
    """Apply every migration as the administrator, then give each service's role its grants.

    `roles` (schema -> that service's database URL; default: `<SERVICE>_DATABASE_URL` from the
    environment) names each role and its password: the role may use its own schema and only read the
    gazetteer.
    """
    pool = await create_pool(database_url, max_size=1)
    roles = service_role_urls() if roles is None else roles
    try:
        async with pool.acquire() as conn:
            applied = {
                schema: await apply_migrations(conn, schema, folder)
                for schema, folder in MIGRATIONS.items()
                if folder.is_dir()
            }
            for schema, url in roles.items():
                parts = urlsplit(url)
                password = unquote(parts.password) if parts.password else None
                await grant_service_role(
                    conn, unquote(parts.username or ""), password, schema, read=READ_ONLY_SCHEMAS
                )
            return applied
    finally:
        await pool.close()
