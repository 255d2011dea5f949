"""API keys for organisations and partners: random, shown once, stored only as a SHA-256 hash."""

from __future__ import annotations

import hashlib
import secrets
import uuid
from typing import Literal

import asyncpg

from shared.refusals import Conflict, NotFound

__all__ = ["KEY_PREFIX", "RevokedKeyHolder", "UnknownKeyHolder", "hash_key", "lock_active", "new_key"]

KEY_PREFIX = "snp_"  # recognisable in logs and secret scanners


def new_key(prefix: str = KEY_PREFIX) -> str:
    return prefix + secrets.token_urlsafe(32)


def hash_key(key: str) -> str:
    # 256 random bits need no slow hash: a plain SHA-256 cannot be brute-forced back to the key.
    return hashlib.sha256(key.encode()).hexdigest()


# The tables whose rows hold a key: council systems, partners, organisations (each service's own).
KeyHolderTable = Literal["ingest.council_systems", "partners.partners", "prompter.organisations"]


# What each table's rows are called in answers ("No such partner", "Partner revoked").
_LABELS: dict[str, str] = {
    "ingest.council_systems": "council system",
    "partners.partners": "partner",
    "prompter.organisations": "organisation",
}


class UnknownKeyHolder(NotFound):
    """No row has this id (answered 404)."""


class RevokedKeyHolder(Conflict):
    """The row's key was revoked: it can no longer be rotated, revoked or changed (answered 409)."""


async def lock_active(conn: asyncpg.Connection, table: KeyHolderTable, holder_id: uuid.UUID) -> None:
    """Lock a key holder's row until the transaction ends, refusing an unknown or revoked one. Every
    change to a key holder starts here, so a rotation and a revocation cannot interleave."""
    row = await conn.fetchrow(f"SELECT revoked_at FROM {table} WHERE id = $1 FOR UPDATE", holder_id)
    label = _LABELS[table]
    if row is None:
        raise UnknownKeyHolder(f"No such {label}", f"no {label} {holder_id}")
    if row["revoked_at"] is not None:
        raise RevokedKeyHolder(f"{label[0].upper()}{label[1:]} revoked", f"{label} {holder_id} is revoked")
