"""A stateful property test: random command sequences through real sessions, against a model.

Hypothesis drives two raw-socket clients against one thread-hosted server per run, both using
the same maildrop, with valid and invalid commands in any order: logins (right and wrong),
every TRANSACTION command with good and bad message numbers, garbage lines, QUIT, abrupt
drops (FIN or RST), and mail added by the test meanwhile.  Every reply is checked against a
small model of RFC 1939:

* message numbers and sizes come from the snapshot taken at login (mail added later shows at the
  next login); sizes are the octets RETR sends; RETR and TOP give back the message;
* DELE only marks (the message is then gone for the session: -ERR on it, left out of STAT/LIST);
  RSET unmarks; only QUIT in TRANSACTION removes the marked messages (UPDATE); a drop removes
  nothing;
* the maildrop is locked from login until the session ends: the other client's login gets
  ``-ERR [IN-USE]``, and after the end (QUIT, drop, too many bad commands) it is free again;
* unknown commands before login close the session at ``max_bad_commands``.

Profiles: ``ci`` (the default, small) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import os
import re
import socket
from dataclasses import dataclass, field
from typing import Any

from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    RuleBasedStateMachine,
    initialize,
    invariant,
    precondition,
    rule,
)

from fakepop3 import POP3Server, Session

from .conftest import RawClient
from .test_fast_lane import lane_is_right

settings.register_profile(
    "ci",
    max_examples=60,
    stateful_step_count=40,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.register_profile(
    "thorough",
    max_examples=3000,
    stateful_step_count=80,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
PROFILE = settings.get_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))

MAX_BAD = 3
CLIENTS = st.sampled_from([0, 1])
NUMBERS = st.integers(1, 3) | st.integers(0, 7)  # mostly numbers that exist
MESSAGES = st.one_of(
    st.lists(
        st.sampled_from([b"Subject: hi", b"From: a@b", b"", b".", b"..x", b".y", b"body", b"\t"]),
        max_size=7,
    ).map(lambda parts: b"\r\n".join(parts) + b"\r\n"),
    st.binary(max_size=120),
)
GARBAGE = st.sampled_from(
    [b"XYZZY", b"", b"   ", b"\xff\xfe", b"NO\0OP", b"A" * 300, b"GET / HTTP/1.1", b"PAS"]
)


def message_lines(raw: bytes) -> list[bytes]:
    """The lines of a message: CRLF and bare LF end a line; a lone CR is data."""
    lines = re.split(rb"\r?\n", raw)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


@dataclass(eq=False)
class Msg:
    """A message as the model knows it."""

    raw: bytes
    uid: str

    @property
    def lines(self) -> list[bytes]:
        return message_lines(self.raw)

    @property
    def size(self) -> int:
        return sum(len(line) + 2 for line in self.lines)

    def top(self, count: int) -> list[bytes]:
        lines = self.lines
        head = lines.index(b"") if b"" in lines else len(lines)
        return lines[: head + 1 + count]


@dataclass
class Client:
    """One connected client and what the model expects of its session."""

    raw: RawClient
    state: str = "AUTHORIZATION"
    pending_user: str | None = None
    snapshot: list[Msg] = field(default_factory=list)
    deleted: set[int] = field(default_factory=set)
    bad: int = 0

    def live(self) -> list[tuple[int, Msg]]:
        return [(i, m) for i, m in enumerate(self.snapshot, 1) if i not in self.deleted]


def unstuff(body: bytes) -> list[bytes]:
    """The lines of a multi-line body (ending in "." CRLF) as a client reads them."""
    assert body.endswith(b".\r\n"), body[-20:]
    lines = body[:-3].split(b"\r\n")
    assert lines.pop() == b""
    for line in lines:
        assert line != b"."
        assert not line.startswith(b".") or line.startswith(b".."), f"unstuffed {line!r}"
    return [line[1:] if line.startswith(b".") else line for line in lines]


class POP3Machine(RuleBasedStateMachine):
    """Two clients, one maildrop ("alice"), one server; the model checks every reply."""

    def __init__(self) -> None:
        super().__init__()
        # Every session the server makes, to check what each derived at its last change.
        self.sessions: list[Session] = []
        self.original_open = session_open = Session.open

        def recorded_open(*args: Any) -> Session:
            session = session_open(*args)
            self.sessions.append(session)
            return session

        Session.open = staticmethod(recorded_open)  # type: ignore[method-assign,assignment]
        self.server = POP3Server(users={"alice": "secret"}, max_bad_commands=MAX_BAD)
        self.server.start()
        self.inbox = self.server.mailbox("alice")
        self.maildrop: list[Msg] = []
        self.clients: dict[int, Client | None] = {0: None, 1: None}
        self.ended: list[str] = []  # the end reason of each session, in order of ending

    # --- helpers ----------------------------------------------------------------------------
    def holder(self) -> int | None:
        for index, client in self.clients.items():
            if client is not None and client.state == "TRANSACTION":
                return index
        return None

    def ended_session(self, index: int, reason: str) -> None:
        client = self.clients[index]
        assert client is not None
        client.raw.close()
        self.clients[index] = None
        self.ended.append(reason)
        self.server.wait_for_sessions(len(self.ended))

    def ensure(self, index: int) -> Client:
        """The client ``index``, connected first if it is not, about to send a command that is
        not PASS."""
        client = self.clients[index]
        if client is None:
            raw = RawClient(self.server.host, self.server.port)
            assert raw.greeting.startswith(b"+OK ") and raw.greeting.endswith(b">\r\n")
            client = self.clients[index] = Client(raw)
        # Every rule that calls this sends a command other than PASS, which forgets a pending
        # USER (RFC 1939 s7: PASS only right after USER); login sends USER again itself.
        client.pending_user = None
        return client

    def client(self, index: int) -> Client:
        client = self.clients[index]
        assert client is not None
        return client

    def number_error(self, client: Client, number: int) -> bytes | None:
        if number < 1 or number > len(client.snapshot):
            return f"-ERR There's no message {number}.\r\n".encode()
        if number in client.deleted:
            return b"-ERR Message is deleted.\r\n"
        return None

    # --- rules ------------------------------------------------------------------------------
    @initialize(messages=st.lists(MESSAGES, max_size=5))
    def fill(self, messages: list[bytes]) -> None:
        for raw in messages:
            self.add_mail(raw)

    @rule(raw=MESSAGES)
    def add_mail(self, raw: bytes) -> None:
        stored = self.inbox.add(raw)
        assert stored.size == Msg(raw, stored.uid).size
        self.maildrop.append(Msg(raw, stored.uid))

    @precondition(lambda self: None in self.clients.values())
    @rule(data=st.data())
    def connect(self, data: st.DataObject) -> None:
        index = data.draw(st.sampled_from([i for i, c in self.clients.items() if c is None]))
        raw = RawClient(self.server.host, self.server.port)
        assert raw.greeting.startswith(b"+OK ") and raw.greeting.endswith(b">\r\n")
        self.clients[index] = Client(raw)

    @rule(index=CLIENTS)
    def login(self, index: int) -> None:
        """USER and PASS right, in one step (so that sessions reach TRANSACTION often)."""
        client = self.ensure(index)
        if client.state == "AUTHORIZATION":
            assert client.raw.command(b"USER alice") == b"+OK\r\n"
            client.pending_user = "alice"
            self.password_of(client, right=True)

    @precondition(lambda self: any(self.clients.values()))
    @rule(data=st.data(), name=st.sampled_from(["alice", "nobody"]))
    def user(self, data: st.DataObject, name: str) -> None:
        index = data.draw(st.sampled_from([i for i, c in self.clients.items() if c]))
        client = self.client(index)
        reply = client.raw.command(b"USER " + name.encode())
        if client.state == "AUTHORIZATION":
            assert reply == b"+OK\r\n"
            client.pending_user = name
        else:
            assert reply.startswith(b"-ERR USER is only valid before login")

    @precondition(lambda self: any(self.clients.values()))
    @rule(data=st.data(), right=st.booleans())
    def password(self, data: st.DataObject, right: bool) -> None:
        index = data.draw(st.sampled_from([i for i, c in self.clients.items() if c]))
        self.password_of(self.client(index), right)

    def password_of(self, client: Client, right: bool) -> None:
        reply = client.raw.command(b"PASS " + (b"secret" if right else b"wrong one"))
        if client.state != "AUTHORIZATION":
            assert reply.startswith(b"-ERR PASS is only valid before login")
            return
        pending, client.pending_user = client.pending_user, None
        if pending is None:
            assert reply == b"-ERR No username given; send USER first.\r\n"
        elif pending != "alice" or not right:
            assert reply == b"-ERR [AUTH] Authentication failed.\r\n"
        elif self.holder() is not None:
            assert reply == b"-ERR [IN-USE] Mailbox is locked by another POP3 session.\r\n"
        else:
            assert reply == b"+OK Logged in.\r\n"
            client.state = "TRANSACTION"
            client.snapshot = list(self.maildrop)

    @rule(index=CLIENTS)
    def stat(self, index: int) -> None:
        client = self.ensure(index)
        reply = client.raw.command(b"STAT")
        if client.state != "TRANSACTION":
            assert reply.startswith(b"-ERR STAT is only valid after login")
            return
        live = client.live()
        assert reply == f"+OK {len(live)} {sum(m.size for _, m in live)}\r\n".encode()

    @rule(index=CLIENTS, number=st.none() | NUMBERS, uidl=st.booleans())
    def listing(self, index: int, number: int | None, uidl: bool) -> None:
        client = self.ensure(index)
        name = b"UIDL" if uidl else b"LIST"

        def value(m: Msg) -> str:
            return m.uid if uidl else str(m.size)

        if number is None:
            client.raw.send(name + b"\r\n")
            status, body = client.raw.read_multiline()
            if client.state != "TRANSACTION":
                assert status.startswith(b"-ERR " + name + b" is only valid after login")
                return
            assert status.startswith(b"+OK")
            expected = [f"{i} {value(m)}".encode() for i, m in client.live()]
            assert unstuff(body) == expected
            return
        reply = client.raw.command(name + b" " + str(number).encode())
        if client.state != "TRANSACTION":
            assert reply.startswith(b"-ERR ")
            return
        error = self.number_error(client, number)
        if error:
            assert reply == error
        else:
            message = client.snapshot[number - 1]
            assert reply == f"+OK {number} {value(message)}\r\n".encode()

    @rule(index=CLIENTS, number=NUMBERS, top=st.none() | st.integers(0, 4))
    def retr(self, index: int, number: int, top: int | None) -> None:
        client = self.ensure(index)
        line = f"RETR {number}" if top is None else f"TOP {number} {top}"
        client.raw.send(line.encode() + b"\r\n")
        if client.state != "TRANSACTION" or self.number_error(client, number):
            reply = client.raw.read_line()
            assert reply.startswith(b"-ERR ")
            if client.state == "TRANSACTION":
                assert reply == self.number_error(client, number)
            return
        status, body = client.raw.read_multiline()
        message = client.snapshot[number - 1]
        if top is None:
            assert status == f"+OK {message.size} octets\r\n".encode()
            lines = unstuff(body)
            assert lines == message.lines
            assert sum(len(x) + 2 for x in lines) == message.size
        else:
            assert status == b"+OK\r\n"
            assert unstuff(body) == message.top(top)

    @rule(index=CLIENTS, number=NUMBERS)
    def dele(self, index: int, number: int) -> None:
        client = self.ensure(index)
        reply = client.raw.command(f"DELE {number}".encode())
        if client.state != "TRANSACTION":
            assert reply.startswith(b"-ERR DELE is only valid after login")
            return
        error = self.number_error(client, number)
        if error:
            assert reply == error
        else:
            assert reply == b"+OK Marked to be deleted.\r\n"
            client.deleted.add(number)

    @rule(index=CLIENTS, noop=st.booleans())
    def rset(self, index: int, noop: bool) -> None:
        client = self.ensure(index)
        reply = client.raw.command(b"NOOP" if noop else b"RSET")
        if client.state != "TRANSACTION":
            assert reply.startswith(b"-ERR ")
            return
        if noop:
            assert reply == b"+OK\r\n"
            return
        client.deleted.clear()
        live = client.live()
        size = sum(m.size for _, m in live)
        assert reply == f"+OK {len(live)} messages ({size} octets)\r\n".encode()

    @rule(index=CLIENTS, line=GARBAGE)
    def garbage(self, index: int, line: bytes) -> None:
        client = self.ensure(index)
        client.raw.send(line + b"\r\n")
        reply = client.raw.read_line()
        assert reply.startswith(b"-ERR ")
        if client.state == "AUTHORIZATION":
            client.bad += 1
            if client.bad >= MAX_BAD:
                assert reply == b"-ERR Too many invalid commands, closing.\r\n"
                assert client.raw.read_to_eof() == b""
                self.ended_session(index, "server")
                return
        if line == b"PAS":  # an unknown command in either state
            assert reply.startswith(b"-ERR Unknown command")

    @rule(index=CLIENTS)
    def quit(self, index: int) -> None:
        client = self.ensure(index)
        assert client.raw.command(b"QUIT") == b"+OK Logging out.\r\n"
        if client.state == "TRANSACTION":  # UPDATE: the marked messages go, nothing else
            gone = {id(client.snapshot[n - 1]) for n in client.deleted}
            self.maildrop = [m for m in self.maildrop if id(m) not in gone]
        assert client.raw.read_to_eof() == b""
        self.ended_session(index, "quit")

    @rule(index=CLIENTS, reset=st.booleans())
    def drop(self, index: int, reset: bool) -> None:
        client = self.ensure(index)
        if reset:
            client.raw.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, b"\1\0\0\0\0\0\0\0")
        self.ended_session(index, "drop")  # nothing deleted: the model's maildrop stays

    # --- invariants ---------------------------------------------------------------------------
    @invariant()
    def maildrop_matches(self) -> None:
        assert self.inbox.uids == [m.uid for m in self.maildrop]
        assert len(set(self.inbox.uids)) == len(self.maildrop)

    @invariant()
    def lock_is_held_by_exactly_the_logged_in_session(self) -> None:
        assert self.inbox.locked == (self.holder() is not None)

    @invariant()
    def every_session_derived_its_dispatch_and_fast_lane(self) -> None:
        """Between two rules every session waits for input (each rule reads its replies, and
        waits for the sessions it ends): then its dispatch is that of its state, and its fast
        lane is open exactly when nothing is buffered and no SASL or STLS is under way."""
        assert self.sessions or all(c is None for c in self.clients.values())
        for session in self.sessions:
            assert lane_is_right(session), session.state

    def teardown(self) -> None:
        Session.open = staticmethod(self.original_open)  # type: ignore[method-assign]
        for index, client in self.clients.items():
            if client is not None:
                self.ended_session(index, "drop")
        self.server.stop()
        ended = [s.end_reason for s in self.server.history.sessions]
        assert sorted(ended, key=str) == sorted(self.ended, key=str), ended
        assert not self.inbox.locked
        self.server.raise_errors()


TestPOP3Sessions = POP3Machine.TestCase
TestPOP3Sessions.settings = settings(PROFILE, max_examples=PROFILE.max_examples * 3)
