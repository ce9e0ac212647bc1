"""Fault injection (issue 6): every fault as a real ``poplib`` client sees it.

Each test checks three things: the client sees the intended failure, the server
serves the next session normally, and no mail is lost (a session that did not
QUIT deletes nothing).
"""

from __future__ import annotations

import ast
import asyncio
import contextlib
import inspect
import pathlib
import poplib
import socket
import threading
from collections.abc import Iterator
from typing import Any

import pytest

import fakepop3.faults
from fakepop3 import MailStore, POP3Server, Session
from fakepop3.faults import FaultConfigError, FaultRule, Faults
from fakepop3.protocol import Close, Pause, Send, Throttle

from .conftest import USERS, RawClient, feed, login, sent

MESSAGES = [
    b"Subject: one\r\nMessage-ID: <1@example.org>\r\n\r\nFirst message.\r\n",
    b"Subject: two\r\nMessage-ID: <2@example.org>\r\n\r\n"
    + b"".join(b"line %04d of a long body\r\n" % i for i in range(120))
    + b".a line that starts with a dot\r\nend\r\n",
    b"Subject: three\r\nMessage-ID: <3@example.org>\r\n\r\nThird message.\r\n",
]
#: What poplib may raise when the server closes the connection under it.
DROPPED = (poplib.error_proto, ConnectionError, EOFError)


@pytest.fixture
def server() -> Iterator[POP3Server]:
    """A thread-hosted server; alice has MESSAGES, bob has none.  Server errors fail the test."""
    with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend(MESSAGES)
        yield server
    server.raise_errors()


class POP3(poplib.POP3):
    """``poplib.POP3`` that closes its socket when the greeting fails (poplib leaves it open)."""

    def __init__(self, host: str, port: int, timeout: float = 10.0) -> None:
        try:
            super().__init__(host, port, timeout)
        except BaseException:
            if getattr(self, "sock", None) is not None:
                self.close()
            raise


@contextlib.contextmanager
def pop(
    server: POP3Server, user: str | None = "alice", *, timeout: float = 10.0
) -> Iterator[poplib.POP3]:
    """A poplib client (logged in as ``user`` unless None), closed afterwards whatever happens."""
    client = POP3(server.host, server.port, timeout=timeout)
    try:
        if user is not None:
            login(client, user, USERS[user])
        yield client
    finally:
        client.close()


def assert_dropped(error: BaseException) -> None:
    """The client saw the connection end: EOF (poplib's ``-ERR EOF``) or a reset."""
    if isinstance(error, poplib.error_proto):
        assert error.args == ("-ERR EOF",), error.args
    else:
        assert isinstance(error, (ConnectionError, EOFError)), error


def assert_healthy(server: POP3Server, ended: int) -> None:
    """The previous ``ended`` sessions are over; a new one reads all mail back, nothing lost."""
    server.wait_for_sessions(ended)
    with pop(server) as client:
        assert client.stat() == (len(MESSAGES), sum(len(m) for m in MESSAGES))
        for number, raw in enumerate(MESSAGES, 1):
            _, lines, octets = client.retr(number)
            assert b"\r\n".join(lines) + b"\r\n" == raw
            assert octets == len(raw)
        assert client.quit().startswith(b"+OK")
    server.wait_for_sessions(ended + 1)
    assert [m.raw for m in server.mailbox("alice")] == MESSAGES
    server.raise_errors()


def list_one(client: poplib.POP3, number: int) -> bytes:
    """``LIST n``: typeshed types ``poplib.POP3.list(n)`` as a multi-line reply, it is one line."""
    reply: Any = client.list(number)
    assert isinstance(reply, bytes)
    return reply


def last_session_end(server: POP3Server) -> str | None:
    return server.history.sessions[-1].end_reason


def wire(number: int) -> bytes:
    """The exact bytes of a RETR reply for message ``number`` of MESSAGES."""
    raw = MESSAGES[number - 1]
    stuffed = raw.replace(b"\r\n.", b"\r\n..")
    return b"+OK %d octets\r\n" % len(raw) + stuffed + b".\r\n"


# --- -ERR with a response code ----------------------------------------------------------------
@pytest.mark.parametrize("code", ["SYS/TEMP", "SYS/PERM", "IN-USE", "LOGIN-DELAY", "AUTH"])
def test_error_on_pass_with_response_code_hits_only_that_user(
    server: POP3Server, code: str
) -> None:
    rule = server.faults.on("PASS", user="alice").error("Not now.", code=code)
    with pop(server, None) as client:
        client.user("alice")
        with pytest.raises(poplib.error_proto) as caught:
            client.pass_("secret")
        assert caught.value.args[0] == f"-ERR [{code}] Not now.".encode()
    with pop(server, "bob") as client:  # the user filter leaves bob alone
        assert client.stat() == (0, 0)
        client.quit()
    assert rule.fired == 1
    record = server.history.filter("PASS")[0]  # alice's: she never logged in
    assert record.reply == f"-ERR [{code}] Not now."
    assert record.fault is not None and "Not now." in record.fault
    server.faults.clear()
    assert_healthy(server, 2)


