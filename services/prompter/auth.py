"""Who is calling: an organisation by its API key, the operator by PROMPTER_ADMIN_TOKEN, or nobody.

Organisations (VCS groups and council teams) write only their own opportunities. The council's
overview — every change, every organisation, the platforms directory — is open to a council
organisation created with `--council-admin`, and to the operator token (for scripts and support).
"""

from __future__ import annotations

import hmac
from dataclasses import dataclass
from typing import Annotated

import asyncpg
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from shared.http import Problem
from shared.keys import hash_key

from . import org_repository as org_repo

__all__ = ["Caller", "CurrentOrganisation", "council_reader", "current_organisation", "organisation_for_key"]

_bearer = HTTPBearer(
    auto_error=False,
    scheme_name="organisationKey",
    description="An organisation's API key from `streetneeds prompter create-organisation` (council "
    "overview routes also accept the operator token, PROMPTER_ADMIN_TOKEN).",
)
_REALM = 'Bearer realm="streetneeds-prompter"'


@dataclass(frozen=True)
class Caller:
    """An organisation (its row) or the operator (`organisation` None)."""

    organisation: asyncpg.Record | None

    @property
    def actor(self) -> str:
        return self.organisation["name"] if self.organisation else "operator"


def _missing() -> Problem:
    return Problem(
        401,
        "Authentication required",
        "Send your organisation's API key as `Authorization: Bearer <key>`.",
        headers={"WWW-Authenticate": _REALM},
    )


async def organisation_for_key(request: Request, key: str) -> asyncpg.Record:
    """The organisation a key belongs to, or 401 (unknown) / 403 (revoked) problem+json."""
    async with request.app.state.runtime.pool.acquire() as conn:
        org = await org_repo.organisation_by_key_hash(conn, hash_key(key))
    if org is None:
        raise Problem(
            401,
            "Unknown API key",
            "The API key is not recognised.",
            headers={"WWW-Authenticate": f'{_REALM}, error="invalid_token"'},
        )
    if org["revoked_at"] is not None:
        raise Problem(403, "API key revoked", "This organisation's access has been revoked.")
    return org


def _is_operator(request: Request, key: str) -> bool:
    expected = request.app.state.runtime.settings.admin_token
    return expected is not None and hmac.compare_digest(key.encode(), expected.get_secret_value().encode())


async def current_organisation(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> asyncpg.Record:
    """The calling organisation: 401 without a key or with an unknown one, 403 when revoked."""
    if credentials is None or not credentials.credentials:
        raise _missing()
    return await organisation_for_key(request, credentials.credentials)


async def council_reader(
    request: Request, credentials: HTTPAuthorizationCredentials | None = Depends(_bearer)
) -> Caller:
    """The operator, or a council organisation with the council-admin flag; 403 for anyone else."""
    if credentials is None or not credentials.credentials:
        raise _missing()
    if _is_operator(request, credentials.credentials):
        return Caller(None)
    org = await organisation_for_key(request, credentials.credentials)
    if not org["council_admin"]:
        raise Problem(403, "Not allowed", "Only the council's admin organisation may do this.")
    return Caller(org)


# A route's caller, an organisation's row (prompter.organisations), resolved from its bearer key.
CurrentOrganisation = Annotated[asyncpg.Record, Depends(current_organisation)]
