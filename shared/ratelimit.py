"""One token-bucket limiter for every service, and one way to say who a client is.

Buckets live in memory, per replica (no shared store on the hot path: with N replicas a client may
reach N times its rate; the limit protects each replica). Keys are hashed under a per-process random
salt, so the table cannot be matched against logs or another replica, and the table is bounded.

`client_key` names a client by its address: the peer's, or the forwarded one only when the peer is a
configured proxy (`TRUSTED_PROXIES`), and an IPv6 client by its /64 (one subscriber's whole prefix).
"""

from __future__ import annotations

import hashlib
import ipaddress
import math
import secrets
import time
from collections import OrderedDict
from collections.abc import Callable, Iterable
from typing import Any

from .http import Problem

__all__ = [
    "RATE_LIMITED",
    "SUBSCRIPTIONS_PER_MINUTE",
    "TokenBucket",
    "client_key",
    "enforce_rate",
    "parse_networks",
]

# New subscriptions (feeds, e-mail alerts) one client may create per minute: enough for a household.
SUBSCRIPTIONS_PER_MINUTE = 10

# `responses=RATE_LIMITED` on a route that calls `enforce_rate`, so its OpenAPI says it can answer 429.
RATE_LIMITED: dict[int | str, dict[str, Any]] = {
    429: {"description": "Too many requests from this client; retry after the Retry-After seconds"}
}

Network = ipaddress.IPv4Network | ipaddress.IPv6Network


class TokenBucket:
    """`take(key)` spends one token, or says how long to wait; buckets refill evenly.

    `rate_per_minute` tokens refill per minute up to `burst` (default: a minute's worth). Both can be
    given per call too (ingest gives each council system its own rate).
    """

    def __init__(
        self,
        rate_per_minute: float = 60.0,
        burst: float | None = None,
        *,
        max_keys: int = 100_000,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.rate_per_minute, self.burst = rate_per_minute, burst
        self.max_keys, self._clock = max_keys, clock
        self._salt = secrets.token_bytes(16)
        self._buckets: OrderedDict[bytes, tuple[float, float]] = OrderedDict()

    def _key(self, key: str) -> bytes:
        return hashlib.sha256(self._salt + key.encode()).digest()

    def take(self, key: str, rate_per_minute: float | None = None, burst: float | None = None) -> float:
        """0.0 when allowed (one token spent), else the seconds until a token is there."""
        rate = (rate_per_minute or self.rate_per_minute) / 60.0
        # A per-call rate without a burst allows a minute's worth of that rate.
        size = float(burst or rate_per_minute or self.burst or self.rate_per_minute)
        hashed, now = self._key(key), self._clock()
        tokens, then = self._buckets.pop(hashed, (size, now))
        tokens = min(size, tokens + (now - then) * rate)
        wait = 0.0
        if tokens >= 1.0:
            tokens -= 1.0
        else:
            wait = (1.0 - tokens) / rate
        self._buckets[hashed] = (tokens, now)
        while len(self._buckets) > self.max_keys:
            self._buckets.popitem(last=False)  # the least recently seen go first
        return wait

    def allow(self, key: str) -> tuple[bool, int]:
        """(allowed, whole seconds until the next token when refused)."""
        wait = self.take(key)
        return wait == 0.0, 0 if wait == 0.0 else self.retry_after_s(wait)

    @staticmethod
    def retry_after_s(wait_s: float) -> int:
        return max(1, math.ceil(wait_s))

    @staticmethod
    def retry_after(wait_s: float) -> str:
        """The `Retry-After` header value for a wait."""
        return str(max(1, math.ceil(wait_s)))


def parse_networks(value: str | Iterable[str]) -> list[Network]:
    """`"10.0.0.0/8, 2001:db8::/32"` (or a list) -> networks; a bare address is its own /32 or /128."""
    items = value.split(",") if isinstance(value, str) else value
    return [ipaddress.ip_network(item.strip(), strict=False) for item in items if item.strip()]


def _address(text: str) -> ipaddress.IPv4Address | ipaddress.IPv6Address | None:
    try:
        address = ipaddress.ip_address(text.strip().strip("[]").split("%")[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


def client_key(request: Any, settings: Any = None) -> str:
    """Who is asking, for rate limits and connection caps (never stored).

    `X-Forwarded-For` counts only when the peer is one of `settings.trusted_proxies`; then the
    right-most address that is not itself a trusted proxy is the client. IPv6 clients are keyed by
    their /64, since one household or host can use the whole prefix.
    """
    trusted: list[Network] = list(getattr(settings, "trusted_proxy_networks", lambda: [])())
    peer = _address(request.client.host) if request.client else None
    address = peer
    if peer is not None and any(peer in net for net in trusted):
        forwarded = ",".join(request.headers.getlist("x-forwarded-for"))
        for hop in reversed([h for h in forwarded.split(",") if h.strip()]):
            candidate = _address(hop)
            if candidate is None:
                break  # a garbled chain: trust nothing before it
            address = candidate
            if not any(candidate in net for net in trusted):
                break
    if address is None:
        return ""  # no address (a test client, a Unix socket): one shared bucket
    if isinstance(address, ipaddress.IPv6Address):
        return str(ipaddress.IPv6Network(f"{address}/64", strict=False))
    return str(address)


def enforce_rate(request: Any, name: str, rate_per_minute: float, burst: float) -> None:
    """Spend one of this client's tokens for `name` (e.g. "subscriptions"), or answer 429."""
    runtime = request.app.state.runtime
    limiter = runtime.limiters.setdefault(name, TokenBucket(rate_per_minute, burst))
    if wait := limiter.take(client_key(request, runtime.settings)):
        raise Problem(
            429,
            "Too many requests",
            f"at most {rate_per_minute:g} per minute from one client; try again shortly",
            headers={"Retry-After": TokenBucket.retry_after(wait)},
        )
