"""Fuzzing the sans-IO protocol core, and byte-exactness of what RETR sends.

The fuzz test feeds a :class:`fakepop3.Session` random and mutated command lines (from a POP3
grammar, then damaged: flipped, cut, doubled, NULs, bare CRs, overlong, upper/lower case), joined
with assorted line ends and delivered in chunks cut at random boundaries.  Whatever comes in:

* no exception escapes the core;
* every handled line gets exactly one reply, recorded once in the history;
* every status line is ``+OK``, ``-ERR`` or a ``+ `` SASL challenge, at most 512 octets with CRLF;
* a multi-line reply ends with ``.`` CRLF, its lines end with CRLF and are byte-stuffed, and a
  reply that is not multi-line is exactly one line;
* after ``Close`` the session answers nothing more.

The byte-exactness properties check, for any message bytes, that RETR gives back exactly the
message (line ends aside) and that LIST and STAT count exactly the octets RETR sends, in the
core and over a real socket.

Profiles: ``ci`` (the default, small) and ``thorough`` (``HYPOTHESIS_PROFILE=thorough``).
"""

from __future__ import annotations

import base64
import itertools
import os
import re
from collections.abc import Iterator

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from fakepop3 import History, MailStore, POP3Server, Session, Settings, State
from fakepop3.protocol import CAPABILITIES, Close, Pause, Send, StartTLS, Throttle

from .conftest import RawClient

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

KEYWORDS = [
    "USER", "PASS", "APOP", "AUTH", "STLS", "UTF8", "LANG", "CAPA", "QUIT", "STAT", "LIST",
    "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "LAST", "RPOP", "XYZZY", "HELO", "",
]  # fmt: skip
MULTILINE = {"CAPA", "LIST", "UIDL", "RETR", "TOP", "AUTH", "LANG"}
STATUS = re.compile(rb"(\+OK( [^\r\n]*)?|-ERR( [^\r\n]*)?|\+ [A-Za-z0-9+/]*=*)\r\n")


def b64(data: bytes) -> str:
    return base64.b64encode(data).decode()


ARGUMENTS = st.one_of(
    st.integers(-3, 12).map(str),
    st.sampled_from(
        [
            "alice",
            "secret",
            "bob",
            "hunter2",
            "PLAIN",
            "LOGIN",
            "CRAM-MD5",
            "XOAUTH2",
            "OAUTHBEARER",
            "*",
            "=",
            "en",
            "0",
            "00",
            "1.5",
            "99999999999999999999",
            "-0",
            b64(b"\0alice\0secret"),
            b64(b"alice"),
            b64(b"secret"),
            b64(b"\0alice\0nope"),
            b64(b"user=bob\x01auth=Bearer tok\x01\x01"),
            "0123456789abcdef" * 2,
        ]
    ),
    st.text(max_size=12),
)


@st.composite
def command_lines(draw: st.DrawFn) -> bytes:
    """One command line from the grammar, with 0-3 arguments (a bare argument for SASL)."""
    if draw(st.integers(0, 9)) == 0:
        return draw(ARGUMENTS).encode()  # a SASL response or a stray argument
    keyword = draw(st.sampled_from(KEYWORDS))
    if draw(st.booleans()):
        keyword = keyword.lower()
    args = draw(st.lists(ARGUMENTS, max_size=3))
    return " ".join([keyword, *args]).encode("utf-8", "surrogatepass")


@st.composite
def mutated(draw: st.DrawFn, line: bytes) -> bytes:
    data = bytearray(line)
    for _ in range(draw(st.integers(0, 3))):
        op = draw(st.integers(0, 7))
        at = draw(st.integers(0, len(data)))
        if op == 0 and data and at < len(data):
            data[at] ^= 1 << draw(st.integers(0, 7))
        elif op == 1:
            data[at:at] = draw(st.binary(min_size=1, max_size=4))
        elif op == 2:
            del data[at : at + draw(st.integers(1, 4))]
        elif op == 3:
            data[at:at] = draw(st.sampled_from([b"\0", b"\r", b"\n", b"\r\n", b" ", b".", b"\xff"]))
        elif op == 4:
            data = data[:at]
        elif op == 5:
            data = data * draw(st.integers(2, 4))
        elif op == 6:
            data += b"x" * draw(st.sampled_from([200, 254, 255, 256, 300, 5000, 70000]))
        else:
            data = bytearray(data.swapcase())
    return bytes(data)


