"""Partner authentication: `Authorization: Bearer <API key>` → the partner, or 401/403 problem+json."""

from __future__ import annotations

from typing import Any

from fastapi import Depends
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.http import Problem
from shared.keys import hash_key

from . import repository
from .context import Context

__all__ = ["current_partner"]

_bearer = HTTPBearer(auto_error=False, description="A partner API key from `create-partner`.")
_REALM = 'Bearer realm="streetneeds-partners"'


async def current_partner(
    context: Context,
    credentials: HTTPAuthorizationCredentials | None = Depends(_bearer),
) -> dict[str, Any]:
    if credentials is None or not credentials.credentials:
        raise Problem(
            401,
            "Authentication required",
            "Send your partner API key as `Authorization: Bearer <key>`.",
            headers={"WWW-Authenticate": _REALM},
        )
    async with context.pool.acquire() as conn:
        partner = await repository.partner_by_key_hash(conn, hash_key(credentials.credentials))
    if partner is None:
        raise Problem(
            401,
            "Unknown API key",
            "The API key is not recognised.",
            headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'},
        )
    if partner["revoked_at"] is not None:
        raise Problem(403, "API key revoked", "This partner's access has been revoked.")
    return partner
