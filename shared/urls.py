"""The guard on outbound URLs (webhooks, opportunity links): http(s), no credentials, public addresses only.

`check_webhook_url` validates a URL when it is registered. A deliverer must also call `resolve_public`
just before connecting and connect to the address it returns (not to the name again): a name can
resolve to a public address when checked and a private one a moment later (DNS rebinding).
Addresses that embed an IPv4 address (IPv4-mapped, NAT64 64:ff9b::/96 and 64:ff9b:1::/48, 6to4
2002::/16, Teredo) are judged by the address they embed.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from urllib.parse import urlsplit

__all__ = ["UnsafeUrl", "check_link_url", "check_webhook_url", "is_public", "resolve_public"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
_6TO4 = ipaddress.ip_network("2002::/16")


class UnsafeUrl(ValueError):
    pass


def _embedded_ipv4(address: ipaddress.IPv6Address) -> ipaddress.IPv4Address | None:
    """The IPv4 address an IPv6 address translates to, if it is one of the translation forms."""
    if address.ipv4_mapped is not None:
        return address.ipv4_mapped
    if any(address in net for net in _NAT64):
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    if address in _6TO4:
        return address.sixtofour
    if address.teredo is not None:
        return address.teredo[1]  # the client's address
    return None


def is_public(address: Address) -> bool:
    """A globally routable unicast address, also after undoing IPv6 translations of IPv4."""
    if isinstance(address, ipaddress.IPv6Address):
        embedded = _embedded_ipv4(address)
        if embedded is not None:
            return is_public(embedded)
    return address.is_global and not address.is_multicast


def _literal(host: str) -> Address | None:
    try:
        return ipaddress.ip_address(host.strip("[]").split("%")[0])
    except ValueError:
        return None


def _addresses(host: str) -> list[Address]:
    if (literal := _literal(host)) is not None:
        return [literal]
    try:
        infos = socket.getaddrinfo(host, None, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise UnsafeUrl(f"host {host!r} does not resolve") from exc
    return [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]


def _refuse_private(host: str, addresses: list[Address]) -> None:
    if not addresses:
        raise UnsafeUrl(f"host {host!r} does not resolve")
    for address in addresses:
        if not is_public(address):
            raise UnsafeUrl(f"{host} is a loopback, private or reserved address")


async def resolve_public(host: str, port: int, *, allow_loopback: bool) -> Address:
    """The address to connect to for `host`: every address it resolves to must be public (unless
    `allow_loopback`), and the caller connects to the one returned."""
    if (literal := _literal(host)) is not None:
        addresses = [literal]
    else:
        try:
            infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except (socket.gaierror, UnicodeError) as exc:
            raise UnsafeUrl(f"host {host!r} does not resolve") from exc
        addresses = [ipaddress.ip_address(str(info[4][0]).split("%")[0]) for info in infos]
    if not allow_loopback:
        _refuse_private(host, addresses)
    if not addresses:
        raise UnsafeUrl(f"host {host!r} does not resolve")
    return addresses[0]


def check_webhook_url(url: str, *, allow_loopback: bool, require_https: bool) -> str:
    """Return `url` if it may receive webhooks, else raise `UnsafeUrl` saying why."""
    try:
        parts = urlsplit(url)
        parts.port  # noqa: B018  (raises on a port out of range)
    except ValueError as exc:
        raise UnsafeUrl(f"the URL is not valid: {exc}") from exc
    allowed = ("https",) if require_https else ("http", "https")
    if parts.scheme not in allowed:
        raise UnsafeUrl(f"the URL scheme must be {' or '.join(allowed)}")
    if not parts.hostname:
        raise UnsafeUrl("the URL has no host")
    if parts.username or parts.password:
        raise UnsafeUrl("credentials in the URL are not accepted")
    if allow_loopback:
        return url
    _refuse_private(parts.hostname, _addresses(parts.hostname))
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
    if not is_public(address):
        raise UnsafeUrl(f"{host} is a loopback, private or reserved address")
    return url