def test_error_on_nth_retr_then_retry_succeeds(server: POP3Server) -> None:
    rule = server.faults.on("RETR", nth=2).error("Try later", code="SYS/TEMP")
    with pop(server) as client:
        assert client.retr(1)[0].startswith(b"+OK")
        with pytest.raises(poplib.error_proto) as caught:
            client.retr(2)
        assert caught.value.args[0] == b"-ERR [SYS/TEMP] Try later"
        assert client.retr(2)[1][-1] == b"end"  # the rule fired once; the retry works
        client.quit()
    assert rule.fired == 1 and rule.seen == 3
    retrs = server.history.filter("RETR")
    assert [r.fault is not None for r in retrs] == [False, True, False]
    assert retrs[1].reply == "-ERR [SYS/TEMP] Try later"
    assert retrs[1].fault == rule.description
    assert_healthy(server, 1)


def test_error_on_dele_marks_nothing(server: POP3Server) -> None:
    server.faults.on("DELE", args="1").error("Cannot delete.", code="SYS/PERM")
    with pop(server) as client:
        with pytest.raises(poplib.error_proto, match="SYS/PERM"):
            client.dele(1)
        assert client.quit().startswith(b"+OK")
    server.faults.clear()
    assert_healthy(server, 1)


def test_error_on_quit_runs_no_update(server: POP3Server) -> None:
    server.faults.on("QUIT").error("Disk full.", code="SYS/TEMP")
    with pop(server) as client:
        client.dele(1)
        client.dele(2)
        with pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\] Disk full"):
            client.quit()
    server.wait_for_sessions(1)
    assert last_session_end(server) == "drop"
    server.faults.clear()
    assert_healthy(server, 1)


# --- delays -----------------------------------------------------------------------------------
def test_delay_longer_than_the_client_timeout_times_out(server: POP3Server) -> None:
    rule = server.faults.on("RETR", times=1).delay(60)
    with pop(server, timeout=0.5) as client, pytest.raises(socket.timeout):
        client.retr(1)
    assert rule.fired == 1
    assert server.history.filter("RETR")[0].fault == rule.description
    assert_healthy(server, 1)  # the delayed session ended when the client left


def test_short_delay_still_delivers_the_reply(server: POP3Server) -> None:
    rule = server.faults.on("STAT").delay(0.05)
    with pop(server) as client:
        assert client.stat() == (3, sum(len(m) for m in MESSAGES))
        client.quit()
    assert rule.fired == 1
    server.faults.clear()
    assert_healthy(server, 1)


# --- disconnects ------------------------------------------------------------------------------
def test_disconnect_before_the_reply(server: POP3Server) -> None:
    rule = server.faults.on("RETR", args="2").disconnect()
    with pop(server) as client:
        client.dele(1)
        assert client.retr(3)[0].startswith(b"+OK")
        with pytest.raises(DROPPED) as caught:
            client.retr(2)
        assert_dropped(caught.value)
    server.wait_for_sessions(1)
    assert last_session_end(server) == "server"
    record = server.history.filter("RETR", "2")[0]
    assert record.reply == "(no reply: connection closed)"
    assert record.fault == rule.description
    server.faults.clear()
    assert_healthy(server, 1)  # DELE 1 was never committed


def test_dele_then_disconnect_on_quit_leaves_the_maildrop_whole(server: POP3Server) -> None:
    server.faults.on("QUIT").disconnect()
    with pop(server) as client:
        for number in (1, 2, 3):
            client.dele(number)
        with pytest.raises(DROPPED) as caught:
            client.quit()
        assert_dropped(caught.value)
    server.wait_for_sessions(1)
    assert len(server.mailbox("alice")) == 3
    server.faults.clear()
    assert_healthy(server, 1)


def test_disconnect_after_bytes_cuts_the_retr_reply(server: POP3Server) -> None:
    server.faults.on("RETR", nth=1).disconnect(after_bytes=100)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR 2\r\n")
        assert raw.read_to_eof() == wire(2)[:100]
    server.faults.on("RETR", nth=1).disconnect(after_bytes=500)
    with pop(server) as client, pytest.raises(DROPPED) as caught:
        client.retr(2)  # poplib sees a short read
    assert_dropped(caught.value)
    assert_healthy(server, 2)


def test_disconnect_after_bytes_on_quit_has_run_update(server: POP3Server) -> None:
    """The nasty case: the server deleted, the client never saw +OK and cannot know it."""
    server.faults.on("QUIT").disconnect(after_bytes=2)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        assert raw.command(b"DELE 1").startswith(b"+OK")
        raw.send(b"QUIT\r\n")
        assert raw.read_to_eof() == b"+O"
    server.wait_for_sessions(1)
    assert [m.raw for m in server.mailbox("alice")] == MESSAGES[1:]


