"""Unit tests of the sans-IO protocol core: bytes in with ``receive_data``, actions out, no sockets."""

from __future__ import annotations

import ast
import hashlib
import re
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import fakepop3
from fakepop3 import History, MailStore, Session, Settings, State
from fakepop3.auth import Authenticator
from fakepop3.protocol import CAPABILITIES, MAX_LINE, Close, Send

from .conftest import closes, feed, sent

HELLO = b"Subject: Hello\r\n\r\nHi!\r\n"
DOTS = b"Subject: dots\r\n\r\n.leading\r\n.\r\nend\r\n"


def make_store(*messages: bytes) -> MailStore:
    store = MailStore()
    store.add_user("alice", "secret", messages=messages)
    store.add_user("bob", "my pass word")
    return store


def new_session(store: MailStore | None = None, **settings: object) -> Session:
    session = Session(
        store if store is not None else make_store(HELLO, DOTS),
        Settings(**settings),  # type: ignore[arg-type]
        history=History(),
    )
    [greeting] = session.greeting()
    assert isinstance(greeting, Send) and sent([greeting]).startswith(b"+OK ")
    return session


def logged_in(store: MailStore | None = None, **settings: object) -> Session:
    session = new_session(store, **settings)
    assert sent(feed(session, b"USER alice\r\n")) == b"+OK\r\n"
    assert sent(feed(session, b"PASS secret\r\n")).startswith(b"+OK")
    assert session.state is State.TRANSACTION
    return session


def reply(session: Session, line: bytes) -> bytes:
    return sent(feed(session, line + b"\r\n"))


# --- greeting and APOP ----------------------------------------------------------------------
def test_greeting_carries_a_timestamp_unique_per_greeting() -> None:
    store = make_store()
    stamps = set()
    for _ in range(50):
        session = Session(store)
        text = sent(session.greeting())
        match = re.fullmatch(rb"\+OK .*(<[^<>@]+@[^<>@]+>)\r\n", text)
        assert match, text
        assert match.group(1).decode() == session.timestamp
        stamps.add(session.timestamp)
    assert len(stamps) == 50


def test_greeting_has_no_timestamp_when_apop_is_disabled() -> None:
    session = Session(make_store(), Settings(disabled=frozenset({"APOP"})))
    assert b"<" not in sent(session.greeting())
    assert reply(session, b"APOP alice " + b"0" * 32).startswith(b"-ERR")


def apop_digest(session: Session, password: str) -> bytes:
    return hashlib.md5((session.timestamp + password).encode()).hexdigest().encode()


def test_apop_with_the_right_digest_logs_in() -> None:
    session = new_session()
    assert reply(session, b"APOP alice " + apop_digest(session, "secret")) == b"+OK Logged in.\r\n"
    assert session.state is State.TRANSACTION
    assert session.user == "alice"


def test_apop_accepts_upper_case_hex() -> None:
    session = new_session()
    assert reply(session, b"APOP alice " + apop_digest(session, "secret").upper()).startswith(
        b"+OK"
    )


def test_apop_digest_of_another_greeting_is_refused() -> None:
    store = make_store()
    first, second = new_session(store), new_session(store)
    assert reply(second, b"APOP alice " + apop_digest(first, "secret")) == (
        b"-ERR [AUTH] Authentication failed.\r\n"
    )
    assert second.state is State.AUTHORIZATION


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"APOP alice " + b"0" * 32, b"-ERR [AUTH] Authentication failed.\r\n"),
        (b"APOP nobody " + b"0" * 32, b"-ERR [AUTH] Authentication failed.\r\n"),
        (b"APOP alice xyz", b"-ERR APOP digest must be 32 hexadecimal digits.\r\n"),
        (b"APOP alice " + b"g" * 32, b"-ERR APOP digest must be 32 hexadecimal digits.\r\n"),
        (b"APOP alice", b"-ERR APOP needs a user name and a digest.\r\n"),
        (b"APOP", b"-ERR APOP needs a user name and a digest.\r\n"),
        (b"APOP alice " + b"0" * 32 + b" extra", b"-ERR Too many arguments for APOP.\r\n"),
    ],
)
def test_apop_errors(line: bytes, expected: bytes) -> None:
    session = new_session()
    assert reply(session, line) == expected
    assert session.state is State.AUTHORIZATION
    assert reply(session, b"APOP alice " + apop_digest(session, "secret")).startswith(b"+OK")


# --- USER / PASS ----------------------------------------------------------------------------
def test_user_pass_logs_in_and_records_the_user() -> None:
    session = new_session()
    assert reply(session, b"USER alice") == b"+OK\r\n"
    assert reply(session, b"PASS secret") == b"+OK Logged in.\r\n"
    assert session.user == "alice"
    assert session.record.user == "alice"


def test_pass_keeps_spaces_in_the_password() -> None:
    session = new_session()
    reply(session, b"USER bob")
    assert reply(session, b"PASS my pass word").startswith(b"+OK")
    assert session.user == "bob"


def test_pass_with_only_part_of_a_spaced_password_fails() -> None:
    session = new_session()
    reply(session, b"USER bob")
    assert reply(session, b"PASS my") == b"-ERR [AUTH] Authentication failed.\r\n"


