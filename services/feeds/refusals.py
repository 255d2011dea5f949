"""The feeds' own refusals, free of HTTP: what `shared.refusals` has no kind for (the edge maps them)."""

from __future__ import annotations

from shared.refusals import Conflict

__all__ = ["GazetteerNotLoaded", "SubscriptionEnded", "TooManyResponses"]


class SubscriptionEnded(Conflict):
    """The subscription existed but was ended on purpose (answered as 410 Gone, not a plain 409)."""


class TooManyResponses(Exception):
    """This client said "I can help" too often; it may try again after `retry_after` seconds."""

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"retry after {retry_after} s")
        self.retry_after = retry_after


class GazetteerNotLoaded(Exception):
    """The street gazetteer is empty, so nothing that names a street or ward can be answered yet."""
