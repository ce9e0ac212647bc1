"""The server as users drive it: real ``poplib`` clients (and raw sockets) over real TCP."""

from __future__ import annotations

import asyncio
import hashlib
import poplib
import random
import re
import socket
import threading
from collections.abc import Callable

import pytest

from fakepop3 import History, POP3Server, ServerError, SessionRecord

from .conftest import USERS, RawClient, list_one, login, shortcmd

HELLO = b"Subject: Hello\r\n\r\nHi!\r\n"
DOTS = b"Subject: dots\r\n\r\n.leading\r\n.\r\n..two\r\nend\r\n"


def crlf_size(raw: bytes) -> int:
    """What LIST must say for ``raw``: bare LF counted as CRLF, a final CRLF added."""
    text = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if text and not text.endswith(b"\r\n"):
        text += b"\r\n"
    return len(text)


# --- start, stop, addresses -------------------------------------------------------------------
def test_port_0_reports_the_real_port() -> None:
    server = POP3Server()
    assert server.port == 0
    with server:
        assert server.running
        assert server.port != 0
        assert server.address == ("127.0.0.1", server.port)
        with socket.create_connection(server.address, timeout=10) as sock:
            assert sock.recv(100).startswith(b"+OK ")
    assert not server.running


def has_ipv6_loopback() -> bool:
    try:
        with socket.socket(socket.AF_INET6) as sock:
            sock.bind(("::1", 0))
        return True
    except OSError:
        return False