@st.composite
def inputs(draw: st.DrawFn) -> list[bytes]:
    """The whole input of a session, cut into chunks at random boundaries."""
    lines: list[bytes] = []
    if draw(st.booleans()):
        lines += [b"USER alice", b"PASS secret"]
    for line in draw(st.lists(command_lines(), max_size=25)):
        if draw(st.integers(0, 3)) == 0:
            line = draw(mutated(line))
        lines.append(line)
    if draw(st.integers(0, 5)) == 0:
        lines.append(draw(st.binary(max_size=300)))
    ends = st.sampled_from([b"\r\n", b"\r\n", b"\r\n", b"\n", b"\r", b""])
    stream = b"".join(line + draw(ends) for line in lines)
    cuts = sorted(draw(st.lists(st.integers(0, len(stream)), max_size=12)))
    bounds = [0, *cuts, len(stream)]
    return [stream[a:b] for a, b in itertools.pairwise(bounds)]


messages = st.one_of(
    st.binary(max_size=600),
    st.lists(
        st.sampled_from([b".", b"..", b".x", b"", b"a", b"\r", b"From x", b"Subject: s", b"\t"]),
        max_size=12,
    ).map(lambda parts: b"\r\n".join(parts)),
    st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")),
)

server_settings = st.builds(
    Settings,
    disabled=st.frozensets(st.sampled_from(sorted(CAPABILITIES)), max_size=4),
    mechanisms=st.lists(
        st.sampled_from(["PLAIN", "LOGIN", "CRAM-MD5", "XOAUTH2", "OAUTHBEARER"]), unique=True
    ).map(tuple),
    tls_available=st.booleans(),
    require_tls=st.just(False),
    any_login=st.booleans(),
    max_bad_commands=st.integers(1, 12),
)


def check_reply(data: bytes, command: str, args: tuple[str, ...], status: str) -> None:
    """One reply: a well-formed status line, then a body exactly when the command has one."""
    match = STATUS.match(data)
    assert match is not None, f"malformed status line in {data[:120]!r}"
    assert match.end() <= 512, f"status line of {match.end()} octets"
    assert data[: match.end() - 2].decode("utf-8", "replace") == status
    rest = data[match.end() :]
    multi = data.startswith(b"+OK") and command in MULTILINE
    if command in ("LIST", "UIDL", "AUTH", "LANG") and args:
        multi = False
    if not multi:
        assert rest == b"", f"{command} sent more than one line: {data[:200]!r}"
        return
    assert rest.endswith(b".\r\n"), f"{command} reply not terminated: {rest[-40:]!r}"
    body = rest[:-3]
    assert body == b"" or body.endswith(b"\r\n"), "body does not end with CRLF"
    for line in body.split(b"\r\n")[:-1]:
        # A line starting with "." is stuffed, so no body line is the terminating "." alone.
        assert line != b"." and (not line.startswith(b".") or line.startswith(b"..")), line


def drive(session: Session, history: History, chunks: list[bytes]) -> int:
    """Feed the chunks, check every reply; return how many lines were handled."""
    greeting = b"".join(bytes(b) for b in session.greeting()[0].buffers)  # type: ignore[union-attr]
    assert STATUS.fullmatch(greeting) and len(greeting) <= 512
    handled = 0
    closed = False
    for chunk in chunks:
        session.receive_data(chunk)
        while True:
            before = len(history)
            actions = session.next_actions()
            if actions is None:
                break
            assert not closed, "a reply after Close"
            handled += 1
            assert len(history) == before + 1, "a line not recorded exactly once"
            record = history.commands[-1]
            assert all(isinstance(a, (Send, Close, StartTLS)) for a in actions), actions
            assert not any(isinstance(a, (Pause, Throttle)) for a in actions)
            sends = [a for a in actions if isinstance(a, Send)]
            assert len(sends) == 1, actions
            check_reply(
                b"".join(bytes(b) for b in sends[0].buffers),
                record.command,
                record.args,
                record.reply,
            )
            if any(isinstance(a, StartTLS) for a in actions):
                session.tls_started()
            if any(isinstance(a, Close) for a in actions):
                closed = True
                assert session.state is State.CLOSED
    if closed:
        assert session.next_actions() is None
    session.connection_lost()
    return handled