def test_truncate_drops_the_terminating_dot_line(server: POP3Server) -> None:
    server.faults.on("RETR", times=1).truncate()
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR 2\r\n")
        assert raw.read_to_eof() == wire(2)[:-3]
    server.faults.on("RETR", times=1).truncate()
    with pop(server) as client, pytest.raises(DROPPED) as caught:
        client.retr(1)
    assert_dropped(caught.value)
    assert_healthy(server, 2)


def test_truncate_of_a_single_line_reply_drops_its_crlf(server: POP3Server) -> None:
    server.faults.on("STAT").truncate()
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"STAT\r\n")
        assert raw.read_to_eof() == b"+OK 3 %d" % sum(len(m) for m in MESSAGES)
    server.faults.clear()
    assert_healthy(server, 1)


# --- malformed replies ------------------------------------------------------------------------
def test_malformed_no_status(server: POP3Server) -> None:
    server.faults.on("STAT").malformed("no-status")
    with pop(server) as client:
        with pytest.raises(poplib.error_proto) as caught:
            client.stat()
        assert caught.value.args[0] == b"3 %d" % sum(len(m) for m in MESSAGES)
    server.faults.clear()
    assert_healthy(server, 1)


def test_malformed_bare_lf(server: POP3Server) -> None:
    server.faults.on("RETR", args="2", times=1).malformed("bare-lf")
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR 2\r\nNOOP\r\n")
        assert raw.read_until(b"\n.\n") == wire(2).replace(b"\r\n", b"\n")
        assert raw.read_line() == b"+OK\r\n"
    server.faults.on("RETR", args="2", times=1).malformed("bare-lf")
    with pop(server) as client:
        _, lines, octets = client.retr(2)  # poplib accepts LF line ends...
        assert lines[-1] == b"end"
        assert octets == len(MESSAGES[1]) - len(lines)  # ...but counts one octet less a line
        assert list_one(client, 2) == b"+OK 2 %d" % len(MESSAGES[1])
        client.quit()
    assert_healthy(server, 2)


def test_malformed_long_line(server: POP3Server) -> None:
    server.faults.on("NOOP", times=1).malformed("long-line", length=600)
    with RawClient(server.host, server.port) as raw:
        raw.login()
        line = raw.command(b"NOOP")
        assert len(line) == 600 and line.startswith(b"+OK ") and line.endswith(b"x\r\n")
    server.faults.on("NOOP").malformed("long-line")  # 4096: over poplib's 2048 too
    with pop(server) as client, pytest.raises(poplib.error_proto, match="line too long"):
        client.noop()
    server.faults.clear()
    assert_healthy(server, 2)


def test_malformed_wrong_size(server: POP3Server) -> None:
    for command in ("LIST", "STAT", "RETR"):
        server.faults.on(command).malformed("wrong-size", delta=7)
    sizes = [len(m) for m in MESSAGES]
    with pop(server) as client:
        assert client.list()[1] == [b"%d %d" % (i, s + 7) for i, s in enumerate(sizes, 1)]
        assert list_one(client, 3) == b"+OK 3 %d" % (sizes[2] + 7)
        assert client.stat() == (3, sum(sizes) + 7)
        resp, _, octets = client.retr(1)
        assert resp == b"+OK %d octets" % (sizes[0] + 7)
        assert octets == sizes[0]  # the message itself is whole
        client.quit()
    server.faults.clear()
    assert_healthy(server, 1)


def test_reply_replaces_the_reply_with_any_bytes(server: POP3Server) -> None:
    rule = server.faults.on("STAT").reply(b"* OK [CAPABILITY IMAP4rev1] wrong protocol\r\n")
    with pop(server) as client:
        with pytest.raises(poplib.error_proto) as caught:
            client.stat()
        assert caught.value.args[0] == b"* OK [CAPABILITY IMAP4rev1] wrong protocol"
    assert server.history.filter("STAT")[0].reply == "* OK [CAPABILITY IMAP4rev1] wrong protocol"
    rule.remove()
    assert_healthy(server, 1)


def test_reply_instead_of_dele_deletes_nothing(server: POP3Server) -> None:
    server.faults.on("DELE").reply("+OK pretending\r\n")
    with pop(server) as client:
        assert client.dele(1) == b"+OK pretending"
        client.quit()
    server.faults.clear()
    assert_healthy(server, 1)


# --- connect faults ---------------------------------------------------------------------------
def test_refused_connection(server: POP3Server) -> None:
    rule = server.faults.on_connect(nth=1).refuse()
    with pytest.raises(DROPPED) as caught:
        POP3(server.host, server.port).close()
    assert_dropped(caught.value)
    server.wait_for_sessions(1)
    assert last_session_end(server) == "server"
    assert server.history.sessions[-1].commands == []
    assert rule.fired == 1
    assert_healthy(server, 1)


def test_delayed_greeting_times_out(server: POP3Server) -> None:
    server.faults.on_connect(times=1).delay(60)
    with pytest.raises(socket.timeout):
        POP3(server.host, server.port, timeout=0.5).close()
    assert_healthy(server, 1)


