"""The command history: records, queries, assertion helpers and their failure messages, waiting."""

from __future__ import annotations

import asyncio
import json
import threading

import pytest

from fakepop3 import CommandRecord, History, POP3Server, SessionRecord

from .conftest import USERS


def record(
    history: History,
    session: SessionRecord,
    line: str,
    reply: str = "+OK",
    *,
    user: str | None = "alice",
    tls: bool = False,
) -> CommandRecord:
    command, *args = line.split(" ")
    rec = CommandRecord(
        session_id=session.id,
        client=session.client,
        user=user,
        command=command,
        args=tuple(args),
        reply=reply,
        tls=tls,
        received_at=0.0,
    )
    history.record(session, rec)
    return rec


@pytest.fixture
def history() -> History:
    """Two sessions: alice read and deleted messages 1 and 2; bob listed and quit."""
    history = History()
    alice = history.open_session(1, ("127.0.0.1", 50001), False)
    record(history, alice, "USER alice", user=None)
    record(history, alice, "PASS ***")
    for line in ("STAT", "RETR 1", "DELE 1", "RETR 2", "DELE 2"):
        record(history, alice, line)
    record(history, alice, "RETR 3", "-ERR There's no message 3.")
    record(history, alice, "QUIT", "+OK Logging out.")
    history.close_session(alice, "quit")
    bob = history.open_session(2, ("127.0.0.1", 50002), True)
    record(history, bob, "USER bob", user=None, tls=True)
    record(history, bob, "PASS ***", user="bob", tls=True)
    record(history, bob, "LIST", user="bob", tls=True)
    history.close_session(bob, "drop")
    return history


# --- queries -------------------------------------------------------------------------------------
def test_filter_by_every_criterion(history: History) -> None:
    assert [c.line for c in history.filter("retr")] == ["RETR 1", "RETR 2", "RETR 3"]
    assert [c.line for c in history.filter("RETR", "2")] == ["RETR 2"]
    assert [c.line for c in history.filter(user="bob")] == ["PASS ***", "LIST"]
    assert [c.line for c in history.filter(session=2)] == ["USER bob", "PASS ***", "LIST"]
    assert [c.line for c in history.filter(ok=False)] == ["RETR 3"]
    assert [c.line for c in history.filter(tls=True, user="bob")] == ["PASS ***", "LIST"]
    assert history.count("DELE") == 2
    assert history.count("PASS", user="alice") == 1
    assert len(history) == 12 and len(list(history)) == 12


def test_in_checks_a_command_line(history: History) -> None:
    assert "RETR 1" in history
    assert "retr 2" in history
    assert "RETR 4" not in history
    assert history.commands[0] in history
    assert 42 not in history


def test_command_lines_and_sessions(history: History) -> None:
    assert history.command_lines(session=2) == ["USER bob", "PASS ***", "LIST"]
    alice, bob = history.sessions
    assert (alice.end_reason, bob.end_reason) == ("quit", "drop")
    assert alice.ended and bob.tls and not alice.tls
    assert history.ended_sessions == 2


def test_records_render_readably(history: History) -> None:
    rec = history.filter("RETR", "3")[0]
    assert str(rec) == "#1 alice: RETR 3 -> -ERR There's no message 3."
    assert not rec.ok
    assert str(history.filter("LIST")[0]) == "#2 bob [TLS]: LIST -> +OK"
    transcript = history.transcript()
    assert "session #1 from 127.0.0.1:50001 (ended by quit)" in transcript
    assert "  C: RETR 3\n  S: -ERR There's no message 3." in transcript
    assert "  C: LIST [TLS]\n  S: +OK" in transcript
    assert History().transcript() == "(no POP3 sessions)"


def test_jsonl_export(history: History) -> None:
    rows = [json.loads(line) for line in history.to_jsonl().splitlines()]
    assert len(rows) == 12
    assert rows[7] == {
        "session": 1,
        "client": "127.0.0.1:50001",
        "user": "alice",
        "command": "RETR",
        "args": ["3"],
        "reply": "-ERR There's no message 3.",
        "ok": False,
        "tls": False,
        "time": 0.0,
        "fault": None,
        "lint": [],
    }


# --- assertions ----------------------------------------------------------------------------------
def test_assert_sent_passes_and_returns_the_records(history: History) -> None:
    found = history.assert_sent("RETR", "2", user="alice", times=1)
    assert [c.line for c in found] == ["RETR 2"]
    assert len(history.assert_sent("dele")) == 2
    assert history.assert_sent("NOOP", times=0) == []