def new_store(raws: list[bytes]) -> MailStore:
    store = MailStore()
    store.add_user("alice", "secret", messages=raws)
    store.add_user("bob", "hunter2", tokens=["tok"])
    return store


@settings(PROFILE, max_examples=PROFILE.max_examples * 3)
@given(chunks=inputs(), raws=st.lists(messages, max_size=4), config=server_settings)
def test_fuzzed_input_never_breaks_the_core(
    chunks: list[bytes], raws: list[bytes], config: Settings
) -> None:
    store = new_store(raws)
    history = History()
    session = Session(store, config, history=history)
    drive(session, history, chunks)
    assert not store.mailbox("alice").locked  # connection_lost released it
    assert len(store.mailbox("alice")) <= len(raws)


@settings(PROFILE, max_examples=PROFILE.max_examples * 3)
@given(data=st.binary(max_size=3000), cuts=st.lists(st.integers(0, 3000), max_size=8))
def test_random_bytes_never_break_the_core(data: bytes, cuts: list[int]) -> None:
    bounds = [0, *sorted(c for c in cuts if c <= len(data)), len(data)]
    history = History()
    session = Session(new_store([b"x"]), history=history)
    drive(session, history, [data[a:b] for a, b in itertools.pairwise(bounds)])


def test_the_fuzz_checks_can_fail() -> None:
    """The reply checker rejects what a broken server would send."""
    for bad in (
        (b"+OK\r\n1 5\r\n", "LIST", (), "+OK"),  # unterminated
        (b"+OK 1 messages:\r\n.x\r\n.\r\n", "LIST", (), "+OK 1 messages:"),  # unstuffed
        (b"+OK\r\n+OK\r\n", "NOOP", (), "+OK"),  # two replies
        (b"OK\r\n", "NOOP", (), "OK"),  # no status indicator
        (b"+OK " + b"x" * 600 + b"\r\n", "NOOP", (), "+OK " + "x" * 600),  # too long
        (b"-ERR bad\n", "NOOP", (), "-ERR bad"),  # bare LF
    ):
        with pytest.raises(AssertionError):
            check_reply(*bad)


def test_found_by_fuzzing() -> None:
    """Regressions: echoed bare CR in an -ERR line; history showing a reply that was not sent."""
    chunks = [b"USER alice\r\nPASS secret\r\n0\r0\r\nRETR 1\r2\r\nQUIT\r\n"]
    # Lenient syntax splits words on any whitespace, a stray CR included: "0\r0" is the unknown
    # command "0" (the reply must not echo a CR); "RETR 1\r2" is RETR with two arguments.
    history = History()
    lenient = Settings(max_bad_commands=2, lenient_syntax=True)
    session = Session(new_store([]), lenient, history=history)
    assert drive(session, history, chunks) == 5
    assert history.commands[2].reply == "-ERR Unknown command: 0"
    assert history.commands[3].line == "RETR 1 2"
    assert all("\r" not in c.reply for c in history.commands)
    # Strict syntax (the default) refuses a line with a CR in it, and says so.
    history = History()
    session = Session(new_store([]), Settings(max_bad_commands=2), history=history)
    assert drive(session, history, chunks) == 5
    assert [c.reply for c in history.commands[2:4]] == [
        "-ERR Command line contains a bare CR; end it with one CRLF.",
        "-ERR Command line contains a bare CR; end it with one CRLF.",
    ]
    history = History()
    session = Session(new_store([]), Settings(max_bad_commands=1), history=history)
    assert drive(session, history, [b"\r\n"]) == 1
    assert history.commands[0].reply == "-ERR Too many invalid commands, closing."


