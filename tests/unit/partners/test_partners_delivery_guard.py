"""Webhook delivery: the checked address is the one connected to, translated private forms are refused,
the answer is read only so far, and one delivery has one total deadline (issue 11, High 3)."""

from __future__ import annotations

import asyncio
import ipaddress
import socket

import pytest

from services.partners import delivery
from services.partners.settings import PartnersSettings
from services.partners.signing import new_secret
from shared.urls import UnsafeUrl, check_webhook_url, is_public, resolve_public


@pytest.mark.parametrize(
    "address",
    [
        "127.0.0.1",
        "10.0.0.1",
        "169.254.169.254",
        "::1",
        "fd00::1",
        "::ffff:10.0.0.1",  # IPv4-mapped
        "::ffff:127.0.0.1",
        "64:ff9b::a00:1",  # NAT64 of 10.0.0.1
        "64:ff9b::7f00:1",  # NAT64 of 127.0.0.1
        "64:ff9b::a9fe:a9fe",  # NAT64 of the cloud metadata address
        "64:ff9b:1::a00:1",  # local-use NAT64 prefix
        "2002:a00:1::1",  # 6to4 of 10.0.0.1
        "2002:7f00:1::1",  # 6to4 of 127.0.0.1
        "2001:0:4136:e378:8000:63bf:f5ff:fffe",  # Teredo, client 10.0.0.1
    ],
)
def test_private_addresses_and_their_translations_are_refused(address: str) -> None:
    assert not is_public(ipaddress.ip_address(address))
    with pytest.raises(UnsafeUrl):
        check_webhook_url(
            f"http://[{address}]/hook" if ":" in address else f"http://{address}/hook",
            allow_loopback=False,
            require_https=False,
        )


@pytest.mark.parametrize(
    "address", ["8.8.8.8", "2001:4860:4860::8888", "64:ff9b::808:808", "2002:808:808::1"]
)
def test_public_addresses_and_their_translations_pass(address: str) -> None:
    assert is_public(ipaddress.ip_address(address))


def _settings(**overrides: object) -> PartnersSettings:
    values: dict[str, object] = {
        "database_url": "postgresql://x/y",
        "kafka_bootstrap_servers": "k:1",
        "webhook_allow_loopback": True,
        "webhook_timeout_s": 2.0,
    }
    values.update(overrides)
    return PartnersSettings(_env_file=None, **values)


def _delivery(url: str) -> dict:
    return {"id": 1, "url": url, "body": '{"type": "test"}', "message_id": "msg_1", "secret": new_secret()}


class Receiver:
    """A loopback HTTP server whose answer the test chooses; it records each request's head."""

    def __init__(self, answer) -> None:
        self.answer, self.requests = answer, []

    async def __aenter__(self) -> Receiver:
        self.server = await asyncio.start_server(self._handle, "127.0.0.1", 0)
        self.port = self.server.sockets[0].getsockname()[1]
        return self

    async def __aexit__(self, *exc: object) -> None:
        self.server.close()

    async def _handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        try:
            head = await reader.readuntil(b"\r\n\r\n")
            self.requests.append(head.decode("latin-1"))
            await self.answer(writer)
        except (ConnectionError, asyncio.IncompleteReadError):
            pass
        finally:
            writer.close()


async def _ok(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
    await writer.drain()


async def _drip(writer: asyncio.StreamWriter) -> None:
    writer.write(b"HTTP/1.1 200 OK\r\nContent-Length: 100000\r\n\r\n")
    while True:  # one byte at a time, each well inside any per-read timeout
        writer.write(b".")
        await writer.drain()
        await asyncio.sleep(0.3)


async def _flood(writer: asyncio.StreamWriter) -> None:
    size = 8 * 1024 * 1024
    writer.write(f"HTTP/1.1 200 OK\r\nContent-Length: {size}\r\n\r\n".encode())
    chunk = b"x" * 65536
    for _ in range(size // len(chunk)):
        writer.write(chunk)
        await writer.drain()


@pytest.fixture
async def resolver(monkeypatch: pytest.MonkeyPatch):
    """`rebind.invalid` resolves once to what the test says; a second look-up fails the test."""
    answers: list[str] = []
    loop = asyncio.get_running_loop()
    original = loop.getaddrinfo

    async def getaddrinfo(host, port, *args, **kwargs):
        if host != "rebind.invalid":
            return await original(host, port, *args, **kwargs)
        assert answers, "the name was resolved again after it was checked"
        address = answers.pop(0)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    return answers


async def test_delivery_connects_to_the_address_it_checked(resolver: list[str]) -> None:
    async with Receiver(_ok) as receiver:
        resolver.append("127.0.0.1")
        clients = delivery.Clients(_settings())
        outcome = await delivery.send(
            clients, _settings(), _delivery(f"http://rebind.invalid:{receiver.port}/h")
        )
        await clients.aclose()
    assert outcome.ok, outcome
    assert f"host: rebind.invalid:{receiver.port}" in receiver.requests[0].lower()


async def test_a_name_that_now_points_inside_is_not_contacted(resolver: list[str]) -> None:
    async with Receiver(_ok) as receiver:
        resolver.append("10.0.0.1")  # registered when public; now private
        settings = _settings(webhook_allow_loopback=False)
        clients = delivery.Clients(settings)
        outcome = await delivery.send(
            clients, settings, _delivery(f"http://rebind.invalid:{receiver.port}/h")
        )
        await clients.aclose()
    assert not outcome.ok and "unsafe URL" in (outcome.error or "")
    assert receiver.requests == []


async def test_resolve_public_refuses_when_any_answer_is_private(monkeypatch: pytest.MonkeyPatch) -> None:
    loop = asyncio.get_running_loop()

    async def getaddrinfo(host, port, *args, **kwargs):
        return [
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("93.184.215.14", port)),
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("64:ff9b::a00:1", port, 0, 0)),
        ]

    monkeypatch.setattr(loop, "getaddrinfo", getaddrinfo)
    with pytest.raises(UnsafeUrl):
        await resolve_public("mixed.invalid", 443, allow_loopback=False)


async def test_a_dripping_receiver_meets_the_total_deadline() -> None:
    async with Receiver(_drip) as receiver:
        settings = _settings(webhook_timeout_s=1.0)
        clients = delivery.Clients(settings)
        outcome = await delivery.send(clients, settings, _delivery(f"http://127.0.0.1:{receiver.port}/h"))
        await clients.aclose()
    assert not outcome.ok
    assert "no complete answer within 1s" in (outcome.error or "")


async def test_only_the_start_of_a_large_answer_is_read() -> None:
    async with Receiver(_flood) as receiver:
        settings = _settings(webhook_max_response_bytes=16 * 1024, webhook_timeout_s=30)
        clients = delivery.Clients(settings)
        outcome = await delivery.send(clients, settings, _delivery(f"http://127.0.0.1:{receiver.port}/h"))
        await clients.aclose()
    assert outcome.ok
    assert 16 * 1024 <= outcome.read_bytes < 1024 * 1024


def test_a_batch_lease_outlasts_its_slowest_partner() -> None:
    settings = _settings(webhook_batch_size=50, webhook_partner_concurrency=8, webhook_timeout_s=5.0)
    # 50 deliveries to one partner go 8 at a time: 7 turns of at most 5 s each, before anyone else may
    # claim them again (no double delivery because one receiver is slow).
    assert delivery.lease_s(settings) >= 7 * 5.0
