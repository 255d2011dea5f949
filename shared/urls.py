"""A basic guard on outbound URLs (webhooks, opportunity links): http(s), no credentials, no private hosts.

This is not a complete SSRF defence: a name can resolve to a public address when registered and a
private one later (DNS rebinding). Production deployments should also send webhooks through an
egress proxy or firewall with an allow-list (see docs/partners.md).
"""

from __future__ import annotations

import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["UnsafeUrl", "check_link_url", "check_webhook_url"]


class UnsafeUrl(ValueError):
    pass


def _addresses(host: str) -> list[ipaddress.IPv4Address | ipaddress.IPv6Address]:
    try:
        return [ipaddress.ip_address(host)]
    except ValueError:
        pass
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise UnsafeUrl(f"host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(info[4][0].split("%")[0]) for info in infos]


def check_webhook_url(url: str, *, allow_loopback: bool, require_https: bool) -> str:
    """Return `url` if it may receive webhooks, else raise `UnsafeUrl` saying why."""
    parts = urlsplit(url)
    allowed = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"the URL scheme must be {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not accepted")
    if allow_loopback:
        return url
    for address in _addresses(parts.hostname):
        if not address.is_global:
            raise UnsafeUrl(f"{parts.hostname} is a loopback, private or reserved address")
    return url


_LOCAL_NAMES = ("localhost", ".localhost", ".local", ".internal", ".lan", ".home.arpa")


def check_link_url(url: str) -> str:
    """Return `url` if it may be shown to residents as a link, else raise `UnsafeUrl` saying why.

    Like the webhook check, without the DNS look-up: the server never fetches these links (residents'
    browsers do), so the guard is against credentials and links into private networks.
    """
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UnsafeUrl("the URL scheme must be http or https")
    host = (parts.hostname or "").rstrip(".").lower()
    if not host:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not accepted")
    try:
        address = ipaddress.ip_address(host)
    except ValueError:
        if "." not in host or host == "localhost" or host.endswith(_LOCAL_NAMES[1:]):
            raise UnsafeUrl(f"{host} is not a public host name") from None
        return url
    if not address.is_global:
        raise UnsafeUrl(f"{host} is a loopback, private or reserved address")
    return url
