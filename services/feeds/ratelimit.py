"""Token bucket per client for "I can help": the one limiter every service shares (shared/ratelimit.py)."""

from __future__ import annotations

from shared.ratelimit import TokenBucket as RateLimiter

__all__ = ["RateLimiter"]