@pytest.mark.skipif(not has_ipv6_loopback(), reason="this machine has no IPv6 loopback")
def test_a_host_name_with_two_addresses_is_served_on_one_port(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """``localhost`` is ``::1`` and ``127.0.0.1`` on many machines. With port 0, asyncio alone
    binds each address with a port of its own, and the one port reported reaches only one of
    them (aiosmtpd's Controller has this bug): every port here must answer on both."""
    pytest.importorskip("aiosmtpd")
    import smtplib

    resolve = socket.getaddrinfo

    def both_loopbacks(host: object, *args: object, **kwargs: object) -> object:
        if host == "localhost":  # what /etc/hosts says on such machines, whatever it says here
            return resolve("::1", *args, **kwargs) + resolve("127.0.0.1", *args, **kwargs)  # type: ignore[arg-type]
        return resolve(host, *args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(socket, "getaddrinfo", both_loopbacks)
    with POP3Server(host="localhost", users=USERS, tls=True, tls_port=0, smtp=True) as server:
        assert server.tls is not None and server.tls_port and server.smtp is not None
        for address in ("127.0.0.1", "::1"):
            client = poplib.POP3(address, server.port, timeout=10)
            assert client.user("alice").startswith(b"+OK")
            assert client.pass_("secret").startswith(b"+OK")
            client.quit()
            context = server.tls.client_context()
            secure = poplib.POP3_SSL(address, server.tls_port, context=context, timeout=10)
            assert "USER" in secure.capa()
            secure.quit()
            with smtplib.SMTP(address, server.smtp.port, timeout=10) as mail:
                assert mail.noop()[0] == 250
        assert [s.client[0] for s in server.history.sessions] == [
            "127.0.0.1",
            "127.0.0.1",
            "::1",
            "::1",
        ]


def test_bind_error_raises_in_the_caller() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        server = POP3Server(port=port)
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            server.start()
        assert not server.running
        # the failed server can still be started elsewhere
        server.port = 0
        with server:
            assert server.port not in (0, port)


@pytest.mark.asyncio
async def test_bind_error_raises_in_the_caller_async() -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        with pytest.raises(OSError, match=f"cannot listen on 127.0.0.1:{port}"):
            async with POP3Server(port=port):
                pass  # pragma: no cover - never reached


@pytest.mark.parametrize("port", [-1, 65536, "110", 1.5, True])
def test_bad_port_is_refused_with_a_clear_error(port: object) -> None:
    with pytest.raises(ValueError, match="port must be an integer from 0 to 65535"):
        POP3Server(port=port)  # type: ignore[arg-type]


def test_bad_timeout_is_refused() -> None:
    with pytest.raises(ValueError, match="timeout must be a positive number"):
        POP3Server(timeout=0)


def test_defaults() -> None:
    server = POP3Server()
    assert server.host == "127.0.0.1"
    assert server.timeout == 600  # RFC 1939: an autologout timer of at least 10 minutes


def test_too_many_connections_get_sys_temp() -> None:
    with POP3Server(users=USERS, max_connections=1) as server:
        first = server.client("alice")
        with RawClient(server.host, server.port) as refused:  # poplib would leak its socket
            assert refused.greeting == b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n"
            assert refused.read_to_eof() == b""
        first.quit()
        server.wait_for_sessions(1)
        server.client("alice").quit()  # a free slot again
    server.raise_errors()


class Broken:
    """A fault hook with a bug: it raises on STAT."""

    armed = True

    def on_connect(self, session: object, greeting: bytes) -> None:
        return None

    def on_command(self, session: object, command: str, args: tuple[str, ...]) -> None:
        if command == "STAT":
            raise ZeroDivisionError("a bug inside the server")


def test_an_error_inside_the_server_reaches_the_test() -> None:
    with POP3Server(users=USERS, faults=Broken()) as server:  # type: ignore[arg-type]
        with RawClient(server.host, server.port) as client:
            client.login()
            assert client.command(b"STAT") == (
                b"-ERR [SYS/PERM] Internal server error; the session is closed.\r\n"
            )
            assert client.read_to_eof() == b""
        server.wait_for_sessions(1)
        server.client("bob").quit()  # the server lives on
    with pytest.raises(ServerError, match="ZeroDivisionError: a bug inside the server"):
        server.raise_errors()


def test_starting_twice_is_an_error(thread_server: POP3Server) -> None:
    with pytest.raises(RuntimeError, match="already running"):
        thread_server.start()


def test_many_servers_in_one_process_at_once() -> None:
    servers = [POP3Server(users={"alice": f"pw{i}"}) for i in range(12)]
    for i, server in enumerate(servers):
        server.start()
        server.mailbox("alice").extend([HELLO] * (i + 1))
    try:
        assert len({s.port for s in servers}) == len(servers)
        for i, server in enumerate(servers):
            client = poplib.POP3(server.host, server.port, timeout=10)
            login(client, "alice", f"pw{i}")
            assert client.stat() == (i + 1, (i + 1) * len(HELLO))
            client.quit()
    finally:
        for server in servers:
            server.stop()
    for server in servers:
        assert server.history.ended_sessions == 1
        server.raise_errors()


# --- a whole session with poplib ---------------------------------------------------------------
def test_every_command_with_poplib(thread_server: POP3Server) -> None:
    inbox = thread_server.mailbox("alice")
    first, second = inbox.add(HELLO), inbox.add(DOTS)
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    welcome = client.getwelcome()
    assert re.fullmatch(rb"\+OK .*<[^<>]+@[^<>]+>", welcome), welcome
    caps = client.capa()
    assert {"TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING"} <= set(caps)
    login(client)
    assert "IMPLEMENTATION" in client.capa()
    assert client.stat() == (2, len(HELLO) + len(DOTS))
    assert client.list() == (
        b"+OK 2 messages:",
        [f"1 {len(HELLO)}".encode(), f"2 {len(DOTS)}".encode()],
        len(f"1 {len(HELLO)}\r\n2 {len(DOTS)}\r\n"),
    )
    assert list_one(client, 2) == f"+OK 2 {len(DOTS)}".encode()
    assert client.uidl()[1] == [f"1 {first.uid}".encode(), f"2 {second.uid}".encode()]
    assert client.uidl(1) == f"+OK 1 {first.uid}".encode()
    resp, lines, octets = client.retr(2)
    assert resp == f"+OK {len(DOTS)} octets".encode()
    assert b"\r\n".join(lines) + b"\r\n" == DOTS
    assert octets == len(DOTS)
    assert client.top(2, 1)[1] == [b"Subject: dots", b"", b".leading"]
    assert client.noop() == b"+OK"
    assert client.dele(1) == b"+OK Marked to be deleted."
    assert client.rset().startswith(b"+OK")
    assert client.dele(2).startswith(b"+OK")
    assert client.quit() == b"+OK Logging out."
    thread_server.wait_for_sessions(1)
    assert inbox.messages == [first]
    assert thread_server.history.command_lines() == [
        "CAPA", "USER alice", "PASS ***", "CAPA", "STAT", "LIST", "LIST 2", "UIDL", "UIDL 1",
        "RETR 2", "TOP 2 1", "NOOP", "DELE 1", "RSET", "DELE 2", "QUIT",
    ]  # fmt: skip
    assert thread_server.history.sessions[0].end_reason == "quit"


def test_apop_with_the_greeting_timestamp(thread_server: POP3Server) -> None:
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    assert client.apop("alice", "secret") == b"+OK Logged in."
    assert client.stat() == (0, 0)
    client.quit()
    other = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    stamp = re.compile(rb"<[^>]+>")
    first, second = stamp.search(client.getwelcome()), stamp.search(other.getwelcome())
    assert first and second and first.group() != second.group()
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        other.apop("alice", "wrong")
    # A digest made from another greeting's timestamp is refused too.
    stale = hashlib.md5(first.group() + b"secret").hexdigest()
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        shortcmd(other, f"APOP alice {stale}")
    assert other.apop("alice", "secret").startswith(b"+OK")
    other.quit()
    thread_server.wait_for_sessions(2)
    assert [r.line for r in thread_server.history.filter("APOP")] == ["APOP alice ***"] * 4


def test_pass_with_spaces(thread_server: POP3Server) -> None:
    thread_server.add_user("carol", " a pass  phrase ")
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    client.user("carol")
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("a pass phrase")
    client.user("carol")
    assert client.pass_(" a pass  phrase ").startswith(b"+OK")
    client.quit()


def test_wrong_state_and_argument_errors_over_the_wire(thread_server: POP3Server) -> None:
    thread_server.mailbox("alice").add(HELLO)
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    with pytest.raises(poplib.error_proto, match="only valid after login"):
        client.stat()
    with pytest.raises(poplib.error_proto, match="No username given"):
        client.pass_("secret")
    login(client)
    with pytest.raises(poplib.error_proto, match="only valid before login"):
        client.user("alice")
    calls: list[tuple[Callable[[], object], str]] = [
        (lambda: client.retr(0), "There's no message 0"),
        (lambda: client.retr(2), "There's no message 2"),
        (lambda: list_one(client, 5), "There's no message 5"),
        (lambda: shortcmd(client, "RETR one"), "Invalid message number: one"),
        (lambda: shortcmd(client, "RETR"), "RETR needs a message number"),
        (lambda: shortcmd(client, "DELE 1 2"), "Too many arguments for DELE"),
        (lambda: client.top(1, -1), "Invalid size: -1"),
        (lambda: shortcmd(client, "XTND XMIT"), "Unknown command: XTND"),
    ]
    for call, pattern in calls:
        with pytest.raises(poplib.error_proto, match=pattern):
            call()
    assert shortcmd(client, "stat") == f"+OK 1 {len(HELLO)}".encode()
    client.dele(1)
    for line in ("RETR 1", "TOP 1 0", "LIST 1", "UIDL 1", "DELE 1"):
        with pytest.raises(poplib.error_proto, match="Message is deleted"):
            shortcmd(client, line)
    assert client.stat() == (0, 0)
    client.quit()
    thread_server.wait_for_sessions(1)
    assert len(thread_server.mailbox("alice")) == 0


# --- byte-exact sizes --------------------------------------------------------------------------
ODD_MESSAGES = {
    "dot-leading lines": b"Subject: dots\r\n\r\n.\r\n..\r\n.x\r\n",
    "bare LF": b"Subject: lf\n\nline one\nline two\n",
    "mixed line ends": b"Subject: mixed\r\n\nline\r\nother\n",
    "8-bit bytes": b"Subject: 8bit\r\n\r\n\xe9t\xe9 \x80\xff\xfe\r\n",
    "no final newline": b"Subject: no end\r\n\r\nlast line",
    "empty body": b"Subject: empty body\r\n\r\n",
    "headers only": b"Subject: nothing else",
    "empty message": b"",
}


@pytest.mark.parametrize("name", list(ODD_MESSAGES))
def test_sizes_are_byte_exact_with_poplib(thread_server: POP3Server, name: str) -> None:
    raw = ODD_MESSAGES[name]
    thread_server.mailbox("alice").add(raw)
    size = crlf_size(raw)
    client = thread_server.client("alice")
    assert client.stat() == (1, size)
    assert list_one(client, 1) == f"+OK 1 {size}".encode()
    resp, lines, octets = client.retr(1)
    assert resp == f"+OK {size} octets".encode()
    assert octets == size
    expected = raw.replace(b"\r\n", b"\n").split(b"\n")
    if expected and expected[-1] == b"":
        expected.pop()
    assert lines == expected
    _, top_lines, _ = client.top(1, 0)
    assert top_lines == expected[: len(top_lines)]
    client.quit()


@pytest.mark.parametrize("name", list(ODD_MESSAGES))
def test_retr_wire_bytes_are_exact(thread_server: POP3Server, name: str) -> None:
    raw = ODD_MESSAGES[name]
    thread_server.mailbox("alice").add(raw)
    crlf = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if crlf and not crlf.endswith(b"\r\n"):
        crlf += b"\r\n"
    stuffed = re.sub(rb"(?m)^\.", b"..", crlf)
    with RawClient(thread_server.host, thread_server.port) as raw_client:
        raw_client.login()
        raw_client.send(b"RETR 1\r\n")
        status, body = raw_client.read_multiline()
        assert status == f"+OK {len(crlf)} octets\r\n".encode()
        assert body == stuffed + b".\r\n"


def make_big_message(size: int) -> bytes:
    """About ``size`` octets of 8-bit lines; every 7th starts with a dot, every 5th ends in bare LF."""
    head = b"Subject: big\r\nContent-Type: application/octet-stream\r\n\r\n"
    noise = (
        random.Random(1939)
        .randbytes(size)
        .translate(bytes(b if b >= 0x20 else b + 0x40 for b in range(256)))
    )
    lines = [noise[i : i + 60] for i in range(0, size, 60)]
    return head + b"".join(
        (b"." if n % 7 == 0 else b"") + line + (b"\n" if n % 5 == 0 else b"\r\n")
        for n, line in enumerate(lines, 1)
    )


@pytest.fixture(scope="module")
def big_message() -> bytes:
    message = make_big_message(10 * 1024 * 1024)
    assert len(message) >= 10 * 1024 * 1024
    return message


def test_ten_megabyte_message(thread_server: POP3Server, big_message: bytes) -> None:
    thread_server.mailbox("alice").add(big_message)
    size = crlf_size(big_message)
    client = thread_server.client("alice")
    assert list_one(client, 1) == f"+OK 1 {size}".encode()
    resp, lines, octets = client.retr(1)
    assert resp == f"+OK {size} octets".encode()
    assert octets == size
    assert b"\r\n".join(lines) + b"\r\n" == big_message.replace(b"\r\n", b"\n").replace(
        b"\n", b"\r\n"
    )
    assert client.top(1, 2)[1] == [
        b"Subject: big",
        b"Content-Type: application/octet-stream",
        b"",
        *lines[3:5],
    ]
    assert client.noop() == b"+OK"
    client.quit()


# --- pipelining, line limits, garbage over the wire ---------------------------------------------
def test_pipelined_commands_in_one_packet_are_answered_in_order(
    thread_server: POP3Server, big_message: bytes
) -> None:
    inbox = thread_server.mailbox("alice")
    inbox.add(big_message)
    inbox.add(DOTS)
    with RawClient(thread_server.host, thread_server.port) as client:
        client.send(b"USER alice\r\nPASS secret\r\nRETR 1\r\nLIST 2\r\nRETR 2\r\nNOOP\r\nQUIT\r\n")
        assert client.read_line() == b"+OK\r\n"
        assert client.read_line() == b"+OK Logged in.\r\n"
        status, body = client.read_multiline()
        assert status.startswith(b"+OK ")
        assert len(body) > len(big_message)
        assert client.read_line() == f"+OK 2 {len(DOTS)}\r\n".encode()
        assert client.read_multiline() == (
            f"+OK {len(DOTS)} octets\r\n".encode(),
            b"Subject: dots\r\n\r\n..leading\r\n..\r\n...two\r\nend\r\n.\r\n",
        )
        assert client.read_line() == b"+OK\r\n"
        assert client.read_line() == b"+OK Logging out.\r\n"
        assert client.read_to_eof() == b""


def test_a_line_sent_while_a_big_reply_is_queued_waits_its_turn(thread_server: POP3Server) -> None:
    """While a reply too big for the socket is still queued, the next line (in a packet of its
    own, a line the fast lane would answer) waits for it: replies never interleave."""
    body = b"x" * 76 + b"\r\n"
    thread_server.mailbox("alice").add(b"Subject: big\r\n\r\n" + body * 300_000)  # 23 MB
    retr_received = threading.Event()
    thread_server.history.add_listener(lambda c: c.command == "RETR" and retr_received.set())
    with RawClient(thread_server.host, thread_server.port) as client:
        client.login()
        client.send(b"RETR 1\r\n")
        assert retr_received.wait(10)  # recorded before its reply: the reply is being written
        client.send(b"NOOP\r\n")
        status, text = client.read_multiline()
        assert status.startswith(b"+OK ") and text.endswith(body + b".\r\n")
        assert text.count(b"\r\n") == 300_000 + 3  # the whole body, nothing inside it
        assert client.read_line() == b"+OK\r\n"
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"


def test_a_flood_of_pipelined_commands_is_answered_in_order(thread_server: POP3Server) -> None:
    thread_server.mailbox("alice").extend([HELLO] * 300)
    listing = b"".join(f"{n} {len(HELLO)}\r\n".encode() for n in range(1, 301)) + b".\r\n"
    with RawClient(thread_server.host, thread_server.port) as client:
        client.login()
        # ~1.5 MB of replies for 12 KB of commands, sent before reading any reply
        client.send(b"".join(f"LIST\r\nLIST {n}\r\n".encode() for n in range(1, 301)))
        for n in range(1, 301):
            assert client.read_multiline() == (b"+OK 300 messages:\r\n", listing)
            assert client.read_line() == f"+OK {n} {len(HELLO)}\r\n".encode()
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"


def test_pipelined_batch_then_half_close_still_runs_quit(
    thread_server: POP3Server, big_message: bytes
) -> None:
    """Like ``printf 'USER ...QUIT' | nc -N``: the client shuts its side after sending."""
    inbox = thread_server.mailbox("alice")
    inbox.extend([big_message, HELLO])
    with RawClient(thread_server.host, thread_server.port) as client:
        client.send(b"USER alice\r\nPASS secret\r\nRETR 1\r\nDELE 1\r\nDELE 2\r\nQUIT\r\n")
        client.sock.shutdown(socket.SHUT_WR)
        rest = client.read_to_eof()
    assert rest.endswith(
        b"\r\n.\r\n" + b"+OK Marked to be deleted.\r\n" * 2 + b"+OK Logging out.\r\n"
    )
    thread_server.wait_for_sessions(1)
    assert thread_server.history.sessions[0].end_reason == "quit"
    assert len(inbox) == 0


def test_overlong_line_then_a_valid_command(thread_server: POP3Server) -> None:
    with RawClient(thread_server.host, thread_server.port) as client:
        client.login()
        client.send(b"NOOP " + b"x" * (1024 * 1024))  # 1 MB without a line end
        client.send(b"x\r\nSTAT\r\n")
        assert client.read_line() == b"-ERR Command line too long (at most 255 octets).\r\n"
        assert client.read_line() == b"+OK 0 0\r\n"
        assert client.command(b"NOOP " + b"y" * 256) == (
            b"-ERR Command line too long (at most 255 octets).\r\n"
        )
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"\0\0\0", b"-ERR Command line contains a NUL byte.\r\n"),
        (b"STAT\0", b"-ERR Command line contains a NUL byte.\r\n"),
        (b"\xff\xfe\xfd", b"-ERR Command line is not valid UTF-8.\r\n"),
        (b"", b"-ERR Empty command line.\r\n"),
        (b"    ", b"-ERR Empty command line.\r\n"),
        (b"GET / HTTP/1.1", b"-ERR Unknown command: GET\r\n"),
    ],
)
def test_garbage_lines_get_err(thread_server: POP3Server, line: bytes, expected: bytes) -> None:
    with RawClient(thread_server.host, thread_server.port) as client:
        client.login()
        assert client.command(line) == expected
        assert client.command(b"STAT") == b"+OK 0 0\r\n"
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"


