"""Rounding, bands and trends: the only shapes in which counts leave the aggregator."""

from __future__ import annotations

from shared.contracts import Band, Trend

from .policy import DisclosurePolicy

__all__ = ["band_for", "round_to_base", "trend"]


def round_to_base(count: int, base: int) -> int:
    """`count` rounded to the nearest multiple of `base` (halves round up)."""
    return base * ((2 * count + base) // (2 * base))


def band_for(noisy_count: int, policy: DisclosurePolicy) -> Band | None:
    """The band of a noisy count, or None when it must not be shown at all (never "0")."""
    if noisy_count < policy.min_subjects:
        return None
    if noisy_count < policy.several_from:
        return "some"
    if noisy_count < policy.many_from:
        return "several"
    return "many"


def trend(this_period: int, last_period: int, tolerance: int = 0) -> Trend:
    """This period against the last: up or down only when the change exceeds `tolerance`."""
    if this_period - last_period > tolerance:
        return "up"
    if last_period - this_period > tolerance:
        return "down"
    return "steady"
