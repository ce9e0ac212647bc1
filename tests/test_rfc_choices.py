"""Where the RFCs leave the server a choice a client can notice: what fakepop3 does, pinned.

docs/server.md ("Where the RFCs leave a choice") sets each case beside Dovecot 2.3's default
behaviour; these tests hold fakepop3 to its half of that table.
"""

from __future__ import annotations

import poplib

import pytest

from fakepop3 import History, MailStore, POP3Server, Session, Settings

from .conftest import closes, feed, login, sent

HELLO = b"Subject: hi\r\n\r\nHello\r\n"
AUTH_FAILED = b"-ERR [AUTH] Authentication failed.\r\n"
TOO_MANY = b"-ERR Too many invalid commands, closing.\r\n"


def _session(settings: Settings | None = None) -> Session:
    store = MailStore()
    store.add_user("alice", "secret", messages=[HELLO, HELLO])
    session = Session(store, settings or Settings(), history=History())
    session.greeting()
    return session


def _logged_in(settings: Settings | None = None) -> Session:
    session = _session(settings)
    assert sent(feed(session, b"USER alice\r\n")) == b"+OK\r\n"
    assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")
    return session


# --- the maildrop lock (RFC 1939 s8; Dovecot's default lets a second session in) -------------
def test_a_second_login_gets_in_use_by_default() -> None:
    with POP3Server(users={"alice": "secret"}) as server:
        server.mailbox("alice").add(HELLO)
        first = poplib.POP3(server.host, server.port, timeout=10)
        second = poplib.POP3(server.host, server.port, timeout=10)
        try:
            login(first)
            assert second.user("alice") == b"+OK"
            with pytest.raises(poplib.error_proto, match=r"IN-USE"):
                second.pass_("secret")
        finally:
            first.quit()
            second.close()


def test_without_the_maildrop_lock_a_second_session_gets_in_and_both_deletions_count() -> None:
    with POP3Server(users={"alice": "secret"}, maildrop_lock=False) as server:
        mailbox = server.mailbox("alice")
        mailbox.extend([b"Subject: 1\r\n\r\none\r\n", b"Subject: 2\r\n\r\ntwo\r\n", HELLO])
        first = poplib.POP3(server.host, server.port, timeout=10)
        second = poplib.POP3(server.host, server.port, timeout=10)
        try:
            login(first)
            login(second)  # no -ERR [IN-USE]
            assert first.stat()[0] == second.stat()[0] == 3
            first.dele(1)
            second.dele(1)  # the same message: deleted once
            second.dele(2)
            mailbox.add(b"Subject: new\r\n\r\nnew\r\n")  # mail that arrives meanwhile stays
            first.quit()
            assert [m.raw for m in mailbox.messages][-1] == b"Subject: new\r\n\r\nnew\r\n"
            second.quit()
        finally:
            first.close()
            second.close()
        assert [m.raw for m in mailbox.messages] == [HELLO, b"Subject: new\r\n\r\nnew\r\n"]


def test_the_maildrop_lock_is_a_setting_of_the_core() -> None:
    store = MailStore()
    store.add_user("alice", "secret", messages=[HELLO])
    for lock, second_reply in ((True, b"-ERR [IN-USE] "), (False, b"+OK ")):
        settings = Settings(maildrop_lock=lock)
        sessions = [Session(store, settings, history=History()) for _ in range(2)]
        replies = []
        for session in sessions:
            session.greeting()
            feed(session, b"USER alice\r\n")
            replies.append(sent(feed(session, b"PASS secret\r\n")))
        assert replies[0].startswith(b"+OK ")
        assert replies[1].startswith(second_reply)
        for session in sessions:
            feed(session, b"QUIT\r\n")


# --- bad commands: before login only, the 10th closes; wrong-state ones do not count --------
def test_the_tenth_bad_command_before_login_closes_the_session() -> None:
    session = _session()
    for _ in range(9):
        assert sent(feed(session, b"FOO\r\n")) == b"-ERR Unknown command.\r\n"
    actions = feed(session, b"FOO\r\n")
    assert sent(actions) == TOO_MANY
    assert closes(actions) is not None


def test_wrong_state_commands_and_bad_commands_after_login_are_not_counted() -> None:
    session = _session(Settings(max_bad_commands=3))
    for _ in range(5):
        assert sent(feed(session, b"STAT\r\n")).startswith(b"-ERR STAT is only valid after login")
    session = _logged_in(Settings(max_bad_commands=3))
    for _ in range(30):  # Dovecot closes at the 21st
        assert sent(feed(session, b"FOO\r\n")) == b"-ERR Unknown command: FOO\r\n"
    assert sent(feed(session, b"NOOP\r\n")) == b"+OK\r\n"


def test_max_bad_commands_3_closes_at_the_third_as_dovecot_does() -> None:
    session = _session(Settings(max_bad_commands=3))
    feed(session, b"FOO\r\n")
    feed(session, b"BAR\r\n")
    actions = feed(session, b"BAZ\r\n")
    assert sent(actions) == TOO_MANY
    assert closes(actions) is not None