def test_garbage_before_login_gets_err(thread_server: POP3Server) -> None:
    with RawClient(thread_server.host, thread_server.port) as client:
        for line in (b"\0", b"\xc3(", b"", b"   ", b"HELO x"):
            assert client.command(line).startswith(b"-ERR "), line
        client.login()
        assert client.command(b"STAT") == b"+OK 0 0\r\n"


def test_lf_only_line_ends_and_lower_case(thread_server: POP3Server) -> None:
    with RawClient(thread_server.host, thread_server.port) as client:
        client.send(b"user alice\npass secret\nstat\n")
        assert client.read_line() == b"+OK\r\n"
        assert client.read_line() == b"+OK Logged in.\r\n"
        assert client.read_line() == b"+OK 0 0\r\n"


# --- UPDATE semantics and session endings ------------------------------------------------------
def test_dropped_connection_mid_retr_deletes_nothing(
    thread_server: POP3Server, big_message: bytes
) -> None:
    inbox = thread_server.mailbox("alice")
    inbox.extend([HELLO, big_message])
    with RawClient(thread_server.host, thread_server.port) as client:
        client.login()
        assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"
        client.send(b"RETR 2\r\n")
        assert client.read_line().startswith(b"+OK ")
        client.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    thread_server.wait_for_sessions(1)
    assert thread_server.history.sessions[0].end_reason == "drop"
    assert len(inbox) == 2
    assert not inbox.locked
    client2 = thread_server.client("alice")
    assert client2.stat()[0] == 2
    client2.quit()


