"""Hostile clients: the server bounds what one connection costs and never stops serving others.

Covered here: overlong lines and SASL lines (never buffered past their limit), a pipelining client
that never reads (replies stop being produced once the transport's write buffer is full), a TLS
handshake that never completes, the cap on concurrent connections, the idle timeout, the
per-command deadline against slowloris clients, a client that never reads a large RETR, and
abrupt disconnects at every point of a session (nothing deleted, lock released, drop recorded).

Nothing here sleeps to synchronise: tests wait for events (a reply, the server closing the
connection, ``wait_for_sessions``, a hooked transport callback), with generous deadlines.
Timeouts under test are tiny so that the events come quickly.
"""

from __future__ import annotations

import asyncio
import base64
import socket
from collections.abc import Callable, Iterator

import pytest

from fakepop3 import POP3Server, Session
from fakepop3.protocol import MAX_LINE, MAX_SASL_LINE
from fakepop3.server import _transport as server_module

from .conftest import DEADLINE, USERS, RawClient

HELLO = b"Subject: Hello\r\n\r\nHi!\r\n"


def big(size: int) -> bytes:
    """A message of exactly ``size`` octets on the wire (CRLF lines of 78 octets)."""
    line = b"x" * 76 + b"\r\n"
    head = b"Subject: big\r\n\r\n"
    body = line * ((size - len(head)) // len(line))
    rest = size - len(head) - len(body)
    tail = b"y" * (rest - 2) + b"\r\n" if rest >= 2 else b""
    message = head + body + tail
    assert len(message) == size or rest == 1
    return message


def read_until_closed(sock: socket.socket, deadline: float = DEADLINE) -> bytes:
    """Everything the server sends until it closes the connection (reset counts as closed)."""
    sock.settimeout(deadline)
    data = b""
    try:
        while chunk := sock.recv(65536):
            data += chunk
    except ConnectionResetError:
        pass
    return data


def abort(sock: socket.socket) -> None:
    """Close with RST (SO_LINGER 0), the way a crashed client or a pulled cable ends."""
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
    sock.close()


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users=USERS) as srv:
        yield srv
    srv.raise_errors()


def served_normally(srv: POP3Server, user: str = "bob", password: str = "hunter2") -> None:
    """A whole poplib session on ``srv`` works (the server keeps serving others)."""
    client = srv.client(user, password)
    count, _ = client.stat()
    assert client.noop().startswith(b"+OK")
    assert client.quit().startswith(b"+OK")
    assert count == len(srv.mailbox(user))


# --- bounded input ------------------------------------------------------------------------------
class PartialWatch:
    """Records the largest unfinished line any Session buffered (hooked into receive_data)."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch) -> None:
        self.largest = 0
        original = Session.receive_data

        def receive_data(session: Session, data: bytes) -> None:
            original(session, data)
            self.largest = max(self.largest, len(session._partial))

        monkeypatch.setattr(Session, "receive_data", receive_data)


def test_overlong_lines_are_never_buffered(
    server: POP3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = PartialWatch(monkeypatch)
    with RawClient(server.host, server.port) as client:
        chunk = b"A" * 65536
        for _ in range(64):  # 4 MiB before the first line end, in AUTHORIZATION
            client.send(chunk)
        client.send(b"\r\nUSER alice\r\n")
        assert client.read_line() == b"-ERR Command line too long (at most 255 octets).\r\n"
        assert client.read_line() == b"+OK\r\n"
        assert client.command(b"PASS secret") == b"+OK Logged in.\r\n"
        for _ in range(64):  # and 4 MiB in TRANSACTION
            client.send(b"RETR " + chunk)
        client.send(b"\r\n")
        assert client.read_line() == b"-ERR Command line too long (at most 255 octets).\r\n"
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"
    assert watch.largest < MAX_LINE


def test_overlong_sasl_response_is_never_buffered(
    server: POP3Server, monkeypatch: pytest.MonkeyPatch
) -> None:
    watch = PartialWatch(monkeypatch)
    with RawClient(server.host, server.port) as client:
        assert client.command(b"AUTH PLAIN") == b"+ \r\n"
        for _ in range(40):  # 2.5 MiB of "base64" without a line end
            client.send(b"QUFB" * 16384)
        client.send(b"\r\n")
        assert client.read_line().startswith(b"-ERR SASL response too long")
        token = base64.b64encode(b"\0alice\0secret")
        assert client.command(b"AUTH PLAIN " + token) == b"+OK Logged in.\r\n"
    assert watch.largest < MAX_SASL_LINE


@pytest.fixture
def paused(monkeypatch: pytest.MonkeyPatch) -> asyncio.Event:
    """Set when a server connection's transport first asks it to pause writing."""
    event = asyncio.Event()
    original = server_module._Connection.pause_writing

    def pause_writing(conn: server_module._Connection) -> None:
        original(conn)
        event.set()

    monkeypatch.setattr(server_module._Connection, "pause_writing", pause_writing)
    return event