def test_wrong_password_is_auth_error_and_user_must_be_sent_again() -> None:
    session = new_session()
    reply(session, b"USER alice")
    assert reply(session, b"PASS wrong") == b"-ERR [AUTH] Authentication failed.\r\n"
    assert session.state is State.AUTHORIZATION
    assert reply(session, b"PASS secret") == b"-ERR No username given; send USER first.\r\n"
    reply(session, b"USER alice")
    assert reply(session, b"PASS secret").startswith(b"+OK")


def test_unknown_user_gets_ok_to_user_and_auth_error_to_pass() -> None:
    session = new_session()
    assert reply(session, b"USER nobody") == b"+OK\r\n"
    assert reply(session, b"PASS secret") == b"-ERR [AUTH] Authentication failed.\r\n"


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"USER", b"-ERR USER needs a user name.\r\n"),
        (b"USER alice bob", b"-ERR Too many arguments for USER.\r\n"),
        (b"PASS secret", b"-ERR No username given; send USER first.\r\n"),
    ],
)
def test_user_pass_argument_errors(line: bytes, expected: bytes) -> None:
    session = new_session()
    assert reply(session, line) == expected
    assert session.state is State.AUTHORIZATION


def test_pass_without_password() -> None:
    session = new_session()
    reply(session, b"USER alice")
    assert reply(session, b"PASS") == b"-ERR PASS needs a password.\r\n"
    assert reply(session, b"PASS secret").startswith(b"+OK")


def test_second_login_to_a_locked_maildrop_gets_in_use() -> None:
    store = make_store(HELLO)
    first = logged_in(store)
    second = new_session(store)
    reply(second, b"USER alice")
    assert reply(second, b"PASS secret") == (
        b"-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
    )
    assert second.state is State.AUTHORIZATION
    assert reply(second, b"APOP alice " + apop_digest(second, "secret")).startswith(
        b"-ERR [IN-USE]"
    )
    first.connection_lost()
    reply(second, b"USER alice")
    assert reply(second, b"PASS secret").startswith(b"+OK")


def test_in_use_and_auth_codes_go_when_resp_codes_are_disabled() -> None:
    store = make_store()
    logged_in(store)
    second = new_session(store, disabled=frozenset({"RESP-CODES"}))
    reply(second, b"USER alice")
    assert reply(second, b"PASS secret") == b"-ERR Mailbox is locked by another POP3 session.\r\n"
    reply(second, b"USER alice")
    assert reply(second, b"PASS nope") == b"-ERR Authentication failed.\r\n"


# --- case-insensitivity and state checks ----------------------------------------------------
@pytest.mark.parametrize("line", [b"user alice", b"User alice", b"uSeR alice"])
def test_commands_are_case_insensitive_before_login(line: bytes) -> None:
    session = new_session()
    assert reply(session, line) == b"+OK\r\n"
    assert reply(session, b"pass secret").startswith(b"+OK")
    assert session.history.commands[0].command == "USER"


@pytest.mark.parametrize("line", [b"stat", b"Stat", b"list", b"uidl", b"noop", b"rset", b"capa"])
def test_commands_are_case_insensitive_in_transaction(line: bytes) -> None:
    session = logged_in()
    assert reply(session, line).startswith(b"+OK")


def test_lower_case_arguments_are_kept_as_sent() -> None:
    session = new_session()
    reply(session, b"user Alice")
    assert reply(session, b"pass secret") == b"-ERR [AUTH] Authentication failed.\r\n"


@pytest.mark.parametrize(
    "line",
    [
        b"STAT",
        b"LIST",
        b"LIST 1",
        b"RETR 1",
        b"DELE 1",
        b"NOOP",
        b"RSET",
        b"TOP 1 0",
        b"UIDL",
        b"UIDL 1",
    ],
)
def test_transaction_commands_before_login(line: bytes) -> None:
    session = new_session()
    name = line.split()[0]
    assert reply(session, line) == (
        b"-ERR " + name + b" is only valid after login (TRANSACTION state).\r\n"
    )
    assert session.state is State.AUTHORIZATION


@pytest.mark.parametrize("line", [b"USER alice", b"PASS secret", b"APOP alice " + b"0" * 32])
def test_authorization_commands_after_login(line: bytes) -> None:
    session = logged_in()
    name = line.split()[0]
    assert reply(session, line) == (
        b"-ERR " + name + b" is only valid before login (AUTHORIZATION state).\r\n"
    )
    assert session.state is State.TRANSACTION
    assert session.user == "alice"


@pytest.mark.parametrize("logged", [False, True])
def test_unknown_and_obsolete_commands(logged: bool) -> None:
    session = logged_in() if logged else new_session()
    assert reply(session, b"XYZZY 1").startswith(b"-ERR Unknown command")
    assert reply(session, b"LAST") == b"-ERR Command not supported (obsolete).\r\n"
    assert reply(session, b"RPOP alice") == b"-ERR Command not supported (obsolete).\r\n"
    assert reply(session, b"CAPA").startswith(b"+OK")


