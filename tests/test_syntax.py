"""Command-line syntax: strict by default, as Dovecot is; lenient on request.

RFC 1939 s3: "Keywords and arguments are each separated by a single SPACE character", and a
server "MUST respond to an unrecognized, unimplemented, or syntactically invalid command by
responding with a negative status indicator".  Each malformed line gets an -ERR that says what
is wrong and is never acted on; ``lenient_syntax=True`` reads them as the first release did.
"""

from __future__ import annotations

import poplib

import pytest

from fakepop3 import History, MailStore, POP3Server, Session, Settings, State

from .conftest import RawClient, feed, login, sent

HELLO = b"Subject: hi\r\n\r\nHello\r\n"
NOISE = b"-ERR Noise after the last argument: a space at the end of the line (RFC 1939 s3).\r\n"
SINGLE = b"-ERR Arguments are separated by a single space (RFC 1939 s3).\r\n"
TAB = b"-ERR Command names and arguments are separated by one space, not a TAB (RFC 1939 s3).\r\n"
LEADING = b"-ERR Unknown command: the line starts with a space or TAB (RFC 1939 s3).\r\n"
DELETED = b"+OK Marked to be deleted.\r\n"
BARE_CR = b"-ERR Command line contains a bare CR; end it with one CRLF.\r\n"


def _session(lenient: bool = False, *, logged_in: bool = True) -> tuple[Session, MailStore]:
    store = MailStore()
    store.add_user("alice", "secret", messages=[HELLO, HELLO])
    session = Session(store, Settings(lenient_syntax=lenient), history=History())
    session.greeting()
    if logged_in:
        assert sent(feed(session, b"USER alice\r\n")) == b"+OK\r\n"
        assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")
    return session, store


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"DELE 1 ", NOISE),
        (b"STAT ", NOISE),
        (b"DELE  1", SINGLE),
        (b"TOP 1  0", SINGLE),
        (b"TOP 1\t0", TAB),
        (b"DELE\t1", TAB),
        (b" DELE 1", LEADING),
        (b"\tSTAT", LEADING),
        (b"DELE 1\r", BARE_CR),
        (b"DE\rLE 1", BARE_CR),
    ],
)
def test_a_malformed_line_is_refused_and_not_acted_on(line: bytes, reply: bytes) -> None:
    session, store = _session()
    assert sent(feed(session, line + b"\r\n")) == reply
    assert not session.deleted
    assert sent(feed(session, b"STAT\r\n")) == b"+OK 2 %d\r\n" % (2 * len(HELLO))
    assert sent(feed(session, b"QUIT\r\n")).startswith(b"+OK")
    assert len(store.mailbox("alice")) == 2  # nothing was deleted


@pytest.mark.parametrize(
    ("line", "reply"),
    [
        (b"USER alice\t", TAB),
        (b"USER alice ", NOISE),
        (b"USER  alice", SINGLE),
        (b"APOP alice 0123456789abcdef0123456789abcdef ", NOISE),
        (b"AUTH  PLAIN", SINGLE),
    ],
)
def test_malformed_login_lines_are_refused(line: bytes, reply: bytes) -> None:
    session, _ = _session(logged_in=False)
    assert sent(feed(session, line + b"\r\n")) == reply
    assert session.pending_user is None and session.state is State.AUTHORIZATION
    assert session.bad_commands == 1  # it counts as a bad command before login


def test_pass_keeps_the_rest_of_the_line_spaces_and_all() -> None:
    store = MailStore()
    store.add_user("carol", " two  spaces ")
    session = Session(store, Settings(), history=History())
    session.greeting()
    assert sent(feed(session, b"USER carol\r\n")) == b"+OK\r\n"
    assert sent(feed(session, b"PASS  two  spaces \r\n")).startswith(b"+OK")


@pytest.mark.parametrize(
    "line", [b"DELE 1 ", b"DELE  1", b"DELE 1\t", b" DELE 1", b"dele 1 ", b"DELE 1\t "]
)
def test_lenient_syntax_reads_them_as_the_first_release_did(line: bytes) -> None:
    session, _ = _session(lenient=True)
    assert sent(feed(session, line + b"\r\n")) == DELETED
    assert session.deleted == {1}


def test_a_strict_server_and_a_lenient_one_share_no_parse_of_a_malformed_line() -> None:
    # The fast lane caches parsed lines for every session of the process: a lenient session
    # must not leave behind a parse that a strict one would then use.
    lenient, _ = _session(lenient=True)
    strict, _ = _session()
    for _ in range(3):
        assert lenient.answer_line(b"NOOP  \r\n") == (b"+OK\r\n",)
        assert strict.answer_line(b"NOOP  \r\n") is None  # the general path refuses it
    assert sent(feed(strict, b"NOOP  \r\n")) == NOISE


def test_over_a_real_socket_nothing_is_deleted_by_a_malformed_dele() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        server.mailbox("alice").add(HELLO)
        with RawClient(server.host, server.port) as raw:
            assert raw.greeting.startswith(b"+OK")
            raw.login()
            assert raw.command(b"DELE 1 ") == NOISE
            assert raw.command(b" DELE 1") == LEADING
            assert raw.command(b"QUIT").startswith(b"+OK")
        server.wait_for_sessions(1)
        client = poplib.POP3(server.host, server.port, timeout=10)
        login(client)
        assert client.stat() == (1, len(HELLO))
        client.quit()
        server.history.assert_sent("DELE", times=0)


def test_lenient_syntax_reaches_the_server_over_a_real_socket() -> None:
    with POP3Server(users={"alice": "secret"}, lenient_syntax=True) as server:
        server.mailbox("alice").add(HELLO)
        with RawClient(server.host, server.port) as raw:
            assert raw.greeting.startswith(b"+OK")
            raw.login()
            assert raw.command(b"DELE 1 ") == DELETED
            assert raw.command(b"QUIT").startswith(b"+OK")
        server.wait_for_sessions(1)
        assert len(server.mailbox("alice")) == 0