def test_second_concurrent_login_gets_in_use(thread_server: POP3Server) -> None:
    first = thread_server.client("alice")
    second = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    second.user("alice")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR \[IN-USE\] "):
        second.pass_("secret")
    assert second.apop("bob", "hunter2").startswith(b"+OK")  # another maildrop is free
    first.quit()
    thread_server.wait_for_sessions(1)
    third = thread_server.client("alice")
    assert third.stat() == (0, 0)
    third.quit()
    second.quit()
    thread_server.wait_for_sessions(3)
    in_use = thread_server.history.filter("PASS", ok=False)
    assert [r.reply for r in in_use] == ["-ERR [IN-USE] Mailbox is locked by another POP3 session."]


def test_snapshot_at_login_new_mail_at_next_login(thread_server: POP3Server) -> None:
    inbox = thread_server.mailbox("alice")
    inbox.add(HELLO)
    client = thread_server.client("alice")
    late = inbox.add(DOTS)
    assert client.stat() == (1, len(HELLO))
    with pytest.raises(poplib.error_proto, match="There's no message 2"):
        client.retr(2)
    client.dele(1)
    client.quit()
    thread_server.wait_for_sessions(1)
    assert inbox.messages == [late]
    client = thread_server.client("alice")
    assert client.stat() == (1, len(DOTS))
    assert client.uidl(1) == f"+OK 1 {late.uid}".encode()
    client.quit()


