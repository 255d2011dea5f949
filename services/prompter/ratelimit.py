"""Residents' offers of contact are rate limited per client, with the shared limiter and client key."""

from __future__ import annotations

from fastapi import Request

from shared.ratelimit import enforce_rate

__all__ = ["check_offer_rate"]


def check_offer_rate(request: Request) -> None:
    """429 (with Retry-After) when this client has sent too many offers of contact."""
    settings = request.app.state.runtime.settings
    enforce_rate(request, "offers", settings.offers_per_minute, settings.offers_burst)