# --- user names: exact bytes, case and all; 8-bit bytes are just a name nobody has ----------
@pytest.mark.parametrize("name", [b"ALICE", b"Alice", b"alic\xc3\xa9"])
def test_a_user_name_matches_exactly(name: bytes) -> None:
    session = _session()
    assert sent(feed(session, b"USER " + name + b"\r\n")) == b"+OK\r\n"
    assert sent(feed(session, b"PASS secret\r\n")) == AUTH_FAILED


def test_a_utf8_user_name_logs_in_and_other_8bit_bytes_are_refused() -> None:
    store = MailStore()
    store.add_user("zo\u00eb", "secret")
    session = Session(store, Settings(), history=History())
    session.greeting()
    assert sent(feed(session, b"USER zo\xc3\xab\r\n")) == b"+OK\r\n"  # no UTF8 command needed
    assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")
    session = _session()
    reply = sent(feed(session, b"USER zo\xeb\r\n"))  # Latin-1, not UTF-8
    assert reply == b"-ERR Command line is not valid UTF-8.\r\n"


# --- mail with UTF-8 headers to a client that never sent UTF8 (RFC 6856 s2.1) ---------------
INTERNATIONAL = "Subject: Grüße\r\n\r\nHallo\r\n".encode()
UTF8_REFUSED = b"-ERR [UTF8] This message has UTF-8 headers: send UTF8 first (RFC 6856 s2.1).\r\n"


@pytest.mark.parametrize("utf8", [False, True])
def test_utf8_headers_are_sent_as_stored_unless_utf8_is_offered(utf8: bool) -> None:
    store = MailStore()
    store.add_user("alice", "secret")
    store.mailbox("alice").add(INTERNATIONAL)
    session = Session(store, Settings(utf8=utf8), history=History())
    session.greeting()
    feed(session, b"USER alice\r\n")
    assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")
    stored = b"+OK %d octets\r\n" % len(INTERNATIONAL) + INTERNATIONAL + b".\r\n"
    assert sent(feed(session, b"RETR 1\r\n")) == (UTF8_REFUSED if utf8 else stored)
    top = sent(feed(session, b"TOP 1 0\r\n"))
    if utf8:
        assert top == UTF8_REFUSED
    else:
        assert top == b"+OK\r\n" + INTERNATIONAL.split(b"\r\n\r\n")[0] + b"\r\n\r\n.\r\n"
    assert sent(feed(session, b"LIST 1\r\n")) == b"+OK 1 %d\r\n" % len(INTERNATIONAL)


def test_in_utf8_mode_utf8_headers_are_sent_as_stored() -> None:
    store = MailStore()
    store.add_user("alice", "secret")
    store.mailbox("alice").add(INTERNATIONAL)
    session = Session(store, Settings(utf8=True), history=History())
    session.greeting()
    assert sent(feed(session, b"UTF8\r\n")) == b"+OK UTF8 enabled\r\n"
    feed(session, b"USER alice\r\n")
    feed(session, b"PASS secret\r\n")
    stored = b"+OK %d octets\r\n" % len(INTERNATIONAL) + INTERNATIONAL + b".\r\n"
    assert sent(feed(session, b"RETR 1\r\n")) == stored


# --- malformed login input: a plain -ERR naming the problem, not [AUTH] ---------------------
@pytest.mark.parametrize(
    ("lines", "reply"),
    [
        ((b"USER alice", b"PASS"), b"-ERR PASS needs a password.\r\n"),
        ((b"AUTH PLAIN !!!!",), b"-ERR Invalid base64 in initial response.\r\n"),
        ((b"AUTH PLAIN AGZvbw==",), b"-ERR Malformed SASL response.\r\n"),  # "\0foo": no password
        ((b"AUTH CRAM-MD5 YWJj",), b"-ERR CRAM-MD5 takes no initial response.\r\n"),
    ],
)
def test_malformed_login_input_gets_a_plain_err(lines: tuple[bytes, ...], reply: bytes) -> None:
    session = _session()
    for line in lines[:-1]:
        assert sent(feed(session, line + b"\r\n")).startswith(b"+OK")
    assert sent(feed(session, lines[-1] + b"\r\n")) == reply
    assert sent(feed(session, b"USER alice\r\n")) == b"+OK\r\n"  # the session goes on
    assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")


def test_wrong_credentials_get_auth() -> None:
    session = _session()
    feed(session, b"USER alice\r\n")
    assert sent(feed(session, b"PASS wrong\r\n")) == AUTH_FAILED


# --- command lines over 255 octets (RFC 2449 s4) ---------------------------------------------
@pytest.mark.parametrize("logged_in", [False, True])
def test_a_line_over_255_octets_is_refused_and_the_session_goes_on(logged_in: bool) -> None:
    session = _logged_in() if logged_in else _session()
    exact = b"USER " + b"a" * 248 + b"\r\n"  # 255 octets with its CRLF
    assert len(exact) == 255
    if not logged_in:
        assert sent(feed(session, exact)) == b"+OK\r\n"
    long = b"NOOP " + b"a" * 251 + b"\r\n"  # 258 octets
    assert sent(feed(session, long)) == b"-ERR Command line too long (at most 255 octets).\r\n"
    if logged_in:
        assert sent(feed(session, b"NOOP\r\n")) == b"+OK\r\n"
    else:
        assert sent(feed(session, b"USER alice\r\n")) == b"+OK\r\n"