# --- STAT / LIST / UIDL / RETR / TOP ---------------------------------------------------------
def test_stat_counts_exact_octets() -> None:
    session = logged_in()
    assert reply(session, b"STAT") == f"+OK 2 {len(HELLO) + len(DOTS)}\r\n".encode()


def test_list_and_list_n() -> None:
    session = logged_in()
    assert reply(session, b"LIST") == (
        f"+OK 2 messages:\r\n1 {len(HELLO)}\r\n2 {len(DOTS)}\r\n.\r\n".encode()
    )
    assert reply(session, b"LIST 2") == f"+OK 2 {len(DOTS)}\r\n".encode()


def test_uidl_and_uidl_n() -> None:
    store = make_store(HELLO, DOTS)
    uids = store.mailbox("alice").uids
    session = logged_in(store)
    assert reply(session, b"UIDL") == f"+OK\r\n1 {uids[0]}\r\n2 {uids[1]}\r\n.\r\n".encode()
    assert reply(session, b"UIDL 1") == f"+OK 1 {uids[0]}\r\n".encode()


def test_empty_maildrop() -> None:
    session = logged_in(make_store())
    assert reply(session, b"STAT") == b"+OK 0 0\r\n"
    assert reply(session, b"LIST") == b"+OK 0 messages:\r\n.\r\n"
    assert reply(session, b"UIDL") == b"+OK\r\n.\r\n"
    assert reply(session, b"RETR 1") == b"-ERR There's no message 1.\r\n"


def test_retr_is_dot_stuffed_and_terminated() -> None:
    session = logged_in()
    assert reply(session, b"RETR 2") == (
        f"+OK {len(DOTS)} octets\r\n".encode()
        + b"Subject: dots\r\n\r\n..leading\r\n..\r\nend\r\n.\r\n"
    )


def test_retr_sends_the_message_without_copying_it_into_the_status_line() -> None:
    session = logged_in()
    [action] = feed(session, b"RETR 1\r\n")
    assert isinstance(action, Send)
    status = f"+OK {len(HELLO)} octets\r\n".encode()
    assert [bytes(b) for b in action.buffers] == [status, HELLO, b".\r\n"]
    assert action.size == len(status) + len(HELLO) + 3


@pytest.mark.parametrize(
    ("raw", "wire"),
    [
        (b"a: b\n\nbare\nLF\n", b"a: b\r\n\r\nbare\r\nLF\r\n"),
        (b"a: b\r\n\r\nno final newline", b"a: b\r\n\r\nno final newline\r\n"),
        (b"a: b\r\n\r\n\xe9t\xe9 \xff\x80\r\n", b"a: b\r\n\r\n\xe9t\xe9 \xff\x80\r\n"),
        (b".starts with a dot\r\n", b"..starts with a dot\r\n"),
        (b"a: b\n\n.\n..\n", b"a: b\r\n\r\n..\r\n...\r\n"),
        (b"", b""),
        (b"Subject: empty body\r\n\r\n", b"Subject: empty body\r\n\r\n"),
    ],
)
def test_retr_and_list_size_are_byte_exact(raw: bytes, wire: bytes) -> None:
    session = logged_in(make_store(raw))
    size = len(wire.replace(b"\r\n..", b"\r\n.").removeprefix(b"."))
    assert reply(session, b"LIST 1") == f"+OK 1 {size}\r\n".encode()
    assert reply(session, b"RETR 1") == f"+OK {size} octets\r\n".encode() + wire + b".\r\n"


def test_top_sends_headers_blank_line_and_n_stuffed_body_lines() -> None:
    session = logged_in()
    assert reply(session, b"TOP 2 0") == b"+OK\r\nSubject: dots\r\n\r\n.\r\n"
    assert reply(session, b"TOP 2 1") == b"+OK\r\nSubject: dots\r\n\r\n..leading\r\n.\r\n"
    assert reply(session, b"TOP 2 2") == b"+OK\r\nSubject: dots\r\n\r\n..leading\r\n..\r\n.\r\n"
    whole = b"+OK\r\nSubject: dots\r\n\r\n..leading\r\n..\r\nend\r\n.\r\n"
    assert reply(session, b"TOP 2 3") == whole
    assert reply(session, b"TOP 2 999") == whole


@pytest.mark.parametrize(
    ("raw", "top0"),
    [
        (b"a: b\nc: d\n\nbody\n", b"a: b\r\nc: d\r\n\r\n"),
        (b"a: b\r\nno body and no blank line", b"a: b\r\nno body and no blank line\r\n"),
        (b"\r\nbody only\r\n", b"\r\n"),
        (b"", b""),
    ],
)
def test_top_zero_on_odd_messages(raw: bytes, top0: bytes) -> None:
    session = logged_in(make_store(raw))
    assert reply(session, b"TOP 1 0") == b"+OK\r\n" + top0 + b".\r\n"