def test_assert_sent_failure_lists_the_most_similar_commands(history: History) -> None:
    with pytest.raises(AssertionError) as info:
        history.assert_sent("RETR", "4", user="alice")
    text = str(info.value)
    assert text.startswith(
        "expected 'RETR 4' to be sent at least once by user 'alice', but it was sent 0 time(s)."
    )
    similar = text.split("Most similar commands sent:\n", 1)[1].splitlines()
    assert similar[:3] == [
        "  #1 alice: RETR 1 -> +OK",
        "  #1 alice: RETR 2 -> +OK",
        "  #1 alice: RETR 3 -> -ERR There's no message 3.",
    ]
    assert "All commands: 12." in text


def test_assert_sent_failure_on_a_wrong_count(history: History) -> None:
    with pytest.raises(
        AssertionError, match=r"expected 'DELE' to be sent 1 time\(s\), but it was sent 2"
    ):
        history.assert_sent("DELE", times=1)
    with pytest.raises(AssertionError, match="by user 'bob', but it was sent 0 time"):
        history.assert_sent("RETR", "1", user="bob")


def test_assert_sent_on_an_empty_history() -> None:
    with pytest.raises(AssertionError, match="No commands were recorded at all."):
        History().assert_sent("STAT")


def test_assert_not_sent(history: History) -> None:
    history.assert_not_sent("RSET")
    history.assert_not_sent("RETR", "4")
    history.assert_not_sent("LIST", user="alice")
    with pytest.raises(AssertionError) as info:
        history.assert_not_sent("retr")
    assert str(info.value) == (
        "expected 'RETR' never to be sent, but got:\n"
        "  #1 alice: RETR 1 -> +OK\n"
        "  #1 alice: RETR 2 -> +OK\n"
        "  #1 alice: RETR 3 -> -ERR There's no message 3."
    )


def test_assert_sequence(history: History) -> None:
    history.assert_sequence("USER alice", "PASS ***", "RETR 1", "DELE 1", "QUIT")
    history.assert_sequence("retr 1", "dele 2")  # gaps allowed, keyword case-insensitive
    history.assert_sequence("USER bob", "LIST", session=2)
    history.assert_sequence("RETR 1", "DELE 1", user="alice")
    with pytest.raises(AssertionError) as info:
        history.assert_sequence("DELE 2", "RETR 1", user="alice")
    text = str(info.value)
    assert "'RETR 1' was not found after ['DELE 2']" in text
    assert "Sent:\n  PASS ***\n  STAT\n  RETR 1\n" in text
    with pytest.raises(AssertionError, match=r"Sent:\n  \(nothing\)"):
        History().assert_sequence("STAT")


def test_clear_forgets_records_but_not_the_count_of_ended_sessions(history: History) -> None:
    history.clear()
    assert history.commands == [] and history.sessions == [] and len(history) == 0
    assert history.ended_sessions == 2
    history.assert_not_sent("RETR")
    history.wait_for_sessions(2, timeout=0)


def test_listeners_see_commands_and_session_ends() -> None:
    history = History()
    commands: list[str] = []
    ended: list[str | None] = []
    history.add_listener(lambda c: commands.append(c.line))
    history.add_session_listener(lambda s: ended.append(s.end_reason))
    session = history.open_session(7, ("127.0.0.1", 1), False)
    record(history, session, "NOOP")
    history.close_session(session, "timeout")
    history.close_session(session, "drop")  # a second end is ignored
    assert commands == ["NOOP"] and ended == ["timeout"]
    assert session.end_reason == "timeout" and history.ended_sessions == 1


def test_a_disabled_history_records_nothing_but_counts_endings() -> None:
    history = History(enabled=False)
    session = history.open_session(1, ("127.0.0.1", 1), False)
    record(history, session, "STAT")
    history.close_session(session, "quit")
    assert history.commands == [] and history.sessions == []
    assert history.ended_sessions == 1


# --- waiting ---------------------------------------------------------------------------------------
def test_wait_for_sessions_from_another_thread() -> None:
    history = History()
    sessions = [history.open_session(i, ("127.0.0.1", i), False) for i in range(3)]
    started = threading.Event()

    def end_all() -> None:
        started.wait()
        for session in sessions:
            history.close_session(session, "quit")

    thread = threading.Thread(target=end_all)
    thread.start()
    started.set()
    history.wait_for_sessions(3)
    thread.join()
    assert all(s.ended for s in sessions)
    with pytest.raises(TimeoutError, match=r"waited 0.01s for 4 POP3 session\(s\) to end; 3 ended"):
        history.wait_for_sessions(4, timeout=0.01)


