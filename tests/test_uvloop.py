"""uvloop (the ``speed`` extra): the thread-hosted server and the program on a uvloop loop.

Each test checks that the sessions really ran on uvloop (the loop type seen from inside the
server), then drives them with ``poplib`` over real sockets.  Without uvloop (Windows, or a
bare install) only the error tests run: they hide the module whether it is installed or not.
"""

from __future__ import annotations

import asyncio
import importlib.util
import poplib
import socket
import ssl
import sys
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from fakepop3.cli import main
from fakepop3.history import SessionRecord
from fakepop3.server import POP3Server, uvloop_factory

from .test_cli import Standalone, launch

__all__ = ["launch"]  # the fixture, shared with test_cli

HAVE_UVLOOP = importlib.util.find_spec("uvloop") is not None
needs_uvloop = pytest.mark.skipif(not HAVE_UVLOOP, reason="uvloop is not installed")
INSTALL_HINT = "pip install 'fakepop3[speed]'"
PASSWORD = "secret"


def one_megabyte() -> bytes:
    """A 1 MB message whose lines include dot-stuffed ones and a lone dot."""
    head = b"From: big@example.com\r\nSubject: one megabyte\r\n\r\n"
    lines = [b".", b"..two dots", b".starts with a dot"]
    lines += [b"line %06d " % i + b"x" * (i % 70) for i in range(30000)]
    body = b"\r\n".join(lines) + b"\r\n"
    message = head + body
    return message[: 1024 * 1024 - 2].rsplit(b"\r\n", 1)[0] + b"\r\n"


@pytest.fixture
def loop_types() -> list[str]:
    """Filled by ``record_loop``: the type of the loop each session ended on."""
    return []


def record_loop(into: list[str]) -> Callable[[SessionRecord], None]:
    def on_session_end(record: SessionRecord) -> None:
        loop = type(asyncio.get_running_loop())
        into.append(f"{loop.__module__}.{loop.__qualname__}")

    return on_session_end


@pytest.fixture
def server(loop_types: list[str]) -> Iterator[POP3Server]:
    pytest.importorskip("uvloop")
    with POP3Server(
        users={"alice": PASSWORD},
        tls=True,
        loop_factory=uvloop_factory(),
        on_session_end=record_loop(loop_types),
    ) as server:
        yield server
        server.raise_errors()


# --- the thread-hosted server ------------------------------------------------------------
@needs_uvloop
def test_retr_of_one_megabyte_is_byte_exact(server: POP3Server, loop_types: list[str]) -> None:
    big = one_megabyte()
    assert len(big) > 1000 * 1000 and big.count(b"\r\n.") >= 3
    server.mailbox("alice").add(big)
    client = server.client("alice", PASSWORD)
    assert client.stat() == (1, len(big))
    _, lines, octets = client.retr(1)
    assert b"\r\n".join(lines) + b"\r\n" == big
    assert octets == len(big)
    assert client.quit().startswith(b"+OK")
    server.wait_for_sessions(1)
    assert loop_types == ["uvloop.Loop"]
    assert [c.command for c in server.history.sessions[0].commands] == [
        "USER",
        "PASS",
        "STAT",
        "RETR",
        "QUIT",
    ]


@needs_uvloop
def test_stls_on_uvloop(server: POP3Server, loop_types: list[str]) -> None:
    server.mailbox("alice").add(b"Subject: secret\r\n\r\nover TLS\r\n")
    assert server.tls is not None
    client = poplib.POP3(server.host, server.port, timeout=10)
    assert client.stls(server.tls.client_context()).startswith(b"+OK")
    assert isinstance(client.sock, ssl.SSLSocket) and client.sock.getpeercert()
    assert client.user("alice").startswith(b"+OK")
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.retr(1)[1] == [b"Subject: secret", b"", b"over TLS"]
    assert client.quit().startswith(b"+OK")
    server.wait_for_sessions(1)
    [record] = server.history.sessions
    assert record.tls and record.end_reason == "quit"
    assert loop_types == ["uvloop.Loop"]


@needs_uvloop
def test_delay_fault_on_uvloop(server: POP3Server, loop_types: list[str]) -> None:
    message = b"Subject: hi\r\n\r\nhello\r\n"
    server.mailbox("alice").add(message)
    delayed = server.faults.on("STAT", times=1).delay(0.05)
    client = server.client("alice", PASSWORD)
    assert client.stat() == (1, len(message))
    assert delayed.fired == 1
    assert server.history.filter("STAT")[0].fault == delayed.description
    # A client that hangs up during a long delay ends its session (reading goes on meanwhile).
    server.faults.on("LIST", times=1).delay(60)
    client.sock.settimeout(0.5)
    with pytest.raises(socket.timeout):
        client.list()
    client.close()
    server.wait_for_sessions(1)
    assert server.history.sessions[0].end_reason == "drop"
    assert loop_types == ["uvloop.Loop"]


def test_a_failing_loop_factory_is_raised_by_start() -> None:
    def broken() -> asyncio.AbstractEventLoop:
        raise RuntimeError("no loop today")

    server = POP3Server(users={"alice": PASSWORD}, loop_factory=broken)
    for _ in range(2):  # not "already running" the second time: nothing was left half-started
        with pytest.raises(RuntimeError, match="no loop today"):
            server.start()
        assert server.port == 0 and not server._sockets  # the sockets it bound were closed
    assert repr(server).startswith("<POP3Server stopped")


# --- uvloop missing ---------------------------------------------------------------------
def test_uvloop_factory_without_uvloop_says_how_to_install_it(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)  # import uvloop raises ImportError
    with pytest.raises(RuntimeError, match="uvloop is not installed") as info:
        uvloop_factory()
    assert str(info.value).endswith(INSTALL_HINT)


def test_cli_without_uvloop_exits_2_with_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path
) -> None:
    monkeypatch.setitem(sys.modules, "uvloop", None)
    ready = tmp_path / "ready.json"
    assert main(["--port", "0", "--uvloop", "--ready-file", str(ready)]) == 2
    out, err = capsys.readouterr()
    assert err.splitlines() == [
        "fakepop3: error: --uvloop: uvloop is not installed (it does not run on Windows): "
        + INSTALL_HINT
    ]
    assert out == "" and not ready.exists()


# --- the program ------------------------------------------------------------------------
@needs_uvloop
@pytest.mark.skipif(sys.platform == "win32", reason="the program's tests use POSIX signals")
def test_cli_serves_on_uvloop(launch: Callable[..., Standalone]) -> None:
    app = launch("--uvloop", "--user", f"alice:{PASSWORD}", "--generate", "alice=3")
    client = app.client("alice", PASSWORD)
    count, size = client.stat()
    assert count == 3 and size > 0
    _, lines, octets = client.retr(2)
    assert lines and octets > 0
    assert client.quit().startswith(b"+OK")
    commands = [e["command"] for e in app.wait_for_session_end(1) if e["event"] == "command"]
    assert commands == ["USER", "PASS", "STAT", "RETR", "QUIT"]
    assert app.stop() == 0
    out, err = app.output()
    assert "  event loop: uvloop.Loop\n" in out and "fakepop3: stopped" in out
    assert "Traceback" not in err