def test_quit_in_authorization_deletes_nothing(thread_server: POP3Server) -> None:
    thread_server.mailbox("alice").add(HELLO)
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    assert client.quit() == b"+OK Logging out."
    thread_server.wait_for_sessions(1)
    assert len(thread_server.mailbox("alice")) == 1
    assert thread_server.history.sessions[0].end_reason == "quit"


def test_autologout_timer_closes_idle_session_without_deleting() -> None:
    with POP3Server(users=USERS, timeout=0.2) as server:
        server.mailbox("alice").add(HELLO)
        with RawClient(server.host, server.port) as client:
            client.login()
            assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"
            server.wait_for_sessions(1)
            assert client.read_to_eof() == b""  # RFC 1939: closed without a response
        [session] = server.history.sessions
        assert session.end_reason == "timeout"
        assert session.user == "alice"
        assert len(server.mailbox("alice")) == 1
        assert not server.mailbox("alice").locked
    server.raise_errors()


def test_stop_closes_live_sessions_promptly() -> None:
    ended: list[SessionRecord] = []
    server = POP3Server(users=USERS, on_session_end=ended.append)
    with server:
        server.mailbox("alice").extend([HELLO, DOTS])
        client = server.client("alice")
        client.dele(1)
        idle = poplib.POP3(server.host, server.port, timeout=10)
    server.wait_for_sessions(2, timeout=0)
    assert sorted(s.end_reason or "" for s in ended) == ["server", "server"]
    assert len(server.mailbox("alice")) == 2
    assert not server.mailbox("alice").locked
    with pytest.raises((poplib.error_proto, OSError)):
        client.stat()
    idle.close()
    client.close()
    server.raise_errors()


