"""Retry schedule for webhook deliveries: exponential backoff with jitter."""

from __future__ import annotations

import random

__all__ = ["backoff_delay", "backoff_schedule"]


def backoff_delay(attempt: int, base_s: float, cap_s: float, rng: random.Random | None = None) -> float:
    """Seconds to wait after failed attempt number `attempt` (1-based).

    The ceiling doubles per attempt (base, 2·base, 4·base, … up to cap); the delay is drawn from
    the upper half of it ("equal jitter"), so retries spread out yet still grow.
    """
    if attempt < 1:
        raise ValueError("attempt is 1-based")
    ceiling = min(cap_s, base_s * 2.0 ** (attempt - 1))
    jitter = rng.uniform(0, ceiling / 2) if rng is not None else random.uniform(0, ceiling / 2)
    return ceiling / 2 + jitter


def backoff_schedule(max_attempts: int, base_s: float, cap_s: float) -> list[tuple[float, float]]:
    """The (shortest, longest) wait after each failed attempt before the last, for documentation."""
    out = []
    for attempt in range(1, max_attempts):
        ceiling = min(cap_s, base_s * 2.0 ** (attempt - 1))
        out.append((ceiling / 2, ceiling))
    return out
