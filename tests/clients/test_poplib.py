"""Python's poplib against fakepop3: every public method of POP3 and POP3_SSL.

``POP3``: getwelcome, set_debuglevel, capa, utf8, rpop, user, pass_, stat, list, uidl, retr,
top, dele, rset, noop, quit, close, apop, stls; ``POP3_SSL`` with a verifying context.
"""

from __future__ import annotations

import poplib
from collections.abc import Iterator

import pytest

from fakepop3 import POP3Server

from .conftest import MESSAGES, PASSWORD, USER, Golden, StartServer, settle

TIMEOUT = 10.0


@pytest.fixture
def clients() -> Iterator[list[poplib.POP3]]:
    """Append each client here: it is closed after the test even if an assertion failed."""
    opened: list[poplib.POP3] = []
    yield opened
    for client in opened:
        client.close()


def joined(lines: list[bytes]) -> bytes:
    """The bytes of a multi-line reply as poplib returns it (lines without their CRLF)."""
    return b"".join(line + b"\r\n" for line in lines)


def test_every_method_of_pop3(
    start_server: StartServer, golden: Golden, clients: list[poplib.POP3]
) -> None:
    server = start_server(utf8=True)  # poplib's utf8() needs a server offering UTF8
    stored = server.mailbox(USER).messages
    client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    clients.append(client)
    client.set_debuglevel(0)
    assert client.getwelcome().startswith(b"+OK ")
    caps = client.capa()
    assert {"TOP", "UIDL", "USER", "UTF8", "PIPELINING"} <= caps.keys()
    assert caps["SASL"][0] == "CRAM-MD5"
    assert client.utf8().startswith(b"+OK")
    with pytest.raises(poplib.error_proto, match=r"^b'-ERR "):
        client.rpop(USER)  # obsolete (RFC 1081): -ERR, and the session goes on
    assert client.user(USER) == b"+OK"
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat() == (len(stored), sum(m.size for m in stored))

    resp, listing, octets = client.list()
    assert resp.startswith(b"+OK")
    assert listing == [b"%d %d" % (i, m.size) for i, m in enumerate(stored, 1)]
    assert octets == sum(len(line) + 2 for line in listing)
    assert client.list(2) == b"+OK 2 %d" % stored[1].size  # type: ignore[comparison-overlap]
    _, uids, _ = client.uidl()
    assert uids == [b"%d %s" % (i, m.uid.encode()) for i, m in enumerate(stored, 1)]
    assert client.uidl(3) == b"+OK 3 " + stored[2].uid.encode()

    for number, message in enumerate(stored, 1):
        resp, lines, octets = client.retr(number)
        assert resp == b"+OK %d octets" % message.size
        assert joined(lines) == message.crlf  # byte for byte, dots unstuffed
        assert octets == message.size
    _, lines, _ = client.top(3, 0)
    assert joined(lines) == stored[2].headers + b"\r\n"
    _, lines, _ = client.top(1, 1)
    assert joined(lines) == stored[0].headers + b"\r\n.dot at the start\r\n"

    assert client.noop() == b"+OK"
    assert client.dele(1).startswith(b"+OK")
    assert client.dele(2).startswith(b"+OK")
    assert client.stat() == (len(stored) - 2, sum(m.size for m in stored[2:]))
    with pytest.raises(poplib.error_proto, match="deleted"):
        client.retr(1)
    assert client.rset().startswith(b"+OK")
    assert client.stat()[0] == len(stored)
    assert client.dele(2).startswith(b"+OK")
    assert server.mailbox(USER).messages == stored  # nothing is removed before QUIT
    assert client.quit().startswith(b"+OK")
    settle(server)
    assert server.mailbox(USER).messages == [stored[0], *stored[2:]]

    # The next login sees the deletion.
    client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    clients.append(client)
    client.user(USER)
    client.pass_(PASSWORD)
    assert client.stat()[0] == len(stored) - 1
    client.quit()
    golden.check("poplib_methods", server, "poplib.POP3: every method, then a second login")