def test_stop_closes_a_session_whose_client_does_not_read(big_message: bytes) -> None:
    server = POP3Server(users=USERS)
    retr = threading.Event()
    server.history.add_listener(lambda r: retr.set() if r.command == "RETR" else None)
    with server:
        server.mailbox("alice").add(big_message)
        client = RawClient(server.host, server.port)
        client.login()
        client.send(b"RETR 1\r\n" * 5 + b"DELE 1\r\n")  # 50 MB: more than socket buffers hold
        assert retr.wait(10)
    try:
        server.wait_for_sessions(1, timeout=5)
        assert server.history.sessions[0].end_reason == "server"
        assert len(server.mailbox("alice")) == 1
    finally:
        client.close()
    server.raise_errors()


def test_on_session_end_callback_gets_each_session(thread_server: POP3Server) -> None:
    ended: list[tuple[str | None, str | None, bool]] = []
    thread_server.history.add_session_listener(
        lambda s: ended.append((s.user, s.end_reason, s.ended))
    )
    thread_server.client("alice").quit()
    poplib.POP3(thread_server.host, thread_server.port, timeout=10).close()
    thread_server.wait_for_sessions(2)
    assert sorted(ended, key=str) == [("alice", "quit", True), (None, "drop", True)]


def test_on_session_end_constructor_argument() -> None:
    ended: list[SessionRecord] = []
    with POP3Server(users=USERS, on_session_end=ended.append) as server:
        server.client("bob").quit()
        server.wait_for_sessions(1)
        assert [(s.user, s.end_reason) for s in ended] == [("bob", "quit")]
        assert ended[0].commands[-1].command == "QUIT"