def test_short_greeting_delay_then_normal_session(server: POP3Server) -> None:
    rule = server.faults.on_connect().delay(0.05)
    assert_healthy(server, 0)
    assert rule.fired == 1


def test_error_greeting(server: POP3Server) -> None:
    server.faults.on_connect(nth=1).error("Too busy.", code="SYS/TEMP")
    with pytest.raises(poplib.error_proto) as caught:
        POP3(server.host, server.port).close()
    assert caught.value.args[0] == b"-ERR [SYS/TEMP] Too busy."
    server.wait_for_sessions(1)
    assert last_session_end(server) == "server"
    assert_healthy(server, 1)


def test_throttled_session_still_works(server: POP3Server) -> None:
    rule = server.faults.on_connect(times=1).throttle(20_000)
    with pop(server) as client:
        assert client.retr(2)[1][-1] == b"end"
        client.quit()
    assert rule.fired == 1
    assert_healthy(server, 1)


def test_throttled_greeting_drips_slower_than_the_client_waits(server: POP3Server) -> None:
    server.faults.on_connect(times=1).throttle(1)  # one octet a second
    with pytest.raises(socket.timeout):
        POP3(server.host, server.port, timeout=0.5).close()
    assert_healthy(server, 1)


# --- mailbox faults ---------------------------------------------------------------------------
def test_vanished_message(server: POP3Server) -> None:
    rule = server.faults.vanish(2, user="alice")
    with pop(server) as client:
        assert len(client.list()[1]) == 3  # listed...
        for command in (lambda: client.retr(2), lambda: client.top(2, 0), lambda: client.dele(2)):
            with pytest.raises(poplib.error_proto) as caught:
                command()
            assert caught.value.args[0] == b"-ERR No such message."
        assert client.retr(3)[1][-1] == b"Third message."
        client.quit()
    assert rule.fired == 3
    assert len(server.mailbox("alice")) == 3  # the store keeps it: nothing lost
    rule.remove()
    assert_healthy(server, 1)


def test_size_mismatch_between_list_and_retr(server: POP3Server) -> None:
    server.faults.size_mismatch(2, delta=-10)
    sizes = [len(m) for m in MESSAGES]
    with pop(server) as client:
        assert client.list()[1] == [
            b"1 %d" % sizes[0],
            b"2 %d" % (sizes[1] - 10),
            b"3 %d" % sizes[2],
        ]
        assert list_one(client, 2) == b"+OK 2 %d" % (sizes[1] - 10)
        assert client.stat() == (3, sum(sizes) - 10)
        assert client.retr(2)[2] == sizes[1]
        client.dele(2)
        assert client.stat() == (2, sizes[0] + sizes[2])  # a deleted message is not counted
        client.quit()
    assert len(server.mailbox("alice")) == 2


# --- user story 1: a helpdesk poller ----------------------------------------------------------
def poll(server: POP3Server, tickets: dict[str, bytes]) -> None:
    """The helpdesk poller: fetch every message, file a ticket, delete it; skip temporary errors."""
    client = POP3(server.host, server.port)
    try:
        client.user("alice")
        client.pass_("secret")
        uids = dict(line.split() for line in client.uidl()[1])
        for number, uid in uids.items():
            try:
                _, lines, _ = client.retr(int(number))
            except poplib.error_proto as error:
                reply = error.args[0]  # bytes from the server; str for poplib's own "-ERR EOF"
                if isinstance(reply, bytes) and reply.startswith(b"-ERR [SYS/TEMP]"):
                    continue  # retry at the next poll
                raise
            tickets[uid.decode()] = b"\r\n".join(lines) + b"\r\n"
            client.dele(int(number))
        client.quit()
    finally:
        client.close()


def test_story_retr_fails_once_with_sys_temp_and_nothing_is_lost(server: POP3Server) -> None:
    rule = server.faults.on("RETR", args="2", times=1).error("Try later.", code="SYS/TEMP")
    tickets: dict[str, bytes] = {}
    poll(server, tickets)
    assert sorted(tickets.values()) == sorted([MESSAGES[0], MESSAGES[2]])
    assert [m.raw for m in server.mailbox("alice")] == [MESSAGES[1]]
    poll(server, tickets)
    assert sorted(tickets.values()) == sorted(MESSAGES)
    assert len(server.mailbox("alice")) == 0
    assert rule.fired == 1
    server.faults.assert_all_fired()
    server.wait_for_sessions(2)
    faulted = [c for c in server.history if c.fault]
    assert [(c.line, c.reply) for c in faulted] == [("RETR 2", "-ERR [SYS/TEMP] Try later.")]


