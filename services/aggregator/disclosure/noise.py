"""Discrete Laplace (geometric) noise from OpenDP, calibrated to a cell's epsilon."""

from __future__ import annotations

from collections.abc import Callable
from functools import lru_cache

import opendp.prelude as dp

__all__ = ["Sampler", "draw_noise"]

dp.enable_features("contrib")

# (true_count, epsilon) -> noisy count. Injectable so tests can use a seeded sampler; production
# uses draw_noise, whose randomness (OpenDP's CSPRNG) cannot be seeded or replayed.
Sampler = Callable[[int, float], int]


@lru_cache(maxsize=32)
def _mechanism(epsilon: float, sensitivity: int) -> dp.Measurement:
    space = dp.atom_domain(T=int), dp.absolute_distance(T=int)
    mechanism = dp.m.make_geometric(*space, scale=sensitivity / epsilon)
    # OpenDP's own privacy map is the proof that the scale gives the epsilon we account for.
    if not mechanism.check(sensitivity, epsilon):
        raise ValueError(f"geometric mechanism does not meet epsilon={epsilon}")
    return mechanism


def draw_noise(true_count: int, epsilon: float, sensitivity: int = 1) -> int:
    """`true_count` plus fresh discrete Laplace noise of scale sensitivity/epsilon.

    Call once per cell per release and store the result: a second draw for the same release
    would spend the budget again and let repeated requests average the noise away.
    """
    noisy: int = _mechanism(epsilon, sensitivity)(true_count)
    return noisy