@pytest.mark.asyncio
async def test_wait_for_sessions_async_from_another_thread() -> None:
    history = History()
    sessions = [history.open_session(i, ("127.0.0.1", i), False) for i in range(2)]
    waiter = asyncio.ensure_future(history.wait_for_sessions_async(2))
    await asyncio.to_thread(history.close_session, sessions[0], "quit")
    assert not waiter.done()
    await asyncio.to_thread(history.close_session, sessions[1], "drop")
    await asyncio.wait_for(waiter, 5)
    await history.wait_for_sessions_async(1)  # already reached


def test_a_cancelled_async_wait_does_not_break_later_session_ends() -> None:
    """A test that gave up waiting (and closed its loop) must not break the next test's server."""
    ended: list[SessionRecord] = []
    with POP3Server(users=USERS, on_session_end=ended.append) as server:

        async def give_up() -> None:
            with pytest.raises(asyncio.TimeoutError):
                await asyncio.wait_for(server.wait_for_sessions_async(1), 0.01)

        asyncio.run(give_up())  # this loop is closed now
        server.client("alice").quit()
        server.wait_for_sessions(1)
        assert [s.end_reason for s in ended] == ["quit"]
    server.raise_errors()


# --- on a real server --------------------------------------------------------------------------------
def test_clear_between_tests_on_one_server(thread_server: POP3Server) -> None:
    thread_server.client("alice").quit()
    thread_server.wait_for_sessions(1)
    thread_server.history.assert_sent("QUIT", user="alice", times=1)
    thread_server.history.clear()
    thread_server.history.assert_not_sent("QUIT")
    thread_server.client("bob").quit()
    thread_server.wait_for_sessions(2)  # the count goes on across clear()
    assert thread_server.history.command_lines() == ["USER bob", "PASS ***", "QUIT"]
    assert [s.user for s in thread_server.history.sessions] == ["bob"]


def test_server_reset_restores_mail_and_clears_history() -> None:
    server = POP3Server(users=USERS)
    server.mailbox("alice").add(b"Subject: kept\r\n\r\n")
    with server:
        client = server.client("alice")
        client.dele(1)
        client.quit()
        server.wait_for_sessions(1)
        assert len(server.mailbox("alice")) == 0
        server.reset()
        assert len(server.mailbox("alice")) == 1
        assert len(server.history) == 0
    server.raise_errors()


def test_a_session_record_is_the_same_read_before_and_after_its_end() -> None:
    """An ended session is kept compactly and read back as an equal SessionRecord; a record
    read while the session was open sees its end too."""
    import poplib

    with POP3Server(users=USERS) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.user("alice")
        client.pass_(USERS["alice"])
        client.stat()
        [live] = server.history.sessions
        assert live.end_reason is None and not live.ended
        client.quit()
        server.wait_for_sessions(1)
        [ended] = server.history.sessions
        assert live.end_reason == "quit" and live.ended  # the record read before sees the end
        assert ended == live and ended is not live
        assert [c.line for c in ended.commands] == ["USER alice", "PASS ***", "STAT", "QUIT"]
        assert ended.commands == live.commands
        assert ended.transcript() == live.transcript()


# --- the protocol core's entry point ------------------------------------------------------------
def fields(
    session: SessionRecord, line: str, reply: str | bytes = b"+OK\r\n"
) -> tuple[object, ...]:
    """What the protocol core gives History.add_command: a CommandRecord's fields, in order."""
    command, *args = line.split(" ")
    return (session.id, session.client, None, command, tuple(args), reply, False, 0.0, None)


def test_add_command_keeps_each_sessions_commands_in_order_when_they_interleave() -> None:
    history = History()
    one = history.open_session(1, ("127.0.0.1", 1), False)
    two = history.open_session(2, ("127.0.0.1", 2), False)
    for session, line in [(one, "USER a"), (two, "USER b"), (one, "STAT"), (two, "NOOP")]:
        history.add_command(fields(session, line))
    assert [c.line for c in one.commands] == ["USER a", "STAT"]  # read while open
    history.add_command(fields(one, "QUIT", "+OK Logging out.\r\n"))
    history.close_session(one, "quit")
    history.add_command(fields(two, "LIST", b"+OK 2 messages:\r\n"))
    history.close_session(two, "drop")
    assert history.command_lines() == ["USER a", "USER b", "STAT", "NOOP", "QUIT", "LIST"]
    assert [c.line for c in history.filter(session=1)] == ["USER a", "STAT", "QUIT"]
    ended = {s.id: s for s in history.sessions}
    assert [c.line for c in ended[1].commands] == ["USER a", "STAT", "QUIT"]
    assert [c.line for c in ended[2].commands] == ["USER b", "NOOP", "LIST"]
    assert [c.reply for c in ended[2].commands] == ["+OK", "+OK", "+OK 2 messages:"]
    assert one.commands == ended[1].commands and two.commands == ended[2].commands


