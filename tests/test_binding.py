"""Listening on every address of a host name with one port (``fakepop3._binding``)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from fakepop3._binding import listen


class FakeServer:
    def __init__(self, address: str, port: int) -> None:
        self.address, self.port, self.closed = address, port, False
        self.sockets = [self]

    def getsockname(self) -> tuple[str, int]:
        return (self.address, self.port)

    def close(self) -> None:
        self.closed = True


class FakeLoop:
    """Resolves any name to two addresses; binding fails as ``failures`` says, in order."""

    def __init__(self, failures: list[int | None]) -> None:
        self.failures, self.made, self.next_port = failures, [], 40000
        self.resolved: list[str] = []

    async def getaddrinfo(self, host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        self.resolved.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", 0, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", 0)),  # listed twice
        ]

    async def create_server(self, factory: Any, host: str, port: int, **kwargs: Any) -> Any:
        failure = self.failures.pop(0) if self.failures else None
        if failure is not None:
            raise OSError(failure, "refused by the test")
        if port == 0:
            self.next_port += 1
            port = self.next_port
        server = FakeServer(host, port)
        self.made.append(server)
        return server


def run(loop: FakeLoop) -> list[Any]:
    return asyncio.run(listen(loop, asyncio.Protocol, "localhost", 0))  # type: ignore[arg-type]


def test_every_address_takes_the_port_the_first_one_got() -> None:
    servers = run(FakeLoop([]))
    assert [s.getsockname() for s in servers] == [("::1", 40001), ("127.0.0.1", 40001)]


def test_a_port_taken_on_another_address_means_a_new_port_for_all() -> None:
    loop = FakeLoop([None, errno.EADDRINUSE])  # ::1 gets 40001, 127.0.0.1 has it taken
    servers = run(loop)
    assert [s.getsockname() for s in servers] == [("::1", 40002), ("127.0.0.1", 40002)]
    assert loop.made[0].closed and not any(s.closed for s in servers)


def test_other_bind_errors_are_raised_with_nothing_left_open() -> None:
    loop = FakeLoop([None, errno.EACCES])
    with pytest.raises(OSError) as raised:
        run(loop)
    assert raised.value.errno == errno.EACCES
    assert all(s.closed for s in loop.made)


def test_a_port_given_is_passed_through_as_it_is() -> None:
    loop = FakeLoop([])
    servers = asyncio.run(listen(loop, asyncio.Protocol, "localhost", 1100))  # type: ignore[arg-type]
    assert [s.getsockname() for s in servers] == [("localhost", 1100)]


def test_a_host_that_never_gets_one_port_free_for_all_fails_in_the_end() -> None:
    loop = FakeLoop([None, errno.EADDRINUSE] * 20)
    with pytest.raises(OSError) as raised:
        run(loop)
    assert raised.value.errno == errno.EADDRINUSE
    assert len(loop.made) == 20 and all(s.closed for s in loop.made)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
def test_an_address_is_bound_as_it_is_without_a_lookup(host: str) -> None:
    """A lookup runs in asyncio's thread pool: it would double the cost of starting a server."""
    loop = FakeLoop([])
    servers = asyncio.run(listen(loop, asyncio.Protocol, host, 0))  # type: ignore[arg-type]
    assert [s.getsockname() for s in servers] == [(host, 40001)]
    assert loop.resolved == []