# --- argument errors ------------------------------------------------------------------------
@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"RETR", b"-ERR RETR needs a message number.\r\n"),
        (b"RETR 1 2", b"-ERR Too many arguments for RETR.\r\n"),
        (b"RETR x", b"-ERR Invalid message number: x\r\n"),
        (b"RETR -1", b"-ERR Invalid message number: -1\r\n"),
        (b"RETR 1.0", b"-ERR Invalid message number: 1.0\r\n"),
        (b"RETR \xd9\xa1", b"-ERR Invalid message number: \xd9\xa1\r\n"),  # Arabic-Indic 1
        (b"RETR 0", b"-ERR There's no message 0.\r\n"),
        (b"RETR 3", b"-ERR There's no message 3.\r\n"),
        (b"RETR 99999999999999999999", b"-ERR There's no message 99999999999999999999.\r\n"),
        (b"DELE", b"-ERR DELE needs a message number.\r\n"),
        (b"DELE 1 2", b"-ERR Too many arguments for DELE.\r\n"),
        (b"DELE x", b"-ERR Invalid message number: x\r\n"),
        (b"DELE 0", b"-ERR There's no message 0.\r\n"),
        (b"DELE 3", b"-ERR There's no message 3.\r\n"),
        (b"LIST 1 2", b"-ERR Too many arguments for LIST.\r\n"),
        (b"LIST x", b"-ERR Invalid message number: x\r\n"),
        (b"LIST 0", b"-ERR There's no message 0.\r\n"),
        (b"LIST 3", b"-ERR There's no message 3.\r\n"),
        (b"UIDL 1 2", b"-ERR Too many arguments for UIDL.\r\n"),
        (b"UIDL x", b"-ERR Invalid message number: x\r\n"),
        (b"UIDL 0", b"-ERR There's no message 0.\r\n"),
        (b"UIDL 3", b"-ERR There's no message 3.\r\n"),
        (b"TOP", b"-ERR TOP needs a message number and a number of lines.\r\n"),
        (b"TOP 1", b"-ERR TOP needs a message number and a number of lines.\r\n"),
        (b"TOP 1 2 3", b"-ERR Too many arguments for TOP.\r\n"),
        (b"TOP x 1", b"-ERR Invalid message number: x\r\n"),
        (b"TOP 0 1", b"-ERR There's no message 0.\r\n"),
        (b"TOP 3 1", b"-ERR There's no message 3.\r\n"),
        (b"TOP 1 -1", b"-ERR Invalid size: -1\r\n"),
        (b"TOP 1 x", b"-ERR Invalid size: x\r\n"),
        (b"STAT 1", b"-ERR Too many arguments for STAT.\r\n"),
        (b"NOOP 1", b"-ERR Too many arguments for NOOP.\r\n"),
        (b"RSET 1", b"-ERR Too many arguments for RSET.\r\n"),
        (b"CAPA x", b"-ERR Too many arguments for CAPA.\r\n"),
        (b"QUIT now", b"-ERR Too many arguments for QUIT.\r\n"),
    ],
)
def test_argument_errors_get_a_clear_err_and_the_session_goes_on(
    line: bytes, expected: bytes
) -> None:
    session = logged_in()
    assert reply(session, line) == expected
    assert session.state is State.TRANSACTION
    assert reply(session, b"STAT") == f"+OK 2 {len(HELLO) + len(DOTS)}\r\n".encode()


def test_long_arguments_are_cut_in_error_text() -> None:
    session = logged_in()
    text = reply(session, b"RETR " + b"x" * 200)
    assert text == b"-ERR Invalid message number: " + b"x" * 40 + b"\r\n"


# --- DELE / RSET / QUIT ----------------------------------------------------------------------
def test_deleted_message_is_gone_for_every_command() -> None:
    session = logged_in()
    assert reply(session, b"DELE 1") == b"+OK Marked to be deleted.\r\n"
    assert reply(session, b"STAT") == f"+OK 1 {len(DOTS)}\r\n".encode()
    assert reply(session, b"LIST") == f"+OK 1 messages:\r\n2 {len(DOTS)}\r\n.\r\n".encode()
    assert reply(session, b"UIDL").count(b"\r\n") == 3  # status, message 2, "."
    for line in (b"LIST 1", b"UIDL 1", b"RETR 1", b"TOP 1 0", b"DELE 1"):
        assert reply(session, line) == b"-ERR Message is deleted.\r\n", line
    assert reply(session, b"RETR 2").startswith(b"+OK")  # numbers do not shift


def test_rset_unmarks() -> None:
    session = logged_in()
    reply(session, b"DELE 1")
    reply(session, b"DELE 2")
    assert reply(session, b"STAT") == b"+OK 0 0\r\n"
    assert (
        reply(session, b"RSET") == f"+OK 2 messages ({len(HELLO) + len(DOTS)} octets)\r\n".encode()
    )
    assert reply(session, b"STAT") == f"+OK 2 {len(HELLO) + len(DOTS)}\r\n".encode()
    assert reply(session, b"RETR 1").startswith(b"+OK")