@pytest.mark.asyncio
async def test_pipelining_client_that_never_reads_is_bounded(
    paused: asyncio.Event,
) -> None:
    """Replies stop being produced while the transport is paused; all arrive once read."""
    count = 20000
    async with POP3Server(users=USERS) as srv:
        for _ in range(40):
            srv.mailbox("alice").add(HELLO)
        reader, writer = await asyncio.open_connection(srv.host, srv.port)
        writer.transport.set_write_buffer_limits(high=1 << 30)
        assert (await reader.readline()).startswith(b"+OK")
        # ~120 KiB of commands asking for ~9 MiB of replies, never reading them.
        writer.write(b"USER alice\r\nPASS secret\r\n" + b"LIST\r\n" * count + b"QUIT\r\n")
        await asyncio.wait_for(paused.wait(), DEADLINE)
        await asyncio.sleep(0)  # let the server finish what it does with the data it read
        (conn,) = srv._connections
        assert conn.transport is not None
        buffered = conn.transport.get_write_buffer_size()
        # At most the high-water mark plus the one reply that crossed it.
        assert buffered <= server_module.HIGH_WATER + 4096, buffered
        handled = len(srv.history)
        assert handled < count, "every command was answered into the buffer"
        # Now read: every reply arrives, complete and in order.
        assert await reader.readline() == b"+OK\r\n"
        assert await reader.readline() == b"+OK Logged in.\r\n"
        for _ in range(count):
            assert await reader.readline() == b"+OK 40 messages:\r\n"
            body = await reader.readuntil(b"\r\n.\r\n")
            assert body.count(b"\r\n") == 41
        assert await reader.readline() == b"+OK Logging out.\r\n"
        assert await reader.read() == b""
        writer.close()
        await srv.wait_for_sessions_async(1)
        assert srv.history.sessions[0].end_reason == "quit"
    srv.raise_errors()


@pytest.mark.asyncio
async def test_one_command_a_packet_client_that_never_reads_is_bounded(
    paused: asyncio.Event,
) -> None:
    """Lines sent one per packet go to the fast lane; once the transport asks to pause, the
    next line must wait for the client to read, not be answered into the server's memory."""
    big = b"Subject: big\r\n\r\n" + (b"x" * 98 + b"\r\n") * 2000  # 200 KB: one write
    async with POP3Server(users=USERS) as srv:
        srv.mailbox("alice").add(big)
        reader, writer = await asyncio.open_connection(srv.host, srv.port, limit=1 << 20)
        assert (await reader.readline()).startswith(b"+OK")
        writer.write(b"USER alice\r\n")
        assert await reader.readline() == b"+OK\r\n"
        writer.write(b"PASS secret\r\n")
        assert await reader.readline() == b"+OK Logged in.\r\n"

        async def send_one() -> None:
            writer.write(b"RETR 1\r\n")
            await writer.drain()
            for _ in range(5):  # loop turns (no time passes): the server reads and answers
                await asyncio.sleep(0)

        sent = 0
        while not paused.is_set() and sent < 2000:  # until the socket buffers are full
            await send_one()
            sent += 1
        assert paused.is_set()
        for _ in range(20):
            await send_one()
        sent += 20
        (conn,) = srv._connections
        assert conn.transport is not None
        buffered = conn.transport.get_write_buffer_size()
        assert buffered <= 3 * len(big), buffered  # without the check: 20 replies more
        assert len(srv.history.filter("RETR")) < sent
        for _ in range(sent):  # now read: every reply arrives, whole and in order
            assert (await reader.readline()).startswith(b"+OK ")
            assert len(await reader.readuntil(b"\r\n.\r\n")) == len(big) + 3
        writer.write(b"QUIT\r\n")
        assert await reader.readline() == b"+OK Logging out.\r\n"
        writer.close()
        await srv.wait_for_sessions_async(1)
    srv.raise_errors()


