"""The shared limiter and client key (issue 11, Low 12): forwarded headers only from configured proxies,
IPv6 clients by /64, one token bucket for every service."""

from __future__ import annotations

import pytest
from starlette.requests import Request

from shared.ratelimit import TokenBucket, client_key
from shared.settings import CommonSettings


def _request(peer: str, forwarded: str | None = None) -> Request:
    headers = [(b"x-forwarded-for", forwarded.encode())] if forwarded else []
    return Request({"type": "http", "client": (peer, 1234), "headers": headers, "method": "GET", "path": "/"})


def _settings(proxies: str = "") -> CommonSettings:
    return CommonSettings(
        _env_file=None,
        database_url="postgresql://x/y",
        kafka_bootstrap_servers="k:1",
        trusted_proxies=proxies,
    )


def test_forwarded_for_is_ignored_from_an_untrusted_peer() -> None:
    assert client_key(_request("203.0.113.5", "198.51.100.7"), _settings()) == "203.0.113.5"
    assert client_key(_request("203.0.113.5", "198.51.100.7"), _settings("10.0.0.0/8")) == "203.0.113.5"


def test_forwarded_for_from_a_trusted_proxy_names_the_client() -> None:
    settings = _settings("10.0.0.0/8")
    # The left-most entry is whatever the client claimed; the right-most untrusted hop is the client.
    assert client_key(_request("10.0.0.2", "1.2.3.4, 198.51.100.7, 10.0.0.9"), settings) == "198.51.100.7"


def test_ipv6_clients_are_keyed_by_their_64() -> None:
    settings = _settings()
    one = client_key(_request("2001:db8:1:2::1"), settings)
    other = client_key(_request("2001:db8:1:2:ffff:ffff:ffff:ffff"), settings)
    elsewhere = client_key(_request("2001:db8:1:3::1"), settings)
    assert one == other == "2001:db8:1:2::/64"
    assert elsewhere != one
    assert client_key(_request("::ffff:198.51.100.7"), settings) == "198.51.100.7"


def test_bad_proxy_setting_refuses_to_start() -> None:
    with pytest.raises(ValueError):
        _settings("not-a-network")


def test_token_bucket_spends_and_refills() -> None:
    now = [0.0]
    bucket = TokenBucket(rate_per_minute=60, burst=2, clock=lambda: now[0])
    assert bucket.take("a") == 0.0 and bucket.take("a") == 0.0
    assert bucket.take("a") > 0.0
    assert bucket.take("b") == 0.0  # each key its own bucket
    now[0] += 1.0
    assert bucket.take("a") == 0.0
    # per-call rates, as ingest gives each council system its own
    assert bucket.take("system", 1) == 0.0 and bucket.take("system", 1) > 30


def test_enforce_rate_answers_429_after_the_burst_for_one_client_only() -> None:
    from types import SimpleNamespace

    from shared.http import Problem
    from shared.ratelimit import enforce_rate

    runtime = SimpleNamespace(limiters={}, settings=_settings())
    app = SimpleNamespace(state=SimpleNamespace(runtime=runtime))

    def request(peer: str) -> Request:
        return Request(
            {"type": "http", "client": (peer, 1), "headers": [], "method": "POST", "path": "/", "app": app}
        )

    for _ in range(3):
        enforce_rate(request("2001:db8::1"), "subscriptions", 3, 3)
    with pytest.raises(Problem) as refused:
        enforce_rate(request("2001:db8::ffff"), "subscriptions", 3, 3)  # the same /64
    assert refused.value.status == 429 and int(refused.value.headers["Retry-After"]) >= 1
    enforce_rate(request("198.51.100.7"), "subscriptions", 3, 3)


def test_feeds_subscription_routes_document_the_rate_limit() -> None:
    from services.docs import openapi

    paths = openapi("feeds")["paths"]
    assert "429" in paths["/v1/subscriptions"]["post"]["responses"]
    assert "429" in paths["/subscriptions"]["post"]["responses"]