def test_quit_in_transaction_removes_marked_messages() -> None:
    store = make_store(HELLO, DOTS)
    keep = store.mailbox("alice")[1]
    session = logged_in(store)
    reply(session, b"DELE 1")
    actions = feed(session, b"QUIT\r\n")
    assert sent(actions) == b"+OK Logging out.\r\n"
    assert closes(actions) == "quit"
    assert session.state is State.CLOSED
    assert store.mailbox("alice").messages == [keep]
    assert not store.mailbox("alice").locked
    assert session.record.end_reason is None  # the transport reports the end
    session.connection_lost("quit")
    assert session.record.end_reason == "quit"


def test_quit_without_deletions_keeps_everything() -> None:
    store = make_store(HELLO, DOTS)
    session = logged_in(store)
    reply(session, b"DELE 1")
    reply(session, b"RSET")
    assert closes(feed(session, b"QUIT\r\n")) == "quit"
    assert len(store.mailbox("alice")) == 2


def test_quit_in_authorization_closes_without_update() -> None:
    session = new_session()
    actions = feed(session, b"QUIT\r\n")
    assert sent(actions) == b"+OK Logging out.\r\n"
    assert closes(actions) == "quit"
    assert session.state is State.CLOSED


@pytest.mark.parametrize("reason", ["drop", "timeout", "server"])
def test_connection_lost_in_transaction_deletes_nothing(reason: str) -> None:
    store = make_store(HELLO, DOTS)
    session = logged_in(store)
    reply(session, b"DELE 1")
    reply(session, b"DELE 2")
    session.connection_lost(reason)
    assert len(store.mailbox("alice")) == 2
    assert not store.mailbox("alice").locked
    assert session.record.end_reason == reason
    assert session.state is State.CLOSED


def test_nothing_is_handled_after_quit() -> None:
    session = new_session()
    session.receive_data(b"QUIT\r\nNOOP\r\nSTAT\r\n")
    assert closes(session.next_actions() or []) == "quit"
    assert session.next_actions() is None
    session.receive_data(b"NOOP\r\n")
    assert session.next_actions() is None


def test_snapshot_at_login_and_new_mail_at_next_login() -> None:
    store = make_store(HELLO)
    mailbox = store.mailbox("alice")
    session = logged_in(store)
    late = mailbox.add(DOTS)
    assert reply(session, b"STAT") == f"+OK 1 {len(HELLO)}\r\n".encode()
    assert reply(session, b"RETR 2") == b"-ERR There's no message 2.\r\n"
    reply(session, b"DELE 1")
    feed(session, b"QUIT\r\n")
    session.connection_lost("quit")
    assert mailbox.messages == [late]  # the mail that came meanwhile stays
    again = logged_in(store)
    assert reply(again, b"STAT") == f"+OK 1 {len(DOTS)}\r\n".encode()
    assert reply(again, b"UIDL 1") == f"+OK 1 {late.uid}\r\n".encode()


def test_deletion_marks_are_per_session() -> None:
    store = make_store(HELLO, DOTS)
    first = logged_in(store)
    reply(first, b"DELE 1")
    first.connection_lost("drop")
    second = logged_in(store)
    assert reply(second, b"STAT") == f"+OK 2 {len(HELLO) + len(DOTS)}\r\n".encode()


def test_noop() -> None:
    assert reply(logged_in(), b"NOOP") == b"+OK\r\n"


# --- CAPA ------------------------------------------------------------------------------------
def capa(session: Session) -> list[str]:
    text = reply(session, b"CAPA")
    lines = text.decode().split("\r\n")
    assert lines[0].startswith("+OK") and lines[-2:] == [".", ""], text
    return lines[1:-2]


