"""API keys are random and stored hashed; the token bucket limits each key."""

from __future__ import annotations

from services.ingest.auth import KEY_PREFIX, RateLimiter, generate_key, hash_key


def test_keys_random_and_hashed():
    a, b = generate_key(), generate_key()
    assert a != b and a.startswith(KEY_PREFIX) and len(a) > 40
    assert hash_key(a) == hash_key(a) and hash_key(a) != hash_key(b) and a not in hash_key(a)


def test_token_bucket():
    now = [0.0]
    limiter = RateLimiter(clock=lambda: now[0])
    assert all(limiter.take("k", 3) == 0.0 for _ in range(3))
    wait = limiter.take("k", 3)
    assert wait > 0 and RateLimiter.retry_after(wait) == "20"
    assert limiter.take("other", 3) == 0.0  # per key
    now[0] += 20.0
    assert limiter.take("k", 3) == 0.0