# --- byte-exactness --------------------------------------------------------------------------
def message_lines(raw: bytes) -> list[bytes]:
    """The lines of a message: CRLF and bare LF end a line; a lone CR is data."""
    lines = re.split(rb"\r?\n", raw)
    if lines and lines[-1] == b"":
        lines.pop()
    return lines


def unstuff(body: bytes) -> bytes:
    """What a client makes of a multi-line body (without its final "." line): RFC 1939 s3."""
    lines = body.split(b"\r\n")
    assert lines[-1] == b""
    return b"".join((line[1:] if line.startswith(b".") else line) + b"\r\n" for line in lines[:-1])


def check_exact(raw: bytes, list_reply: bytes, stat_reply: bytes, retr: bytes) -> None:
    size = int(list_reply.split()[2])
    assert stat_reply == f"+OK 1 {size}\r\n".encode()
    status, _, rest = retr.partition(b"\r\n")
    assert status == f"+OK {size} octets".encode()
    assert rest.endswith(b".\r\n")
    received = unstuff(rest[:-3])
    assert len(received) == size  # LIST counts exactly the octets sent (stuffing aside)
    assert message_lines(received) == message_lines(raw)  # the message, line ends aside
    assert received == b"".join(line + b"\r\n" for line in message_lines(raw))


def reply_bytes(session: Session, line: bytes) -> bytes:
    session.receive_data(line + b"\r\n")
    actions = session.next_actions()
    assert actions is not None
    return b"".join(bytes(b) for a in actions if isinstance(a, Send) for b in a.buffers)


@settings(PROFILE, max_examples=PROFILE.max_examples * 5)
@given(raw=messages)
def test_retr_gives_back_exactly_the_message(raw: bytes) -> None:
    session = Session(new_store([raw]))
    assert reply_bytes(session, b"USER alice").startswith(b"+OK")
    assert reply_bytes(session, b"PASS secret").startswith(b"+OK")
    list_reply = reply_bytes(session, b"LIST 1")
    check_exact(raw, list_reply, reply_bytes(session, b"STAT"), reply_bytes(session, b"RETR 1"))
    lines = message_lines(raw)
    top = reply_bytes(session, b"TOP 1 0")
    assert top.startswith(b"+OK\r\n") and top.endswith(b".\r\n")
    top_lines = message_lines(unstuff(top[5:-3]))
    assert top_lines == lines[: len(top_lines)]  # TOP is a prefix of the message


def test_byte_exact_examples() -> None:
    for raw, lines in (
        (b"a\nb", [b"a", b"b"]),
        (b"a\r\r\nb\r", [b"a\r", b"b\r"]),
        (b".\r\n..\r\n", [b".", b".."]),
        (b"", []),
    ):
        assert message_lines(raw) == lines
    with pytest.raises(AssertionError):  # a size that counts LF as one octet is caught
        check_exact(b"a\nb\n", b"+OK 1 4\r\n", b"+OK 1 4\r\n", b"+OK 4 octets\r\na\r\nb\r\n.\r\n")


@pytest.fixture(scope="module")
def wire_server() -> Iterator[POP3Server]:
    with POP3Server(users={"alice": "secret"}) as server:
        yield server
    server.raise_errors()


@settings(
    PROFILE,
    max_examples=PROFILE.max_examples,
    suppress_health_check=[*PROFILE.suppress_health_check, HealthCheck.function_scoped_fixture],
)
@given(raw=messages)
def test_retr_over_the_wire_is_byte_exact(wire_server: POP3Server, raw: bytes) -> None:
    inbox = wire_server.mailbox("alice")
    inbox.clear()
    inbox.add(raw)
    with RawClient(wire_server.host, wire_server.port) as client:
        client.login()
        list_reply = client.command(b"LIST 1")
        stat_reply = client.command(b"STAT")
        client.send(b"RETR 1\r\n")
        status, body = client.read_multiline()
        check_exact(raw, list_reply, stat_reply, status + body)
        assert client.command(b"QUIT") == b"+OK Logging out.\r\n"
    assert len(inbox) == 1