def test_wait_for_sessions_times_out_with_a_clear_error(thread_server: POP3Server) -> None:
    with pytest.raises(TimeoutError, match=r"1 POP3 session\(s\) to end; 0 ended"):
        thread_server.wait_for_sessions(1, timeout=0.01)


def test_history_records_before_the_reply_arrives(thread_server: POP3Server) -> None:
    client = thread_server.client("alice")
    for _ in range(20):
        client.noop()
        # no wait: the record exists before the reply was written
        assert thread_server.history.commands[-1].line == "NOOP"
    assert thread_server.history.count("NOOP") == 20
    client.quit()


def test_history_records_tls_flag_on_implicit_tls() -> None:
    with POP3Server(users=USERS, tls_port=0) as server:
        client = server.ssl_client("alice")
        client.stat()
        client.quit()
        server.wait_for_sessions(1)
        records = server.history.commands
        assert [r.line for r in records] == ["USER alice", "PASS ***", "STAT", "QUIT"]
        assert all(r.tls for r in records)
        assert server.history.sessions[0].tls


def test_history_of_a_session_over_the_wire(thread_server: POP3Server) -> None:
    client = poplib.POP3(thread_server.host, thread_server.port, timeout=10)
    client.user("alice")
    with pytest.raises(poplib.error_proto):
        client.pass_("nope nope")
    login(client)
    client.stat()
    client.quit()
    thread_server.wait_for_sessions(1)
    [session] = thread_server.history.sessions
    assert session.client[0] == "127.0.0.1" and session.client[1] > 0
    assert session.user == "alice"
    assert session.end_reason == "quit"
    assert session.ended_at is not None and session.ended_at >= session.started_at
    assert [(c.line, c.user, c.reply) for c in session.commands] == [
        ("USER alice", None, "+OK"),
        ("PASS ***", None, "-ERR [AUTH] Authentication failed."),
        ("USER alice", None, "+OK"),
        ("PASS ***", "alice", "+OK Logged in."),
        ("STAT", "alice", "+OK 0 0"),
        ("QUIT", "alice", "+OK Logging out."),
    ]
    assert all(c.client == session.client and c.session_id == session.id for c in session.commands)
    times = [c.received_at for c in session.commands]
    assert (
        session.started_at <= times[0] and times == sorted(times) and times[-1] <= session.ended_at
    )
    assert "nope" not in thread_server.history.to_jsonl() + thread_server.history.transcript()


def test_history_can_be_shared_or_disabled() -> None:
    shared = History()
    with (
        POP3Server(users=USERS, history=shared) as one,
        POP3Server(users=USERS, history=False) as two,
    ):
        one.client("alice").quit()
        two.client("alice").quit()
        one.wait_for_sessions(1)
        two.wait_for_sessions(1)  # waiting works with recording off
    assert shared.command_lines() == ["USER alice", "PASS ***", "QUIT"]
    assert two.history.commands == [] and two.history.sessions == []


# --- async with ----------------------------------------------------------------------------------
@pytest.mark.asyncio
async def test_async_server_with_poplib_in_a_thread() -> None:
    async with POP3Server(users=USERS) as server:
        assert server.port != 0
        server.mailbox("alice").extend([HELLO, DOTS])

        def session() -> tuple[int, int]:
            client = server.client("alice")
            stat = client.stat()
            assert b"\r\n".join(client.retr(2)[1]) + b"\r\n" == DOTS
            client.dele(1)
            client.quit()
            return stat

        assert await asyncio.to_thread(session) == (2, len(HELLO) + len(DOTS))
        await server.wait_for_sessions_async(1)
        assert [m.raw for m in server.mailbox("alice")] == [DOTS]
        server.history.assert_sent("DELE", "1", user="alice", times=1)
    assert not server.running
    server.raise_errors()