def test_a_reply_given_as_bytes_is_recorded_as_its_status_line() -> None:
    history = History()
    session = history.open_session(1, ("127.0.0.1", 1), False)
    history.add_command(fields(session, "CAPA", b"+OK Capability list follows\r\n"))
    history.add_command(fields(session, "XYZ", b"-ERR caf\xc3\xa9 \xff\r\n"))
    history.add_command(fields(session, "RETR 1", b"+OK 5 octets\r\nbody\r\n"))
    history.add_command(fields(session, "NOOP", "+OK as text"))
    assert [c.reply for c in history] == [
        "+OK Capability list follows",
        "-ERR café \ufffd",
        "+OK 5 octets",
        "+OK as text",
    ]
    assert history.commands[1] in history
    assert CommandRecord(*fields(session, "XYZ", "-ERR café \ufffd")) in history  # type: ignore[arg-type]


def test_clear_keeps_an_open_sessions_record_whole() -> None:
    history = History()
    session = history.open_session(1, ("127.0.0.1", 1), False)
    history.add_command(fields(session, "USER a"))
    history.clear()
    history.add_command(fields(session, "STAT"))
    assert history.command_lines() == ["STAT"] and history.sessions == []
    assert [c.line for c in session.commands] == ["USER a", "STAT"]
    history.close_session(session, "quit")
    assert [c.line for c in session.commands] == ["USER a", "STAT"]


def test_a_listener_added_while_a_session_is_open_sees_its_next_commands() -> None:
    history = History()
    session = history.open_session(1, ("127.0.0.1", 1), False)
    history.add_command(fields(session, "USER a"))
    seen: list[str] = []
    history.add_listener(lambda c: seen.append(f"{c.line} -> {c.reply}"))
    history.add_command(fields(session, "STAT", b"+OK 1 5\r\n"))
    assert seen == ["STAT -> +OK 1 5"]
    assert [c.line for c in session.commands] == ["USER a", "STAT"]


def test_a_disabled_history_ignores_add_command() -> None:
    history = History(enabled=False)
    session = history.open_session(1, ("127.0.0.1", 1), False)
    history.add_command(fields(session, "STAT"))
    history.close_session(session, "quit")
    assert history.commands == [] and session.commands == []


# --- a bounded history (a server that runs for days) ---------------------------------------
def test_keep_sessions_keeps_the_last_ended_ones_and_every_open_one() -> None:
    history = History()
    history.keep_sessions(5)
    seen: list[int] = []
    history.add_session_listener(lambda s: seen.append(s.id))
    long_lived = history.open_session(next(history.session_ids), ("127.0.0.1", 1), False)
    record(history, long_lived, "USER alice")
    for _ in range(300):
        session = history.open_session(next(history.session_ids), ("127.0.0.1", 2), False)
        record(history, session, "STAT")
        history.close_session(session, "quit")
    record(history, long_lived, "NOOP")
    kept = history.sessions
    assert len(kept) <= 2 * 5 + 100 + 1, len(kept)
    ids = [s.id for s in kept]
    assert ids[0] == 1, "the open session is kept, whatever its age"
    assert ids[-5:] == [297, 298, 299, 300, 301]
    assert {c.session_id for c in history.commands} == set(ids)
    assert [c.line for c in history.filter(session=1)] == ["USER alice", "NOOP"]
    assert len(seen) == 300 and history.ended_sessions == 300, "listeners get every session"
    history.close_session(long_lived, "quit")
    first = history.sessions[0]  # in the order they started
    assert first.id == 1 and first.ended and len(first.commands) == 2


def test_keep_sessions_zero_and_none() -> None:
    history = History()
    for _ in range(150):
        session = history.open_session(next(history.session_ids), ("127.0.0.1", 2), False)
        history.close_session(session, "quit")
    assert len(history.sessions) == 150, "no bound unless asked for"
    history.keep_sessions(0)  # applied at once
    assert history.sessions == [] and len(history) == 0
    history.keep_sessions(None)
    for _ in range(150):
        session = history.open_session(next(history.session_ids), ("127.0.0.1", 2), False)
        history.close_session(session, "quit")
    assert len(history.sessions) == 150
    with pytest.raises(ValueError, match="keep_sessions takes a count"):
        history.keep_sessions(-1)


def test_sessions_are_numbered_per_server_from_1() -> None:
    """The second server of a process (the next test's) numbers its sessions 1, 2, ... too."""
    import poplib

    for _ in range(2):
        with POP3Server(users=USERS) as server:
            for _ in range(2):
                client = poplib.POP3(server.host, server.port, timeout=10)
                client.quit()
            server.history.wait_for_sessions(2)
            assert [s.id for s in server.history.sessions] == [1, 2]