def test_capa_lists_what_the_server_does() -> None:
    session = new_session(mechanisms=())
    before = capa(session)
    for cap in ("TOP", "UIDL", "USER", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
        assert cap in before
    assert not any(
        c.startswith(("IMPLEMENTATION", "STLS", "SASL", "EXPIRE", "LOGIN-DELAY")) for c in before
    )
    reply(session, b"USER alice")
    reply(session, b"PASS secret")
    after = capa(session)
    assert "IMPLEMENTATION fakepop3" in after
    assert set(before) <= set(after)  # RFC 2449: AUTHORIZATION capabilities stay announced


def test_capa_follows_disabled_capabilities_and_commands_go_with_them() -> None:
    session = new_session(disabled=frozenset({"top", "UIDL"}))
    caps = capa(session)
    assert "TOP" not in caps and "UIDL" not in caps
    reply(session, b"USER alice")
    reply(session, b"PASS secret")
    assert reply(session, b"TOP 1 0") == b"-ERR Unknown command: TOP\r\n"
    assert reply(session, b"UIDL") == b"-ERR Unknown command: UIDL\r\n"


def test_capa_lists_expire_and_login_delay_when_set() -> None:
    caps = capa(new_session(expire="never", login_delay=60))
    assert "EXPIRE NEVER" in caps and "LOGIN-DELAY 60" in caps


def test_settings_reject_unknown_capabilities_and_short_lines() -> None:
    with pytest.raises(ValueError, match="unknown capability to disable: BOGUS"):
        Settings(disabled=frozenset({"bogus"}))
    with pytest.raises(ValueError, match="at least 255"):
        Settings(max_line=100)


# --- line handling: pipelining, overlong lines, garbage --------------------------------------
def test_pipelined_commands_are_answered_in_order() -> None:
    session = new_session()
    session.receive_data(b"USER alice\r\nPASS secret\r\nSTAT\r\nLIST 1\r\nNOOP\r\nQUIT\r\n")
    replies = []
    while (actions := session.next_actions()) is not None:
        replies.append(sent(actions))
    assert replies == [
        b"+OK\r\n",
        b"+OK Logged in.\r\n",
        f"+OK 2 {len(HELLO) + len(DOTS)}\r\n".encode(),
        f"+OK 1 {len(HELLO)}\r\n".encode(),
        b"+OK\r\n",
        b"+OK Logging out.\r\n",
    ]


def test_a_command_split_across_packets_and_lf_only_line_ends() -> None:
    session = new_session()
    for piece in (b"US", b"ER al", b"ice\n", b"PASS sec", b"ret\r", b"\n"):
        session.receive_data(piece)
    assert sent(session.next_actions() or []) == b"+OK\r\n"
    assert sent(session.next_actions() or []) == b"+OK Logged in.\r\n"
    assert session.next_actions() is None


def test_a_line_of_exactly_255_octets_is_accepted() -> None:
    session = new_session()
    line = b"USER " + b"a" * (MAX_LINE - len(b"USER ") - 2) + b"\r\n"
    assert len(line) == MAX_LINE
    assert sent(feed(session, line)) == b"+OK\r\n"


@pytest.mark.parametrize("size", [MAX_LINE - 1, MAX_LINE, 1000, 70_000])
def test_overlong_line_gets_one_err_and_the_session_goes_on(size: int) -> None:
    session = logged_in()
    session.receive_data(b"NOOP " + b"x" * size + b"\r\nSTAT\r\n")
    assert sent(session.next_actions() or []) == (
        b"-ERR Command line too long (at most 255 octets).\r\n"
    )
    assert sent(session.next_actions() or []).startswith(b"+OK 2 ")
    assert session.next_actions() is None


def test_overlong_line_in_many_packets_is_discarded_not_buffered() -> None:
    session = logged_in()
    chunk = b"x" * 65536
    tracemalloc.start()
    try:
        session.receive_data(b"RETR 1")
        baseline = tracemalloc.get_traced_memory()[0]
        for _ in range(160):  # 10 MB without a line end
            session.receive_data(chunk)
            assert session.next_actions() is None  # nothing to answer until the line ends
        grown = tracemalloc.get_traced_memory()[0] - baseline
    finally:
        tracemalloc.stop()
    assert grown < 64 * 1024, f"the session kept {grown} bytes of an overlong line"
    session.receive_data(b"tail of the long line\r\nNOOP\r\n")
    assert sent(session.next_actions() or []).startswith(b"-ERR Command line too long")
    assert sent(session.next_actions() or []) == b"+OK\r\n"
    assert session.next_actions() is None


def test_overlong_line_is_recorded_as_bad_command() -> None:
    session = logged_in()
    reply(session, b"x" * 300)
    record = session.history.commands[-1]
    assert record.command == "" and record.reply.startswith("-ERR Command line too long")


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (b"NO\0OP", b"-ERR Command line contains a NUL byte.\r\n"),
        (b"\0", b"-ERR Command line contains a NUL byte.\r\n"),
        (b"STAT \xff\xfe", b"-ERR Command line is not valid UTF-8.\r\n"),
        (b"\xc3", b"-ERR Command line is not valid UTF-8.\r\n"),
        (b"", b"-ERR Empty command line.\r\n"),
        (b"     ", b"-ERR Empty command line.\r\n"),
        (b"\t", b"-ERR Empty command line.\r\n"),
        (b"\x1b[A", b"-ERR Unknown command: ?[A\r\n"),  # controls never echoed
        (b"R\xc3\xa9TR 1", b"-ERR Unknown command: R\xc3\x89TR\r\n"),
    ],
)
def test_garbage_gets_err_and_the_session_goes_on(line: bytes, expected: bytes) -> None:
    session = logged_in()
    assert reply(session, line) == expected
    assert reply(session, b"NOOP") == b"+OK\r\n"


def test_garbage_before_login_counts_toward_the_bad_command_limit() -> None:
    session = new_session(max_bad_commands=3)
    assert reply(session, b"\0").startswith(b"-ERR")
    assert reply(session, b"bogus").startswith(b"-ERR")
    actions = feed(session, b"\xff\r\n")
    assert sent(actions) == b"-ERR Too many invalid commands, closing.\r\n"
    assert closes(actions) == "server"
    assert session.state is State.CLOSED


def test_bad_commands_after_login_never_close_the_session() -> None:
    session = logged_in(max_bad_commands=3)
    for _ in range(20):
        assert reply(session, b"bogus") == b"-ERR Unknown command: BOGUS\r\n"
    assert session.state is State.TRANSACTION


def test_data_after_close_is_ignored() -> None:
    session = new_session()
    feed(session, b"QUIT\r\n")
    session.receive_data(b"x" * 10_000)
    assert not session.has_line()