def test_story_connection_cut_halfway_through_retr_deletes_nothing(server: POP3Server) -> None:
    half = len(wire(2)) // 2
    server.faults.on("RETR", nth=2, user="alice").disconnect(after_bytes=half)
    tickets: dict[str, bytes] = {}
    with pytest.raises(DROPPED) as caught:
        poll(server, tickets)
    assert_dropped(caught.value)
    server.wait_for_sessions(1)
    assert [m.raw for m in server.mailbox("alice")] == MESSAGES  # DELE 1 was not committed
    poll(server, tickets)
    assert sorted(tickets.values()) == sorted(MESSAGES)
    assert len(server.mailbox("alice")) == 0
    server.faults.assert_all_fired()


# --- matching ---------------------------------------------------------------------------------
def session_with(faults: Faults) -> Session:
    store = MailStore()
    store.add_user("alice", "secret", messages=MESSAGES)
    session = Session(store, faults=faults)
    feed(session, b"USER alice\r\n")
    feed(session, b"PASS secret\r\n")
    return session


def fired_pattern(faults: Faults, count: int) -> list[bool]:
    session = session_with(faults)
    return [sent(feed(session, b"NOOP\r\n")).startswith(b"-ERR") for _ in range(count)]


def test_nth_with_times_fires_on_a_window() -> None:
    faults = Faults()
    rule = faults.on("NOOP", nth=2, times=2).error("x")
    assert fired_pattern(faults, 5) == [False, True, True, False, False]
    assert (rule.seen, rule.fired) == (5, 2)


def test_times_alone_fires_first_times() -> None:
    faults = Faults()
    faults.on("noop", times=2).error("x")  # command names are case-insensitive
    assert fired_pattern(faults, 4) == [True, True, False, False]


def test_probability_is_reproducible_with_a_seed() -> None:
    patterns = []
    for _ in range(2):
        faults = Faults(seed=42)
        faults.on("NOOP", probability=0.5).error("x")
        patterns.append(fired_pattern(faults, 40))
    assert patterns[0] == patterns[1]
    assert 5 < sum(patterns[0]) < 35  # both outcomes happen
    other = Faults(seed=7)
    other.on("NOOP", probability=0.5).error("x")
    assert fired_pattern(other, 40) != patterns[0]


def test_first_due_rule_wins_and_every_matching_rule_counts() -> None:
    faults = Faults()
    first = faults.on("NOOP", nth=1).error("first")
    second = faults.on("*").error("second")
    session = session_with(faults)  # USER and PASS already hit "*"
    assert second.fired == 2
    assert sent(feed(session, b"NOOP\r\n")) == b"-ERR first\r\n"
    assert sent(feed(session, b"NOOP\r\n")) == b"-ERR second\r\n"
    assert (first.seen, first.fired, second.fired) == (2, 1, 3)


def test_nth_counts_across_sessions(server: POP3Server) -> None:
    rule = server.faults.on("RETR", nth=2).error("second RETR of the server", code="SYS/TEMP")
    with pop(server) as client:
        client.retr(1)
        client.quit()
    with pop(server) as client, pytest.raises(poplib.error_proto, match="second RETR"):
        client.retr(1)
    assert rule.fired == 1
    assert_healthy(server, 2)


def test_connect_actions_in_the_core() -> None:
    faults = Faults()
    faults.on_connect(nth=1).refuse()
    faults.on_connect(nth=2).delay(1.5)
    faults.on_connect(nth=3).throttle(10)
    store = MailStore()
    refused = Session(store, faults=faults).greeting()
    assert refused == [Close("server")]
    delayed = Session(store, faults=faults).greeting()
    assert isinstance(delayed[0], Pause) and delayed[0].seconds == 1.5
    assert isinstance(delayed[1], Send) and bytes(delayed[1].buffers[0]).startswith(b"+OK")
    throttled = Session(store, faults=faults).greeting()
    assert throttled[0] == Throttle(10.0)
    normal = Session(store, faults=faults).greeting()
    assert len(normal) == 1 and isinstance(normal[0], Send)
    assert bytes(normal[0].buffers[0]).startswith(b"+OK fakepop3 ready.")
    assert faults.unused() == []


# --- managing rules while the server runs -----------------------------------------------------
def test_rules_added_and_removed_mid_session(server: POP3Server) -> None:
    with pop(server) as client:
        assert client.noop() == b"+OK"
        rule = server.faults.on("NOOP").error("now failing")
        with pytest.raises(poplib.error_proto, match="now failing"):
            client.noop()
        rule.remove()
        assert client.noop() == b"+OK"
        server.faults.on("NOOP").error("again")
        server.faults.on("STAT").error("again")
        assert len(server.faults) == 2
        server.faults.clear()
        assert client.noop() == b"+OK" and len(server.faults) == 0
        client.quit()
    assert rule.fired == 1
    assert_healthy(server, 1)


def test_rules_can_be_added_from_many_threads(server: POP3Server) -> None:
    def add_and_remove(n: int) -> None:
        for i in range(200):
            rule = server.faults.on("NOOP", args=f"{n}-{i}").error("x")
            if i % 2:
                rule.remove()

    threads = [threading.Thread(target=add_and_remove, args=(n,)) for n in range(4)]
    for thread in threads:
        thread.start()
    with pop(server) as client:
        for _ in range(50):
            assert client.noop() == b"+OK"  # no rule matches a NOOP without arguments
        client.quit()
    for thread in threads:
        thread.join()
    rules = server.faults.rules
    assert len(rules) == 4 * 100
    assert len({r.id for r in rules}) == len(rules)


