"""The fast lane of the protocol core, :meth:`Session.answer_line`, against the general path.

The server hands each packet that holds exactly one command line to ``answer_line``; what it
returns must be what ``receive_data`` then ``next_actions`` would have sent, with the same
state and the same history.  When it cannot answer, it must return None having consumed
nothing, so that the general path sees the input untouched.
"""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from fakepop3 import Faults, History, MailStore, Session, Settings, State
from fakepop3.protocol import Close, Send

from .conftest import feed, sent
from .test_fuzz import PROFILE, inputs, messages, server_settings

HELLO = b"Subject: Hello\r\n\r\nHi!\r\n"


def make_session(settings: Settings, message: bytes = HELLO, **kwargs: object) -> Session:
    store = MailStore()
    store.add_user("alice", "secret", messages=[message, HELLO])
    store.add_user("bob", "my pass word")
    session = Session(store, settings, history=History(), **kwargs)  # type: ignore[arg-type]
    session.greeting()
    return session


def general(session: Session, chunk: bytes) -> tuple[bytes, str | None]:
    """What the general path sends for this chunk, and why it closes (None: it goes on)."""
    session.receive_data(chunk)
    out, reason = b"", None
    while (actions := session.next_actions()) is not None:
        out += sent(actions)
        for action in actions:
            if isinstance(action, Close):
                reason = action.reason
    return out, reason


def fast(session: Session, chunk: bytes) -> tuple[bytes, str | None, bool]:
    """The fast lane when it answers (third item True), else the general path."""
    if session.state is State.CLOSED:
        return b"", None, False
    reply = session.answer_line(chunk)
    if reply is None:
        return (*general(session, chunk), False)
    reason = session.close_reason if session.state is State.CLOSED else None
    return b"".join(bytes(b) for b in reply), reason, True


def lane_is_right(session: Session) -> bool:
    """What the session derived at its last change (``_refresh``) agrees with its state: the
    dispatch is that of its state and TLS, and the fast lane is open exactly when it may be."""
    should_be_open = not (
        session.pending_lines
        or session.has_partial_line()
        or session._sasl is not None
        or session._starting_tls
        or session.state is State.CLOSED
        or session.state is State.UPDATE
    )
    if session.state in (State.AUTHORIZATION, State.TRANSACTION):
        commands, lane = session.settings.dispatch.pick(session.state, session.tls)
    else:
        commands, lane = {}, None
    dispatch_is_right = session._dispatch is commands if commands else not session._dispatch
    return dispatch_is_right and session._lane is (lane if should_be_open else None)


def history_of(session: Session) -> list[tuple[object, ...]]:
    return [(c.user, c.command, c.args, c.reply, c.tls, c.fault) for c in session.history.commands]


# CRAM-MD5 challenges hold the time, so two sessions never send the same one: left out.
no_cram = server_settings.map(
    lambda s: dataclasses.replace(s, mechanisms=tuple(m for m in s.mechanisms if m != "CRAM-MD5"))
)


@PROFILE
@given(no_cram, inputs(), messages, st.sampled_from([b"", b"\r\n", b"\n"]))
def test_the_fast_lane_answers_exactly_as_the_general_path(
    settings: Settings, chunks: list[bytes], message: bytes, end: bytes
) -> None:
    reference, tested = make_session(settings, message), make_session(settings, message)
    # Whole lines as well as the fuzzer's random cuts: most packets a client sends are one line.
    packets = chunks + [line + end for line in b"".join(chunks).split(b"\r\n") if line]
    for packet in packets:
        if reference.state is State.CLOSED:
            break
        expected = general(reference, packet)
        got, reason, _ = fast(tested, packet)
        assert (got, reason) == expected, packet
        assert tested.state is reference.state
        assert tested.deleted == reference.deleted
        assert tested.has_partial_line() == reference.has_partial_line()
        assert lane_is_right(tested) and lane_is_right(reference), packet
    assert history_of(tested) == history_of(reference)


TRICKY_LINES = [
    b"USER a\0b", b"RETR \xff", b"STAT\r", b"STAT ", b" STAT", b"STAT\t", b"RETR 1 2", b"RETR",
    "RETR \u0663".encode(), "\u017ftat".encode(), b"PASS  two  spaces ", b"PASS", b"list 1",
    b"RETR +1", b"RETR 0", b"RETR 3", b"RETR 99999999999999999999", b"USER", b"USER " + b"x" * 300,
    b"TOP 1 0", b"TOP 1", b"CAPA", b"CAPA x", b"APOP alice " + b"0" * 32, b"AUTH", b"AUTH PLAIN",
    b"AUTH PLAIN =", b"AUTH NOPE", b"LANG", b"LANG en", b"UTF8", b"QUIT x", b"NOOP", b"LAST",
    b"RSET", b"DELE 1", b"DELE 1", b"STLS", b"XYZZY", b"", b"\x00", b"UIDL 2", b"uidl",
]  # fmt: skip


