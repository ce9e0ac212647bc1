"""Helpers shared by the test suite.

* :class:`RawClient` speaks to a server over a plain socket with exact bytes: for pipelining,
  overlong lines, garbage, NUL bytes, invalid UTF-8 and LF-only line ends, where ``poplib``
  would get in the way.
* :func:`feed` drives a sans-IO :class:`fakepop3.Session` one command at a time.
* ``thread_server`` is a thread-hosted :class:`fakepop3.POP3Server` with two users, whose
  internal errors fail the test that caused them.
"""

from __future__ import annotations

import poplib
import socket
from collections.abc import Iterator
from types import TracebackType
from typing import cast, final

import pytest

from fakepop3 import POP3Server, Session
from fakepop3.protocol import Action, Close, Send

USERS = {"alice": "secret", "bob": "hunter2"}

#: How long a test waits for a reply before it fails (a deadline, never a synchronisation sleep).
DEADLINE = 10.0


@final
class RawClient:
    """A POP3 client on a bare socket: sends exactly the bytes given, reads exact replies."""

    def __init__(self, host: str, port: int, *, timeout: float = DEADLINE) -> None:
        self.sock = socket.create_connection((host, port), timeout=timeout)
        self.buffer = b""
        self.greeting = self.read_line()

    def __enter__(self) -> RawClient:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def close(self) -> None:
        self.sock.close()

    def send(self, data: bytes) -> None:
        """Send ``data`` as it is (no line end is added)."""
        self.sock.sendall(data)

    def _fill(self) -> bool:
        chunk = self.sock.recv(1 << 20)
        if not chunk:
            return False
        self.buffer += chunk
        return True

    def read_until(self, marker: bytes) -> bytes:
        """Read up to and including ``marker``; ``ConnectionError`` if the server closes first."""
        start = 0
        while True:
            end = self.buffer.find(marker, start)
            if end >= 0:
                end += len(marker)
                data, self.buffer = self.buffer[:end], self.buffer[end:]
                return data
            start = max(0, len(self.buffer) - len(marker) + 1)
            if not self._fill():
                raise ConnectionError(
                    f"server closed the connection before {marker!r}; got {self.buffer[:200]!r}"
                )

    def read_line(self) -> bytes:
        """One reply line, with its CRLF."""
        return self.read_until(b"\r\n")

    def read_multiline(self) -> tuple[bytes, bytes]:
        """A multi-line reply: (status line, body up to and including the final ``.`` CRLF)."""
        status = self.read_line()
        if not status.startswith(b"+OK"):
            return status, b""
        while len(self.buffer) < 3:
            if not self._fill():
                raise ConnectionError(f"server closed the connection after {status!r}")
        if self.buffer.startswith(b".\r\n"):  # an empty body (a stuffed body never starts so)
            self.buffer = self.buffer[3:]
            return status, b".\r\n"
        return status, self.read_until(b"\r\n.\r\n")

    def command(self, line: bytes) -> bytes:
        """Send ``line`` CRLF and return the status line of the reply."""
        self.send(line + b"\r\n")
        return self.read_line()

    def login(self, user: str = "alice", password: str = "secret") -> None:
        assert self.command(b"USER " + user.encode()).startswith(b"+OK")
        reply = self.command(b"PASS " + password.encode())
        assert reply.startswith(b"+OK"), reply

    def read_to_eof(self) -> bytes:
        """Everything the server sends until it closes the connection."""
        while self._fill():
            pass
        data, self.buffer = self.buffer, b""
        return data


def feed(session: Session, line: bytes) -> list[Action]:
    """Give the session one command line and return its actions (exactly one line must be handled)."""
    session.receive_data(line)
    actions = session.next_actions()
    assert actions is not None, f"the session did not handle {line!r}"
    assert session.next_actions() is None, f"{line!r} produced more than one reply"
    return actions


def sent(actions: list[Action]) -> bytes:
    """Every byte the transport would write for these actions."""
    return b"".join(bytes(b) for a in actions if isinstance(a, Send) for b in a.buffers)


def closes(actions: list[Action]) -> str | None:
    """The reason of the ``Close`` action among these actions, or None."""
    for action in actions:
        if isinstance(action, Close):
            return action.reason
    return None


def login(client: poplib.POP3, user: str = "alice", password: str = "secret") -> None:
    """USER/PASS with poplib, asserting both succeed."""
    assert client.user(user).startswith(b"+OK")
    assert client.pass_(password).startswith(b"+OK")


def shortcmd(client: poplib.POP3, line: str) -> bytes:
    """Send any command line with poplib and return its status line (``error_proto`` on ``-ERR``)."""
    return cast(bytes, client._shortcmd(line))  # type: ignore[attr-defined]


def list_one(client: poplib.POP3, number: int) -> bytes:
    """``LIST n`` with poplib (its stubs claim a multi-line result)."""
    return cast(bytes, client.list(number))


@pytest.fixture
def thread_server() -> Iterator[POP3Server]:
    """A thread-hosted server (users alice/secret and bob/hunter2); server-side errors fail the test."""
    with POP3Server(users=USERS) as server:
        yield server
    server.raise_errors()