def test_unused_rules_are_reported(server: POP3Server) -> None:
    used = server.faults.on("STAT").error("x")
    typo = server.faults.on("RETR", args="9").error("never")
    late = server.faults.on("NOOP", nth=3).delay(1)
    with pop(server) as client:
        with pytest.raises(poplib.error_proto):
            client.stat()
        client.noop()
        client.quit()
    assert server.faults.unused() == [typo, late]
    with pytest.raises(AssertionError) as caught:
        server.faults.assert_all_fired()
    message = str(caught.value)
    assert "2 fault rule(s) never fired" in message
    assert "on RETR args='9'" in message and "matched 0 time(s)" in message
    assert "on NOOP nth=3" in message and "matched 1 time(s)" in message
    assert used.fired == 1
    server.faults.clear()
    server.faults.assert_all_fired()  # nothing left to complain about


@pytest.mark.asyncio
async def test_faults_work_on_a_running_loop() -> None:
    async with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend(MESSAGES)
        server.faults.on("RETR", nth=1).disconnect(after_bytes=10)

        def client_run() -> bytes:
            with RawClient(server.host, server.port) as raw:
                raw.login()
                raw.send(b"RETR 1\r\n")
                return raw.read_to_eof()

        assert await asyncio.to_thread(client_run) == wire(1)[:10]
        await server.wait_for_sessions_async(1)
        assert len(server.mailbox("alice")) == 3
    server.raise_errors()


# --- the dict form ----------------------------------------------------------------------------
def test_from_config_builds_the_same_rules_as_the_python_api() -> None:
    config: list[dict[str, Any]] = [
        {"command": "RETR", "nth": 2, "action": "error", "text": "Try later", "code": "SYS/TEMP"},
        {"command": "stat", "action": "delay", "seconds": 2.5, "user": "alice"},
        {"command": "RETR", "args": "2", "action": "disconnect", "after_bytes": 100},
        {"command": "QUIT", "action": "disconnect"},
        {"command": "TOP", "action": "truncate", "times": 3},
        {"command": "LIST", "action": "malformed", "kind": "wrong-size", "delta": 5},
        {"command": "*", "action": "reply", "data": "+OK hi\r\n", "probability": 0.25},
        {"on": "connect", "action": "refuse", "nth": 1},
        {"on": "connect", "action": "delay", "seconds": 1},
        {"on": "connect", "action": "error", "text": "Busy", "code": "IN-USE"},
        {"on": "connect", "action": "throttle", "bytes_per_second": 100},
        {"action": "vanish", "message": 2, "user": "alice"},
        {"on": "mailbox", "action": "size_mismatch", "message": 1, "delta": -3},
    ]
    faults = Faults.from_config(config)
    expected = Faults()
    expected.on("RETR", nth=2).error("Try later", code="SYS/TEMP")
    expected.on("STAT", user="alice").delay(2.5)
    expected.on("RETR", args="2").disconnect(after_bytes=100)
    expected.on("QUIT").disconnect()
    expected.on("TOP", times=3).truncate()
    expected.on("LIST").malformed("wrong-size", delta=5)
    expected.on("*", probability=0.25).reply(b"+OK hi\r\n")
    expected.on_connect(nth=1).refuse()
    expected.on_connect().delay(1)
    expected.on_connect().error("Busy", code="IN-USE")
    expected.on_connect().throttle(100)
    expected.vanish(2, user="alice")
    expected.size_mismatch(1, delta=-3)
    assert [r.description for r in faults] == [r.description for r in expected]
    added = expected.add_from_dict({"command": "NOOP", "action": "error"})
    assert isinstance(added, FaultRule) and added in expected.rules


def test_server_with_faults_from_config() -> None:
    faults = Faults.from_config([{"command": "STAT", "action": "error", "code": "SYS/TEMP"}])
    with POP3Server(users=USERS, faults=faults) as server:
        assert server.faults is faults
        with pop(server) as client, pytest.raises(poplib.error_proto, match=r"\[SYS/TEMP\]"):
            client.stat()
    server.raise_errors()


