"""Noise: OpenDP's discrete Laplace at the right scale, and the differencing attacker of docs/privacy.md."""

import datetime as dt
import math
import random
import statistics

import pytest

from services.aggregator.disclosure import (
    DisclosurePolicy,
    UnitInfo,
    compute_person_release,
    draw_noise,
)

BAND_RANK = {None: 0, "some": 1, "several": 2, "many": 3}
MONTHS = [f"2024-{m:02d}" for m in range(1, 13)]
AFTER = dt.datetime(2025, 2, 1, tzinfo=dt.UTC)


def _variance(epsilon):
    alpha = math.exp(-epsilon)
    return 2 * alpha / (1 - alpha) ** 2


@pytest.mark.parametrize("epsilon", [0.25, 0.5])
def test_draw_noise_is_discrete_laplace_at_scale_one_over_epsilon(epsilon):
    noise = [draw_noise(10, epsilon) - 10 for _ in range(5000)]
    alpha = math.exp(-epsilon)
    assert all(isinstance(n, int) for n in noise)
    assert abs(statistics.fmean(noise)) < 0.5
    assert abs(statistics.pvariance(noise) / _variance(epsilon) - 1) < 0.15
    assert abs(noise.count(0) / len(noise) - (1 - alpha) / (1 + alpha)) < 0.03


def _seeded_sampler(rng):
    """Discrete Laplace as the difference of two geometrics: OpenDP's distribution, but seedable."""

    def sample(true, epsilon):
        log_alpha = -epsilon

        def geometric():
            return int(math.log(1.0 - rng.random()) / log_alpha)

        return true + geometric() - geometric()

    return sample


def test_seeded_sampler_matches_the_opendp_distribution():
    rng = random.Random(7)
    noise = [_seeded_sampler(rng)(0, 0.25) for _ in range(20000)]
    assert abs(statistics.pvariance(noise) / _variance(0.25) - 1) < 0.05


def _attacker_advantage(policy, background, trials=2000, seed=20240101):
    """The attacker knows the unit's background count and that the neighbour was added in one
    month, sees all twelve monthly releases and guesses the month with the highest band."""
    rng = random.Random(seed)
    sampler = _seeded_sampler(rng)
    units = {"u": UnitInfo(60, "W")}
    hits = 0
    for _ in range(trials):
        secret = rng.randrange(12)
        ranks = []
        for month, period in enumerate(MONTHS):
            count = background + (month == secret)
            result = compute_person_release(
                period, {("u", "isolation"): count}, units, policy, now=AFTER, sampler=sampler
            )
            bands = [c.band for c in result.published if c.category == "isolation"]
            ranks.append(BAND_RANK[bands[0] if bands else None])
        best = [m for m, r in enumerate(ranks) if r == max(ranks)]
        hits += rng.choice(best) == secret
    return hits / trials - 1 / 12


@pytest.mark.parametrize("background", [7, 14])
def test_differencing_attacker_gains_little_with_noise(background):
    assert _attacker_advantage(DisclosurePolicy(), background) <= 0.05


@pytest.mark.parametrize("background", [7, 14])
def test_differencing_attacker_wins_without_noise(background):
    assert _attacker_advantage(DisclosurePolicy(noise=False), background, trials=200) > 0.8


def test_differencing_attacker_wins_if_the_noise_is_too_small():
    assert _attacker_advantage(DisclosurePolicy(epsilon_per_release=6.0), 7, trials=500) > 0.2