# --- history from the core -------------------------------------------------------------------
def test_every_line_is_recorded_before_the_reply_is_returned() -> None:
    session = new_session()
    seen: list[str] = []
    session.history.add_listener(lambda record: seen.append(record.line))
    session.receive_data(b"USER alice\r\nPASS secret\r\n")
    session.next_actions()
    assert seen == ["USER alice"]
    session.next_actions()
    assert seen == ["USER alice", "PASS ***"]


def test_records_mask_secrets_and_carry_user_status_and_tls() -> None:
    session = new_session()
    reply(session, b"USER alice")
    reply(session, b"PASS wrong one")
    reply(session, b"APOP alice " + apop_digest(session, "secret"))
    reply(session, b"RETR 1")
    records = session.history.commands
    assert [r.line for r in records] == ["USER alice", "PASS ***", "APOP alice ***", "RETR 1"]
    assert [r.user for r in records] == [None, None, "alice", "alice"]
    assert [r.reply for r in records] == [
        "+OK",
        "-ERR [AUTH] Authentication failed.",
        "+OK Logged in.",
        f"+OK {len(HELLO)} octets",
    ]
    assert [r.ok for r in records] == [True, False, True, True]
    assert all(r.session_id == session.id and r.tls is False for r in records)
    assert "wrong" not in session.history.to_jsonl()


def test_a_session_with_history_disabled_records_nothing() -> None:
    store = make_store(HELLO)
    session = Session(store)
    session.greeting()
    reply(session, b"USER alice")
    assert session.history.commands == []
    assert session.history.sessions == []


def test_sessions_get_distinct_ids() -> None:
    store = make_store()
    assert len({Session(store).id for _ in range(20)}) == 20


def test_close_action_comes_last() -> None:
    session = logged_in()
    actions = feed(session, b"QUIT\r\n")
    assert isinstance(actions[-1], Close)
    assert all(isinstance(a, Send) for a in actions[:-1])


# --- the command table, the ways to make a session, the caches, the imports ---------------------
def test_the_command_table_is_whole_and_public() -> None:
    from fakepop3.protocol import COMMAND_NAMES, COMMANDS
    from fakepop3.protocol._commands import HANDLERS

    assert set(COMMANDS) == COMMAND_NAMES == set(HANDLERS)
    for name, command in COMMANDS.items():
        assert command.name == name and command.states and command.rfc.startswith("RFC ")
        assert 0 <= command.min_args <= command.max_args
        # PASS alone: its handler says what is missing, after it asks for USER first.
        assert bool(command.needs) == (command.min_args > 0 or name == "PASS"), name
        assert command.capability is None or command.capability in CAPABILITIES
    assert [n for n, c in COMMANDS.items() if c.refused_before_tls] == [
        "USER",
        "PASS",
        "APOP",
        "AUTH",
    ]


def test_session_open_makes_the_session_that_the_keyword_call_makes() -> None:
    store, settings, history = make_store(HELLO), Settings(), History()
    auth = Authenticator(store)
    opened = Session.open(store, settings, history, ("10.0.0.1", 7), False, None, lambda: 0.0, auth)
    made = Session(store, settings, history=history, client=("10.0.0.1", 7), auth=auth)
    for session in (opened, made):
        assert sent(session.greeting()).startswith(b"+OK")
        assert reply(session, b"USER alice") == b"+OK\r\n"
        assert reply(session, b"PASS secret").startswith(b"+OK Logged in.")
        assert session.state is State.TRANSACTION and session.record.user == "alice"
        assert session.answer_line(b"QUIT\r\n") == (b"+OK Logging out.\r\n",)
    assert opened.id != made.id
    assert [s.id for s in history.sessions] == [opened.id, made.id]
    assert {name: getattr(opened, name) for name in ("state", "user", "tls", "client")} == {
        name: getattr(made, name) for name in ("state", "user", "tls", "client")
    }


def test_the_bounded_cache_starts_again_from_its_base_when_full() -> None:
    from fakepop3._cache import BoundedCache

    cache: BoundedCache[str, int] = BoundedCache(3, base={"kept": 0})
    lookup = cache.get  # bound once, as the hot paths read it
    for i in range(3):
        assert cache.put(f"k{i}", i) == i
    assert len(cache) == 4 and lookup("k2") == 2
    cache.put("k3", 3)  # full: start again from the base
    assert dict(cache) == {"kept": 0, "k3": 3} and lookup("k0") is None and lookup("kept") == 0
    with pytest.raises(ValueError, match="at least one entry"):
        BoundedCache(0)


def test_the_core_caches_stay_bounded() -> None:
    from fakepop3.protocol import _fastlane, _replies

    session = logged_in(make_store(HELLO))
    for i in range(5000):
        session.answer_line(f"LIST {i}\r\n".encode())
    assert len(_fastlane.PARSED_LINES) <= _fastlane.PARSED_LINES.limit
    assert session.answer_line(b"STAT\r\n") is not None  # the base entries are kept
    assert b"STAT\r\n" in _fastlane.PARSED_LINES
    for size in range(5000):
        _replies.retr_status(size)
    assert len(_replies.RETR_STATUS) <= _replies.RETR_STATUS.limit
    assert _replies.known_retr_status(4999) == b"+OK 4999 octets\r\n"