@pytest.mark.parametrize(
    ("entry", "message"),
    [
        ({"command": "RETR"}, r"'action' is missing; one of .*error"),
        ({"command": "RETR", "action": "explode"}, r"unknown action 'explode'; use one of"),
        (
            {"command": "RETR", "action": "error", "txt": "x"},
            r"unknown key\(s\) 'txt'.*allowed keys: .*text",
        ),
        ({"action": "error", "text": "x"}, r"'command' is missing"),
        ({"command": "RETRR", "action": "error"}, r"unknown POP3 command 'RETRR'.*RETR"),
        (
            {"command": "RETR", "action": "error", "nth": "2"},
            r"nth must be an integer of at least 1, not '2'",
        ),
        ({"command": "RETR", "action": "error", "nth": 0}, r"nth must be an integer of at least 1"),
        ({"command": "RETR", "action": "error", "times": True}, r"times must be an integer"),
        (
            {"command": "RETR", "action": "error", "probability": 1.5},
            r"probability must be a number above 0 and at most 1",
        ),
        (
            {"command": "RETR", "action": "error", "code": "SYS TEMP"},
            r"not an RFC 2449 response code",
        ),
        ({"command": "RETR", "action": "error", "text": "a\r\nb"}, r"text must be one line"),
        (
            {"command": "RETR", "action": "error", "text": "x" * 600},
            r"over the 512 RFC 2449 allows",
        ),
        ({"command": "RETR", "action": "delay"}, r"'seconds' is missing for action 'delay'"),
        (
            {"command": "RETR", "action": "delay", "seconds": -1},
            r"seconds must be a number of seconds",
        ),
        (
            {"command": "RETR", "action": "disconnect", "after_bytes": -1},
            r"after_bytes must be an integer of at least 0",
        ),
        (
            {"command": "RETR", "action": "malformed", "kind": "garbled"},
            r"unknown malformed kind 'garbled'; use one of no-status",
        ),
        (
            {"command": "DELE", "action": "malformed", "kind": "wrong-size"},
            r"LIST, STAT and RETR; DELE has none",
        ),
        (
            {"command": "NOOP", "action": "malformed", "kind": "long-line", "length": 100},
            r"length must be an integer of at least 513",
        ),
        ({"command": "RETR", "action": "reply", "data": 5}, r"data must be bytes or str"),
        (
            {"command": "RETR", "action": "refuse"},
            r"action 'refuse' does not apply on command; actions on command: error",
        ),
        ({"on": "connect", "action": "truncate"}, r"action 'truncate' does not apply on connect"),
        ({"on": "connect", "action": "refuse", "user": "alice"}, r"unknown key\(s\) 'user'"),
        (
            {"on": "connect", "action": "throttle", "bytes_per_second": 0},
            r"bytes_per_second must be a positive number",
        ),
        ({"on": "disconnect", "action": "refuse"}, r"unknown 'on' value 'disconnect'"),
        ({"action": "vanish"}, r"'message' is missing for action 'vanish'"),
        (
            {"action": "size_mismatch", "message": 1, "delta": 0},
            r"delta must be a non-zero integer",
        ),
        ({"command": "RETR", "action": "error", "user": 3}, r"user must be a user name"),
        ({"command": "RETR", "action": "error", "args": 2}, r"args must be a string such as '2'"),
    ],
)
def test_dict_errors_name_the_problem(entry: dict[str, Any], message: str) -> None:
    with pytest.raises(FaultConfigError, match=message):
        Faults().add_from_dict(entry)


def test_from_config_names_the_bad_entry() -> None:
    good = {"command": "RETR", "action": "error"}
    with pytest.raises(
        FaultConfigError, match=r"^fault #2 \{'command': 'RETR', 'action': 'oops'\}"
    ):
        Faults.from_config([good, {"command": "RETR", "action": "oops"}])
    with pytest.raises(FaultConfigError, match="a list of dicts"):
        Faults.from_config(good)  # type: ignore[arg-type]
    with pytest.raises(FaultConfigError, match="must be a dict, not list"):
        Faults.from_config([["RETR", "error"]])  # type: ignore[list-item]
    with pytest.raises(FaultConfigError, match="unknown POP3 command"):
        Faults().on("FETCH")  # the Python API checks the same way