def test_close_without_quit_deletes_nothing(
    start_server: StartServer, golden: Golden, clients: list[poplib.POP3]
) -> None:
    server = start_server()
    client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    clients.append(client)
    client.user(USER)
    client.pass_(PASSWORD)
    client.dele(1)
    client.close()
    settle(server)
    assert len(server.mailbox(USER)) == len(MESSAGES)
    assert server.history.sessions[0].end_reason == "drop"
    golden.check("poplib_close", server, "poplib.POP3: DELE 1, then close() without quit()")


def test_apop(start_server: StartServer, golden: Golden, clients: list[poplib.POP3]) -> None:
    server = start_server()
    client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    clients.append(client)
    assert client.apop(USER, PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == len(MESSAGES)
    client.quit()
    golden.check("poplib_apop", server, "poplib.POP3.apop()")


def test_stls(start_server: StartServer, golden: Golden, clients: list[poplib.POP3]) -> None:
    server = start_server(tls=True)
    assert server.tls is not None
    client = poplib.POP3("localhost", server.port, timeout=TIMEOUT)
    clients.append(client)
    assert client.stls(server.tls.client_context()).startswith(b"+OK")
    assert "STLS" not in client.capa()  # not offered again under TLS (RFC 2595 s4)
    client.user(USER)
    client.pass_(PASSWORD)
    _, lines, _ = client.retr(4)
    assert joined(lines) == server.mailbox(USER)[3].crlf
    client.quit()
    settle(server)
    assert [c.tls for c in server.history.commands][:2] == [False, False]  # CAPA, STLS
    assert all(c.tls for c in server.history.commands[2:])
    golden.check("poplib_stls", server, "poplib.POP3.stls(context), then a login and RETR 4")


def test_pop3_ssl(start_server: StartServer, golden: Golden, clients: list[poplib.POP3]) -> None:
    server = start_server(tls=True)
    assert server.tls is not None and server.tls_port is not None
    client = poplib.POP3_SSL(
        "localhost", server.tls_port, timeout=TIMEOUT, context=server.tls.client_context()
    )
    clients.append(client)
    with pytest.raises(poplib.error_proto):
        client.stls()  # poplib refuses: TLS is already on
    client.user(USER)
    client.pass_(PASSWORD)
    _, lines, _ = client.retr(3)
    assert joined(lines) == server.mailbox(USER)[2].crlf
    client.quit()
    settle(server)
    assert all(c.tls for c in server.history.commands)
    golden.check("poplib_ssl", server, "poplib.POP3_SSL(context), login and RETR 3")


def test_utf8_then_stls_is_refused(start_server: StartServer, clients: list[poplib.POP3]) -> None:
    # RFC 6856 s2: no STLS after UTF8.  The server stops offering STLS in CAPA, so poplib's
    # stls() refuses on its own; a client that sends STLS anyway gets -ERR naming UTF8.
    server = start_server(tls=True, utf8=True)
    assert server.tls is not None
    client = poplib.POP3("localhost", server.port, timeout=TIMEOUT)
    clients.append(client)
    assert "STLS" in client.capa()
    client.utf8()
    assert "STLS" not in client.capa()
    with pytest.raises(poplib.error_proto, match="STLS not supported"):
        client.stls(server.tls.client_context())
    with pytest.raises(poplib.error_proto, match="not allowed after UTF8"):
        client._shortcmd("STLS")  # type: ignore[attr-defined]
    client.user(USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")  # the session is still usable
    client.quit()


def test_wrong_password_keeps_the_session(
    server_with_one_message: POP3Server, clients: list[poplib.POP3]
) -> None:
    server = server_with_one_message
    client = poplib.POP3(server.host, server.port, timeout=TIMEOUT)
    clients.append(client)
    client.user(USER)
    with pytest.raises(poplib.error_proto, match=r"\[AUTH\]"):
        client.pass_("wrong")
    client.user(USER)
    assert client.pass_(PASSWORD).startswith(b"+OK")
    assert client.stat()[0] == 1
    client.quit()


@pytest.fixture
def server_with_one_message(start_server: StartServer) -> POP3Server:
    return start_server(messages=[MESSAGES[0]])