# --- TLS handshake ------------------------------------------------------------------------------
def test_tls_handshake_that_never_completes_is_dropped() -> None:
    with POP3Server(users=USERS, tls_port=0, command_timeout=0.2) as srv:
        assert srv.tls_port is not None
        with socket.create_connection((srv.host, srv.tls_port)) as stalled:
            # A TLS record header announcing a 16 KiB ClientHello, then nothing more.
            stalled.sendall(b"\x16\x03\x01\x40\x00\x01")
            ssl_client = srv.ssl_client("alice", "secret")  # others are served meanwhile
            assert ssl_client.stat() == (0, 0)
            ssl_client.quit()
            assert read_until_closed(stalled) == b""  # dropped by the handshake deadline
        with socket.create_connection((srv.host, srv.tls_port)) as garbage:
            garbage.sendall(b"USER alice\r\n" * 1000)  # plain text on the TLS port
            assert read_until_closed(garbage) == b""
        srv.wait_for_sessions(1)
        assert [s.end_reason for s in srv.history.sessions] == ["quit"]
    srv.raise_errors()


def test_stls_handshake_that_never_completes_is_dropped() -> None:
    with POP3Server(users=USERS, tls=True, command_timeout=0.2) as srv:
        with RawClient(srv.host, srv.port) as client:
            assert client.command(b"STLS") == b"+OK Begin TLS negotiation now.\r\n"
            client.send(b"\x16\x03\x01\x40\x00\x01")
            assert read_until_closed(client.sock) == b""
        srv.wait_for_sessions(1)
        assert srv.history.sessions[0].end_reason == "drop"
        assert not srv.history.sessions[0].tls
    srv.raise_errors()


def test_handshake_deadline_follows_command_timeout() -> None:
    assert POP3Server()._handshake_timeout() == 30.0
    assert POP3Server(command_timeout=None)._handshake_timeout() == 30.0
    assert POP3Server(command_timeout=2.5)._handshake_timeout() == 2.5


# --- connection cap -----------------------------------------------------------------------------
def test_connections_past_max_connections_get_sys_temp() -> None:
    with POP3Server(users=USERS, max_connections=2) as srv:
        first = srv.client("alice", "secret")
        second = srv.client("bob", "hunter2")
        with socket.create_connection(srv.address, timeout=DEADLINE) as third:
            assert read_until_closed(third) == (
                b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n"
            )
        assert first.stat() == (0, 0)  # those within the cap are untouched
        first.quit()
        srv.wait_for_sessions(1)
        fourth = srv.client("alice", "secret")  # a slot is free again
        assert fourth.noop().startswith(b"+OK")
        fourth.quit()
        second.quit()
        srv.wait_for_sessions(3)
        assert len(srv.history.sessions) == 3  # the refused one never became a session
    srv.raise_errors()


def test_max_connections_must_be_positive() -> None:
    with pytest.raises(ValueError, match="max_connections must be at least 1"):
        POP3Server(max_connections=0)