def test_tricky_lines_get_the_same_answer_on_both_paths() -> None:
    for login in ([], [b"USER alice\r\n", b"PASS secret\r\n"]):
        for end in (b"\r\n", b"\n"):
            reference, tested = make_session(Settings()), make_session(Settings())
            for line in [*login, *(line + end for line in TRICKY_LINES)]:
                expected = general(reference, line)
                assert fast(tested, line)[:2] == expected, line
                assert tested.state is reference.state, line
                assert lane_is_right(tested) and lane_is_right(reference), line
            assert history_of(tested) == history_of(reference)


def test_the_usual_lines_are_answered_by_the_fast_lane() -> None:
    session = make_session(Settings())
    for line, start in [
        (b"USER alice\r\n", b"+OK\r\n"),
        (b"PASS secret\r\n", b"+OK Logged in."),
        (b"STAT\r\n", b"+OK 2 "),
        (b"list\n", b"+OK 2 messages:"),
        (b"UIDL 2\r\n", b"+OK 2 "),
        (b"RETR 1\r\n", b"+OK 23 octets\r\nSubject: Hello"),
        (b"DELE 2\r\n", b"+OK Marked"),
    ]:
        reply = session.answer_line(line)
        assert reply is not None, line
        assert b"".join(bytes(b) for b in reply).startswith(start)
    assert session.answer_line(b"QUIT\r\n") == (b"+OK Logging out.\r\n",)
    assert session.state is State.CLOSED and session.close_reason == "quit"
    assert session.mailbox is not None and len(session.mailbox) == 1  # DELE 2 committed
    assert [c.line for c in session.history.commands] == [
        "USER alice", "PASS ***", "STAT", "LIST", "UIDL 2", "RETR 1", "DELE 2", "QUIT",
    ]  # fmt: skip


def test_what_the_fast_lane_leaves_to_the_general_path_is_not_consumed() -> None:
    session = make_session(Settings(tls_available=True))
    for packet in [
        b"USER alice\r\nPASS secret\r\n",  # pipelined: two lines
        b"USER ali",  # the start of a line
        b"USER " + b"a" * 300 + b"\r\n",  # overlong
        b"USER a\0b\r\n",  # a NUL
        b"USER \xff\r\n",  # not UTF-8
        b"\r\n",  # empty
        b"XYZZY\r\n",  # unknown
        b"STLS\r\n",  # the TLS handshake must follow its reply
    ]:
        assert session.answer_line(packet) is None, packet
    assert session.history.commands == []
    assert not session.has_partial_line() and session.pending_lines == 0
    assert session.state is State.AUTHORIZATION


def test_the_fast_lane_stands_aside_while_input_waits_during_sasl_and_after_close() -> None:
    session = make_session(Settings())
    session.receive_data(b"USER al")  # a partial line waits
    assert session.answer_line(b"NOOP\r\n") is None
    assert sent(feed(session, b"ice\r\n")) == b"+OK\r\n"
    assert sent(feed(session, b"AUTH PLAIN\r\n")) == b"+ \r\n"  # a SASL exchange is open
    assert session.answer_line(b"AGFsaWNlAHNlY3JldA==\r\n") is None
    assert sent(feed(session, b"AGFsaWNlAHNlY3JldA==\r\n")).startswith(b"+OK")
    assert session.answer_line(b"QUIT\r\n") is not None
    assert session.answer_line(b"NOOP\r\n") is None  # closed


def test_the_fast_lane_stands_aside_while_a_fault_rule_is_armed() -> None:
    faults = Faults()
    session = make_session(Settings(), faults=faults)
    rule = faults.on("NOOP").error("Not now")
    assert session.answer_line(b"USER alice\r\n") is None  # any rule: every command checks it
    actions = feed(session, b"USER alice\r\n")
    assert isinstance(actions[0], Send) and sent(actions) == b"+OK\r\n"
    faults.remove(rule)
    assert session.answer_line(b"PASS secret\r\n") is not None


def test_a_switched_off_command_is_left_to_the_general_path() -> None:
    session = make_session(Settings(disabled=frozenset({"UIDL"})))
    session.answer_line(b"USER alice\r\n")
    session.answer_line(b"PASS secret\r\n")
    assert session.answer_line(b"UIDL\r\n") is None
    assert sent(feed(session, b"UIDL\r\n")) == b"-ERR Unknown command: UIDL\r\n"


def test_a_session_has_slots_only() -> None:
    """Session has __slots__: an attribute that is not one of them cannot be set by mistake."""
    session = make_session(Settings())
    assert not hasattr(session, "__dict__")
    with pytest.raises(AttributeError):
        session.stat_cache = {}  # type: ignore[attr-defined]