def test_every_kind_of_rule_describes_itself_as_before() -> None:
    """The descriptions are what the history and assert_all_fired show: pinned, every one."""
    f = Faults()
    f.on("RETR", nth=2, times=3, user="al", args="1 2", probability=0.5).error("Later", code="AUTH")
    f.on("stat").delay(2.5)
    f.on("RETR").disconnect(after_bytes=100)
    f.on("QUIT").disconnect()
    f.on("TOP", times=3).truncate()
    f.on("LIST").malformed("wrong-size", delta=5)
    f.on("NOOP").malformed("long-line", length=600)
    f.on("NOOP").malformed("bare-lf")
    f.on("*", probability=0.25).reply(b"+OK hi\r\n")
    f.on("*").reply(b"x" * 100)
    f.on_connect(nth=1).refuse()
    f.on_connect().delay(1)
    f.on_connect(times=2, probability=0.1).error("Busy", code="IN-USE")
    f.on_connect().error()
    f.on_connect().throttle(100)
    f.vanish(2, user="alice", nth=1, times=2, probability=1)
    f.size_mismatch(1, delta=-3, user="bob")
    assert [r.description for r in f] == [
        "error -ERR [AUTH] Later [rule 1: on RETR args='1 2' user='al' nth=2 times=3 "
        "probability=0.5]",
        "delay 2.5s [rule 2: on STAT]",
        "disconnect after 100 octets of the reply [rule 3: on RETR]",
        "disconnect before the reply [rule 4: on QUIT]",
        "truncate the reply (no final line end), then disconnect [rule 5: on TOP times=3]",
        "malformed reply: wrong-size (+5) [rule 6: on LIST]",
        "malformed reply: long-line (600 octets) [rule 7: on NOOP]",
        "malformed reply: bare-lf [rule 8: on NOOP]",
        "reply b'+OK hi\\r\\n' [rule 9: on * probability=0.25]",
        "reply b'" + "x" * 57 + "...' [rule 10: on *]",
        "refuse the connection [rule 11: on connect nth=1]",
        "delay 1s [rule 12: on connect]",
        "error -ERR [IN-USE] Busy [rule 13: on connect times=2 probability=0.1]",
        "error -ERR Service not available, try again later. [rule 14: on connect]",
        "throttle to 100 bytes/s [rule 15: on connect]",
        "message 2 vanished [rule 16: vanish message 2 user='alice' nth=1 times=2 probability=1]",
        "size of message 1 reported -3 octets off [rule 17: size mismatch of message 1 user='bob']",
    ]
    # error, disconnect before the reply, reply, refuse and vanish: the command does not run
    assert [r.id for r in f if not r.effect.runs_command] == [1, 4, 9, 10, 11, 13, 14, 16]


# --- the hook object the core calls -----------------------------------------------------------
def test_the_hook_is_what_the_session_gets_and_its_armed_follows_the_rules() -> None:
    faults = Faults()
    hook = faults.hook
    assert Session(MailStore(), faults=faults).faults is hook
    assert (hook.armed, faults.armed, bool(faults)) == (False, False, False)
    rule = faults.on("NOOP").error("x")
    assert (hook.armed, faults.armed, bool(faults)) == (True, True, True)
    rule.remove()
    assert hook.armed is False
    faults.on("NOOP").error("x")
    faults.on_connect().refuse()
    faults.remove(faults.rules[0])
    assert hook.armed is True  # one rule left
    faults.clear()
    assert hook.armed is False
    faults.add_from_dict({"command": "STAT", "action": "error"})
    assert hook.armed is True
    assert Faults([{"command": "STAT", "action": "error"}]).hook.armed is True


def test_armed_is_a_plain_attribute() -> None:
    """The core reads ``armed`` before every command: an attribute, never a property."""
    hook = Faults().hook
    assert not isinstance(inspect.getattr_static(type(hook), "armed", None), property)
    hook.armed = True  # the FaultHook protocol declares it settable
    assert hook.armed is True


def test_the_hook_called_directly() -> None:
    faults = Faults()
    rule = faults.on("RETR", args="1").truncate()
    faults.on_connect(nth=2).error("Busy", code="IN-USE")
    session = session_with(faults)
    hook = faults.hook
    assert hook.on_command(session, "RETR", ("2",)) is None
    fault = hook.on_command(session, "RETR", ("1",))
    assert fault is not None and fault.runs_command
    assert fault.description == rule.description
    assert fault.actions((b"+OK\r\n", b"body\r\n", b".\r\n")) == [
        Send((b"+OK\r\n", b"body\r\n")),
        Close("server"),
    ]
    assert hook.on_connect(session, b"+OK hi\r\n") is None  # the first connection
    assert hook.on_connect(session, b"+OK hi\r\n") == [
        Send((b"-ERR [IN-USE] Busy\r\n",)),
        Close("server"),
    ]


def test_on_connect_is_only_the_builder() -> None:
    faults = Faults()
    session = Session(MailStore(), faults=faults)
    with pytest.raises(TypeError):
        faults.on_connect(session, b"+OK\r\n")  # type: ignore[call-arg, arg-type]
    assert not hasattr(faults, "on_command")  # the core calls faults.hook, nothing else


FAULTS_PACKAGE = pathlib.Path(fakepop3.faults.__file__).parent


@pytest.mark.parametrize("path", sorted(FAULTS_PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_the_faults_package_uses_only_public_names_of_the_core(path: pathlib.Path) -> None:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and (node.module or "").endswith("protocol"):
            private = [alias.name for alias in node.names if alias.name.startswith("_")]
            assert not private, f"{path.name}:{node.lineno} imports {private} from the core"
        if isinstance(node, ast.Attribute) and isinstance(node.value, ast.Name):
            if node.value.id in ("session", "protocol") and node.attr.startswith("_"):
                raise AssertionError(f"{path.name}:{node.lineno} reads {node.value.id}.{node.attr}")


@pytest.mark.parametrize("path", sorted(FAULTS_PACKAGE.glob("*.py")), ids=lambda p: p.name)
def test_each_faults_module_is_small_and_says_what_it_holds(path: pathlib.Path) -> None:
    text = path.read_text(encoding="utf-8")
    assert len(text.splitlines()) <= 600
    assert ast.get_docstring(ast.parse(text)), f"{path.name} has no docstring"
