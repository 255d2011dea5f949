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


def trend(this_period: int, last_period: int) -> Trend:
    """This period against the last: up, down or steady."""
    if this_period > last_period:
        return "up"
    if this_period < last_period:
        return "down"
    return "steady"