# --- timeouts -----------------------------------------------------------------------------------
def test_idle_client_is_dropped_without_a_reply_and_without_deleting() -> None:
    with POP3Server(users=USERS, timeout=0.2) as srv:
        srv.mailbox("alice").add(HELLO)
        with RawClient(srv.host, srv.port) as client:
            client.login()
            assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"
            assert read_until_closed(client.sock) == b""  # RFC 1939 s3: no response
        srv.wait_for_sessions(1)
        assert srv.history.sessions[0].end_reason == "timeout"
        assert len(srv.mailbox("alice")) == 1
        assert not srv.mailbox("alice").locked
    srv.raise_errors()


def test_slowloris_one_byte_at_a_time_does_not_hold_the_server() -> None:
    with POP3Server(users=USERS, timeout=600, command_timeout=0.3) as srv:
        with RawClient(srv.host, srv.port) as slow:
            slow.login()
            slow.sock.settimeout(0.05)
            sent = 0
            received = b""
            # One byte, then wait (up to 50 ms) for the server to hang up; the line never ends.
            while not received and sent < DEADLINE / 0.05:
                try:
                    slow.send(b"N")
                    sent += 1
                    received = slow.sock.recv(4096) or b"<closed>"
                except TimeoutError:
                    continue
                except OSError:
                    received = b"<reset>"
            served_normally(srv)  # others were never held up
            if received == b"<closed>":
                pytest.fail("the server closed without a reply")
            assert received.startswith(b"-ERR Command line not finished within 0.3 seconds")
        srv.wait_for_sessions(2)
        slow_record = srv.history.sessions[0]
        assert slow_record.user == "alice"
        assert slow_record.end_reason == "timeout"
    srv.raise_errors()


def test_command_deadline_does_not_cut_idle_clients_or_lines_sent_in_pieces() -> None:
    with POP3Server(users=USERS, command_timeout=0.2) as srv:
        with RawClient(srv.host, srv.port) as idle, RawClient(srv.host, srv.port) as slow:
            idle.login()
            slow.send(b"NO")  # a line left unfinished: this one is cut
            assert read_until_closed(slow.sock).startswith(b"-ERR Command line not finished")
            srv.wait_for_sessions(1)
            # The idle client has been idle for longer than command_timeout by now.
            assert idle.command(b"NOOP") == b"+OK\r\n"
            for piece in (b"ST", b"A", b"T\r", b"\nNO", b"OP\r\n"):
                idle.send(piece)
            assert idle.read_line() == b"+OK 0 0\r\n"
            assert idle.read_line() == b"+OK\r\n"
            assert idle.command(b"QUIT") == b"+OK Logging out.\r\n"
        srv.wait_for_sessions(2)
        assert [s.end_reason for s in srv.history.sessions] == ["quit", "timeout"]
    srv.raise_errors()


@pytest.mark.parametrize("value", [0, -1.0])
def test_command_timeout_must_be_positive(value: float) -> None:
    with pytest.raises(ValueError, match="command_timeout must be a positive number"):
        POP3Server(command_timeout=value)


def test_session_has_partial_line() -> None:
    from fakepop3 import MailStore

    session = Session(MailStore())
    assert not session.has_partial_line()
    session.receive_data(b"NO")
    assert session.has_partial_line()
    session.receive_data(b"OP\r\n")
    assert not session.has_partial_line()
    session.receive_data(b"x" * 1000)  # overlong: discarded, but still unfinished
    assert session.has_partial_line()
    session.receive_data(b"\n")
    assert not session.has_partial_line()


