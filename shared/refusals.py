"""A use case's refusals, free of HTTP: what was wrong, in words and by field.

The service layer raises these (its unit of work rolls back); the HTTP edge maps each kind to a status
(`shared.http.install_problem_handlers`: not found 404, conflict 409, invalid 422), so a use case can
be called from a route, a page, a consumer or the CLI alike (docs/adr/0006-transactions.md, rule 7).
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

__all__ = ["Conflict", "Invalid", "NotFound", "Refusal"]


class Refusal(Exception):
    """Base of the refusals: a title, a detail and the fields at fault (`{"field", "message", …}`)."""

    def __init__(self, title: str, detail: str = "", *, errors: Iterable[dict[str, Any]] = ()) -> None:
        super().__init__(detail or title)
        self.title, self.detail, self.errors = title, detail, list(errors)


class NotFound(Refusal):
    """What the request names does not exist (or is not the caller's to see)."""


class Conflict(Refusal):
    """The request is well formed but the current state does not allow it."""


class Invalid(Refusal):
    """The request's values are wrong in a way only the service can tell (e.g. unknown ids)."""