@pytest.mark.asyncio
async def test_async_stop_closes_live_sessions() -> None:
    server = POP3Server(users=USERS)
    async with server:
        server.mailbox("alice").add(HELLO)
        client = await asyncio.to_thread(server.client, "alice")
        await asyncio.to_thread(client.dele, 1)
    await asyncio.wait_for(server.wait_for_sessions_async(1), 5)
    assert server.history.sessions[0].end_reason == "server"
    assert len(server.mailbox("alice")) == 1
    client.close()
    server.raise_errors()


@pytest.mark.asyncio
async def test_wait_for_sessions_async_returns_at_once_when_already_ended() -> None:
    async with POP3Server(users=USERS) as server:
        await asyncio.to_thread(lambda: server.client("alice").quit())
        await server.wait_for_sessions_async(1)
        await server.wait_for_sessions_async(1)  # already reached: must not block
        assert server.history.ended_sessions == 1
        waiter = asyncio.ensure_future(server.wait_for_sessions_async(2))
        await asyncio.to_thread(lambda: server.client("bob").quit())
        await asyncio.wait_for(waiter, 5)
        assert server.history.ended_sessions == 2


@pytest.mark.asyncio
async def test_async_timeout_and_pipelining() -> None:
    async with POP3Server(users=USERS, timeout=0.2) as server:
        reader, writer = await asyncio.open_connection(server.host, server.port)
        assert (await reader.readline()).startswith(b"+OK")
        writer.write(b"USER alice\r\nPASS secret\r\nSTAT\r\nNOOP\r\n")
        replies = [await reader.readline() for _ in range(4)]
        assert replies == [b"+OK\r\n", b"+OK Logged in.\r\n", b"+OK 0 0\r\n", b"+OK\r\n"]
        await server.wait_for_sessions_async(1)
        assert await reader.read() == b""
        writer.close()
        assert server.history.sessions[0].end_reason == "timeout"


def test_reset_during_a_session_keeps_that_sessions_deletions_out() -> None:
    """server.reset() (SIGHUP in the CLI) wins over a session that was open across it: the
    session is ended, and its QUIT is never told that its deletions succeeded."""
    with POP3Server(users={"alice": "pw"}) as server:
        inbox = server.mailbox("alice")
        inbox.add(b"Subject: 1\r\n\r\none\r\n")
        inbox.add(b"Subject: 2\r\n\r\ntwo\r\n")
        client = server.client("alice")  # the first client: the baseline holds both messages
        client.dele(1)
        server.reset()
        with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\] The server was reset"):
            client.quit()
        client.close()
        server.wait_for_sessions(1)
        assert server.history.sessions == []  # its end came before the reset cleared history
        assert len(inbox) == 2
        client = server.client("alice")
        client.dele(1)
        client.quit()
        server.wait_for_sessions(2)
        assert [m.raw for m in inbox] == [b"Subject: 2\r\n\r\ntwo\r\n"]


def test_client_helper_closes_its_socket_when_login_fails() -> None:
    """server.client(user, wrong) raises the -ERR and leaks nothing (filterwarnings=error)."""
    import gc

    with POP3Server(users={"alice": "pw"}) as server:
        with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
            server.client("alice", "wrong")
        gc.collect()  # a leaked socket would raise ResourceWarning here, an error in this suite
        server.wait_for_sessions(1)
        assert server.history.sessions[-1].end_reason == "drop"


def test_a_busy_session_stops_reading_a_pipelined_flood() -> None:
    """While a fault delays a reply, a client flooding commands cannot grow the line queue."""
    import socket

    from fakepop3.server import MAX_PENDING_LINES

    with POP3Server(users={"alice": "pw"}) as server:
        server.faults.on("NOOP", nth=1).delay(60)
        sock = socket.create_connection((server.host, server.port), timeout=10)
        try:
            assert sock.recv(512).startswith(b"+OK")
            sock.sendall(b"USER alice\r\nPASS pw\r\n")
            sock.settimeout(2)
            chunk = b"NOOP\r\n" * 10_000
            sent = 0
            with pytest.raises(TimeoutError):
                while sent < 100 * len(chunk):  # 6 MB: far more than the socket buffers hold
                    sent += sock.send(chunk)
            (conn,) = list(server._connections)
            assert conn.session is not None
            # The rest of the read that hit the delay, plus one read past the limit, at most
            # (asyncio reads up to 256 KiB at a time: ~44,000 six-octet lines).
            assert conn.session.pending_lines <= MAX_PENDING_LINES + 2 * (256 * 1024 // 6)
            assert sent < 100 * len(chunk)
        finally:
            sock.close()
