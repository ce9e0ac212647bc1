"""Listening on every address of a host name with one port (``fakepop3._binding``)."""

from __future__ import annotations

import asyncio
import errno
import socket
from typing import Any

import pytest

from fakepop3 import _binding
from fakepop3._binding import bind, listen


class FakeSocket:
    """A socket whose binds fail as ``failures`` says, in order; port 0 gets the next port."""

    made: list[FakeSocket]
    failures: list[int | None]
    next_port: int

    def __init__(self, family: int, kind: int, proto: int = 0) -> None:
        self.family, self.kind, self.closed, self.listening = family, kind, False, False
        self.address: tuple[Any, ...] = ()
        FakeSocket.made.append(self)

    def setsockopt(self, *args: object) -> None:
        pass

    def bind(self, address: tuple[Any, ...]) -> None:
        failure = FakeSocket.failures.pop(0) if FakeSocket.failures else None
        if failure is not None:
            raise OSError(failure, "refused by the test")
        if address[1] == 0:
            FakeSocket.next_port += 1
            address = (address[0], FakeSocket.next_port, *address[2:])
        self.address = address

    def listen(self, backlog: int) -> None:
        self.listening = True

    def setblocking(self, flag: bool) -> None:
        pass

    def getsockname(self) -> tuple[str, int]:
        return (self.address[0], self.address[1])

    def close(self) -> None:
        self.closed = True


@pytest.fixture
def fake(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Sockets made by FakeSocket; any name resolves to ::1 and 127.0.0.1 (the second one
    listed twice).  Returns the names looked up."""
    FakeSocket.made, FakeSocket.failures, FakeSocket.next_port = [], [], 40000
    resolved: list[str] = []

    def getaddrinfo(host: str, port: int, **kwargs: Any) -> list[tuple[Any, ...]]:
        resolved.append(host)
        return [
            (socket.AF_INET6, socket.SOCK_STREAM, 6, "", ("::1", port, 0, 0)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),
            (socket.AF_INET, socket.SOCK_STREAM, 6, "", ("127.0.0.1", port)),  # listed twice
        ]

    monkeypatch.setattr(_binding, "_socket", FakeSocket)
    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    return resolved


def names(sockets: list[Any]) -> list[tuple[str, int]]:
    return [s.getsockname() for s in sockets]


def test_every_address_takes_the_port_the_first_one_got(fake: list[str]) -> None:
    sockets = bind("localhost", 0)
    assert names(sockets) == [("::1", 40001), ("127.0.0.1", 40001)]
    assert all(s.listening for s in sockets)
    assert fake == ["localhost"]


def test_a_port_taken_on_another_address_means_a_new_port_for_all(fake: list[str]) -> None:
    FakeSocket.failures = [None, errno.EADDRINUSE]  # ::1 gets 40001, 127.0.0.1 has it taken
    sockets = bind("localhost", 0)
    assert names(sockets) == [("::1", 40002), ("127.0.0.1", 40002)]
    assert FakeSocket.made[0].closed and FakeSocket.made[1].closed
    assert not any(s.closed for s in sockets)


def test_other_bind_errors_are_raised_with_nothing_left_open(fake: list[str]) -> None:
    FakeSocket.failures = [None, errno.EACCES]
    with pytest.raises(OSError) as raised:
        bind("localhost", 0)
    assert raised.value.errno == errno.EACCES
    assert raised.value.strerror == "refused by the test"  # the system's text, not asyncio's
    assert all(s.closed for s in FakeSocket.made)


def test_a_port_given_is_bound_on_every_address(fake: list[str]) -> None:
    assert names(bind("localhost", 1100)) == [("::1", 1100), ("127.0.0.1", 1100)]


def test_a_port_given_that_is_taken_is_not_retried(fake: list[str]) -> None:
    FakeSocket.failures = [None, errno.EADDRINUSE]
    with pytest.raises(OSError) as raised:
        bind("localhost", 1100)
    assert raised.value.errno == errno.EADDRINUSE
    assert len(FakeSocket.made) == 2 and all(s.closed for s in FakeSocket.made)


def test_a_host_that_never_gets_one_port_free_for_all_fails_in_the_end(fake: list[str]) -> None:
    FakeSocket.failures = [None, errno.EADDRINUSE] * 20
    with pytest.raises(OSError) as raised:
        bind("localhost", 0)
    assert raised.value.errno == errno.EADDRINUSE
    assert len(FakeSocket.made) == 40 and all(s.closed for s in FakeSocket.made)


@pytest.mark.parametrize("host", ["127.0.0.1", "::1", "0.0.0.0"])
def test_an_address_is_bound_as_it_is_without_a_lookup(fake: list[str], host: str) -> None:
    """A lookup costs a system call (and, on a loop, a thread-pool round trip)."""
    assert names(bind(host, 0)) == [(host, 40001)]
    assert fake == []


def test_every_address_of_the_machine_for_an_empty_host(fake: list[str]) -> None:
    assert names(bind("", 110)) == [("::1", 110), ("127.0.0.1", 110)]
    assert fake == [None]  # what getaddrinfo takes for "every address"


def test_listen_serves_on_the_sockets_it_bound() -> None:
    """The real thing: bound with no loop, served on one; a client reaches it."""

    class Hello(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"hello\r\n")
            transport.close()

    async def main() -> bytes:
        servers = await listen(asyncio.get_running_loop(), Hello, "127.0.0.1", 0, backlog=5)
        port = servers[0].sockets[0].getsockname()[1]
        reader, writer = await asyncio.open_connection("127.0.0.1", port)
        line = await reader.readline()
        writer.close()
        for server in servers:
            server.close()
            await server.wait_closed()
        return line

    assert asyncio.run(main()) == b"hello\r\n"


def test_a_socket_bound_before_any_loop_queues_a_client_until_served() -> None:
    """What ``POP3Server.start()`` relies on: a client connects to a socket :func:`bind` made
    before a loop serves it, and is answered once the loop does."""
    sockets = bind("127.0.0.1", 0)
    port = sockets[0].getsockname()[1]
    client = socket.create_connection(("127.0.0.1", port), timeout=10)  # in the backlog

    class Hello(asyncio.Protocol):
        def connection_made(self, transport: asyncio.BaseTransport) -> None:
            assert isinstance(transport, asyncio.WriteTransport)
            transport.write(b"hello\r\n")
            transport.close()

    async def main() -> None:
        servers = await _binding.serve(asyncio.get_running_loop(), Hello, sockets)
        got = await asyncio.get_running_loop().run_in_executor(None, client.recv, 100)
        assert got == b"hello\r\n"
        for server in servers:
            server.close()
            await server.wait_closed()

    try:
        asyncio.run(main())
    finally:
        client.close()


def test_accepted_connections_have_tcp_nodelay() -> None:
    # asyncio sets TCP_NODELAY on an accepted connection only when the listening socket's proto
    # is IPPROTO_TCP; without it, Nagle's algorithm holds a small reply back while an earlier
    # one is unacknowledged (a pipelining client waits for the delayed ACK).
    from fakepop3 import POP3Server

    with POP3Server(users={"alice": "secret"}) as server:
        with socket.create_connection((server.host, server.port), timeout=10) as client:
            assert client.recv(100).startswith(b"+OK")  # the greeting: the connection is made
            [connection] = server._connections
            assert connection.transport is not None
            accepted = connection.transport.get_extra_info("socket")
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY) != 0
            client.sendall(b"QUIT\r\n")
            assert client.recv(100).startswith(b"+OK")