def test_client_that_never_reads_a_large_retr_is_dropped() -> None:
    size = 8 * 1024 * 1024
    with POP3Server(users=USERS, timeout=0.3) as srv:
        srv.mailbox("alice").add(big(size))
        srv.mailbox("bob").add(HELLO)
        hog = socket.create_connection(srv.address, timeout=DEADLINE)
        hog.sendall(b"USER alice\r\nPASS secret\r\nRETR 1\r\n")  # and never read
        served_normally(srv)  # while the hog's reply is stuck, others are served
        srv.wait_for_sessions(2)
        hog_record = next(s for s in srv.history.sessions if s.user == "alice")
        assert hog_record.end_reason == "timeout"
        received = read_until_closed(hog)
        hog.close()
        assert len(received) < size  # the rest was discarded, never sent
        assert len(srv.mailbox("alice")) == 1
        assert not srv.mailbox("alice").locked
        served_normally(srv)
    srv.raise_errors()


# --- abrupt disconnects -------------------------------------------------------------------------
Step = Callable[[RawClient], None]


def _nothing(client: RawClient) -> None:
    pass


def _after_user(client: RawClient) -> None:
    assert client.command(b"USER alice") == b"+OK\r\n"


def _mid_sasl(client: RawClient) -> None:
    assert client.command(b"AUTH PLAIN") == b"+ \r\n"
    client.send(b"AGFsaWNl")  # half a response


def _logged_in(client: RawClient) -> None:
    client.login()


def _after_dele(client: RawClient) -> None:
    client.login()
    assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"
    assert client.command(b"DELE 2") == b"+OK Marked to be deleted.\r\n"


def _after_dele_rset_dele(client: RawClient) -> None:
    _after_dele(client)
    assert client.command(b"RSET").startswith(b"+OK")
    assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"


def _mid_retr(client: RawClient) -> None:
    client.login()
    assert client.command(b"DELE 1") == b"+OK Marked to be deleted.\r\n"
    client.send(b"RETR 2\r\n")
    assert client.read_line() == f"+OK {4 * 1024 * 1024} octets\r\n".encode()
    client.sock.recv(10000)


def _pipelined_quit_half_sent(client: RawClient) -> None:
    client.login()
    client.send(b"DELE 1\r\nDELE 2\r\nQUI")  # QUIT never completed: no UPDATE


POINTS: dict[str, Step] = {
    "during-greeting": _nothing,
    "after-user": _after_user,
    "mid-sasl": _mid_sasl,
    "logged-in": _logged_in,
    "after-dele": _after_dele,
    "after-dele-rset-dele": _after_dele_rset_dele,
    "mid-retr": _mid_retr,
    "half-sent-quit": _pipelined_quit_half_sent,
}


@pytest.mark.parametrize("how", ["close", "reset"])
@pytest.mark.parametrize("point", list(POINTS))
def test_abrupt_disconnect_loses_nothing(server: POP3Server, point: str, how: str) -> None:
    inbox = server.mailbox("alice")
    inbox.extend([HELLO, big(4 * 1024 * 1024), HELLO])
    before = inbox.uids
    if point == "during-greeting":
        sock = socket.create_connection(server.address, timeout=DEADLINE)
    else:
        client = RawClient(server.host, server.port)
        POINTS[point](client)
        sock = client.sock
    if how == "reset":
        abort(sock)
    else:
        sock.close()
    server.wait_for_sessions(1)
    (record,) = server.history.sessions
    assert record.end_reason == "drop", record.transcript()
    assert inbox.uids == before
    assert not inbox.locked
    if point not in ("during-greeting", "after-user", "mid-sasl"):
        assert record.user == "alice"
    # The next session sees everything and can take the lock.
    again = server.client("alice", "secret")
    assert again.stat()[0] == 3
    again.quit()


def test_disconnect_mid_stls_handshake() -> None:
    with POP3Server(users=USERS, tls=True) as srv:
        client = RawClient(srv.host, srv.port)
        assert client.command(b"STLS") == b"+OK Begin TLS negotiation now.\r\n"
        client.send(b"\x16\x03\x01\x00\x05\x01\x00")  # a torn ClientHello
        abort(client.sock)
        srv.wait_for_sessions(1)
        assert srv.history.sessions[0].end_reason == "drop"
        served_normally(srv, "alice", "secret")
    srv.raise_errors()