# The protocol core: this package and what it imports of fakepop3.
CORE = ["protocol/__init__.py", "protocol/_*.py", "history.py", "auth.py", "_cache.py"]


def _top_level_imports(path: Path) -> set[str]:
    """The modules a file imports when it is imported (not in functions, not for type checks)."""
    names: set[str] = set()
    for node in ast.parse(path.read_text(encoding="utf-8")).body:
        if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
            continue
        for inner in ast.walk(node):
            if isinstance(inner, ast.FunctionDef | ast.AsyncFunctionDef):
                break
            if isinstance(inner, ast.Import):
                names.update(alias.name for alias in inner.names)
            elif isinstance(inner, ast.ImportFrom) and inner.level == 0 and inner.module:
                names.add(inner.module)
    return names


def test_the_protocol_core_imports_no_io_and_no_pytest() -> None:
    root = Path(fakepop3.__file__).parent
    files = [p for pattern in CORE for p in root.glob(pattern)]
    assert len(files) >= 12
    for path in files:
        imported = {name.split(".")[0] for name in _top_level_imports(path)}
        assert not imported & {"asyncio", "ssl", "socket", "selectors", "pytest"}, path.name


def test_importing_the_protocol_core_alone_pulls_in_no_asyncio_ssl_or_pytest() -> None:
    """The core imported without fakepop3/__init__.py (which imports the server)."""
    script = (
        "import sys, types\n"
        "package = types.ModuleType('fakepop3')\n"
        f"package.__path__ = [{str(Path(fakepop3.__file__).parent)!r}]\n"
        "sys.modules['fakepop3'] = package\n"
        "import fakepop3.protocol._session\n"
        "print(' '.join(sorted(sys.modules)))\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True
    )
    loaded = set(done.stdout.split())
    assert "fakepop3.protocol._session" in loaded
    assert not loaded & {"asyncio", "ssl", "_ssl", "pytest"}, loaded & {"asyncio", "ssl", "pytest"}
    # socket: fakepop3.store imports email.policy, which imports socket on Python 3.11
    # (the store's part of issue 16); nothing of the core itself does (the test above).


@settings(max_examples=60, deadline=None)
@given(
    disabled=st.sets(st.sampled_from(sorted(CAPABILITIES))),
    mechanisms=st.sampled_from([(), ("PLAIN",), ("XOAUTH2", "LOGIN")]),
    tls_available=st.booleans(),
    require_tls=st.booleans(),
    hostname=st.sampled_from(["localhost", "mail.example"]),
    login_delay=st.sampled_from([None, 0, 30]),
)
def test_a_cached_dispatch_answers_as_a_fresh_compile(
    disabled: set[str],
    mechanisms: tuple[str, ...],
    tls_available: bool,
    require_tls: bool,
    hostname: str,
    login_delay: int | None,
) -> None:
    # Settings share a compiled dispatch by dispatch_key: prove the key holds all it reads.
    from fakepop3.protocol._dispatch import Dispatch

    made = Settings(
        disabled=frozenset(disabled),
        mechanisms=mechanisms,
        tls_available=tls_available,
        require_tls=require_tls,
        hostname=hostname,
        login_delay=login_delay,
    )
    fresh = Dispatch(made, made.replies)
    for tls in (False, True):
        for state in (State.AUTHORIZATION, State.TRANSACTION):
            pairs = zip(made.dispatch.pick(state, tls), fresh.pick(state, tls), strict=True)
            for cached, compiled in pairs:
                assert cached.keys() == compiled.keys()
                for name, (handler, low, high) in compiled.items():
                    assert cached[name][1:] == (low, high), name
                    assert cached[name][0].__name__ == handler.__name__, name
                    if handler.__name__ == "forgets_user":  # made per compile: compare inside
                        handler = handler.__wrapped__
                    if handler.__name__ == "constant":  # an answer made at compile time
                        assert getattr(cached[name][0], "__wrapped__", cached[name][0])(
                            None,  # type: ignore[arg-type]
                            (),
                        ) == handler(None, ()), name  # type: ignore[arg-type]
                    else:
                        cached_handler = cached[name][0]
                        assert getattr(cached_handler, "__wrapped__", cached_handler) is handler


@pytest.mark.parametrize(
    ("field", "value", "message"),
    [
        ("expire", -1, "expire must be a number of days or 'NEVER'"),
        ("expire", "soon", "expire must be a number of days or 'NEVER'"),
        ("login_delay", -5, "login_delay must be at least 0"),
        ("disabled", frozenset({"NOPE"}), "unknown capability to disable: NOPE"),
        ("mechanisms", ("PLAIN", "MAGIC"), "unknown SASL mechanism: MAGIC"),
    ],
)
def test_settings_refuse_what_the_options_schema_refuses(
    field: str, value: object, message: str
) -> None:
    # The same checks as POP3Server's keywords: a negative EXPIRE or LOGIN-DELAY is never
    # advertised in CAPA, whichever way the Settings were made.
    with pytest.raises(ValueError, match=re.escape(message)):
        Settings(**{field: value})  # type: ignore[arg-type]
