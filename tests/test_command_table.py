"""Every command in every state, with 0 to 3 arguments: the exact answer, pinned.

The golden table ``golden/command_replies.txt`` was recorded from the hand-written handlers
before the command table replaced their preconditions (state, arity, capability, TLS): each
line is one command line sent to a fresh session of one profile (settings, TLS or not) after
one setup (just greeted, after USER, after UTF8, logged in, logged in with a deletion marked,
mid-SASL, closed), and what came back: the reply bytes, the other actions (Close, StartTLS),
the line the history recorded, the state and the count of bad commands after.  The fast lane
must give the same answer whenever it answers.  Every profile but "off" offers UTF8
(``utf8=True``): the table was recorded when it was on by default.

To record the table again (only when a change of behaviour is meant, and reviewed as such)::

    python -m tests.test_command_table --write
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from pathlib import Path

from fakepop3 import History, MailStore, Session, Settings, State
from fakepop3.protocol import Close, Send, StartTLS

GOLDEN = Path(__file__).parent / "golden" / "command_replies.txt"

COMMANDS = [
    "USER", "PASS", "APOP", "AUTH", "STLS", "UTF8", "LANG", "CAPA", "QUIT", "STAT", "LIST",
    "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "LAST", "RPOP", "XYZZY",
]  # fmt: skip

#: Arguments every command gets: none, one (a number, a word), two, three.
GENERIC_ARGS = ["", " 1", " x", " 1 2", " 1 2 3"]
#: Arguments that pass the preconditions of a command, so its own checks answer.
SPECIFIC_ARGS = {
    "USER": [" alice", " nobody"],
    "PASS": [" secret", " my pass word", " wrong"],
    "APOP": [" alice " + "0" * 32, " alice zz"],
    "AUTH": [" PLAIN", " PLAIN AGFsaWNlAHNlY3JldA==", " PLAIN =", " PLAIN !!", " plain x y"],
    "LANG": [" en", " *", " EN", " fr", " DE"],
    "RETR": [" 2", " 0", " 9"],
    "TOP": [" 1 0", " 2 x", " 9 1"],
    "DELE": [" 2", " 9"],
    "LIST": [" 2", " 9", " -1"],
    "UIDL": [" 2", " 9"],
}

ALL_OFF = frozenset({"TOP", "UIDL", "APOP", "STLS", "UTF8", "LANG", "CAPA", "SASL"})
NO_USER = frozenset({"USER", "RESP-CODES", "AUTH-RESP-CODE"})
#: name: (settings, the session starts on TLS, the setups tried)
PROFILES: dict[str, tuple[Settings, bool, tuple[str, ...]]] = {
    "default": (Settings(utf8=True), False, ("*",)),
    "tls-offered": (
        Settings(utf8=True, tls_available=True, languages={"en": "English", "de": "Deutsch"}),
        False,
        ("greeted", "after-user", "after-utf8"),
    ),
    "tls-on": (
        Settings(utf8=True, tls_available=True),
        True,
        ("greeted", "after-user", "logged-in"),
    ),
    "require-tls": (Settings(utf8=True, tls_available=True, require_tls=True), False, ("greeted",)),
    "require-tls-on": (
        Settings(utf8=True, tls_available=True, require_tls=True),
        True,
        ("greeted", "after-user", "logged-in"),
    ),
    "require-no-cert": (Settings(utf8=True, require_tls=True), False, ("greeted",)),
    "off": (Settings(disabled=ALL_OFF), False, ("greeted", "after-user", "logged-in")),
    "no-user-no-codes": (Settings(utf8=True, disabled=NO_USER), False, ("greeted", "sasl-login")),
    "no-mechanisms": (Settings(utf8=True, mechanisms=()), False, ("greeted", "logged-in")),
    "one-bad": (Settings(utf8=True, max_bad_commands=1), False, ("greeted", "logged-in")),
}

#: name: the lines that lead there, and the state the session must then be in.
SETUPS: dict[str, tuple[list[bytes], State]] = {
    "greeted": ([], State.AUTHORIZATION),
    "after-user": ([b"USER alice"], State.AUTHORIZATION),
    "after-utf8": ([b"UTF8"], State.AUTHORIZATION),
    "logged-in": ([b"USER alice", b"PASS secret"], State.TRANSACTION),
    "sasl-login": ([b"AUTH PLAIN AGFsaWNlAHNlY3JldA=="], State.TRANSACTION),
    "deleted": ([b"USER alice", b"PASS secret", b"DELE 1"], State.TRANSACTION),
    "mid-sasl": ([b"AUTH PLAIN"], State.AUTHORIZATION),
    "closed": ([b"QUIT"], State.CLOSED),
}

ONE = b"Subject: one\r\n\r\nfirst\r\n.dot\r\n"
TWO = b"Subject: two\r\nFrom: b@example.org\r\n\r\nsecond\r\nline\r\n"


def new_session(profile: str) -> Session:
    settings, tls, _ = PROFILES[profile]
    store = MailStore()
    store.add_user("alice", "secret", messages=[ONE, TWO])
    store.add_user("bob", "my pass word")
    session = Session(store, settings, history=History(), tls=tls)
    session.greeting()
    return session


def prepared(profile: str, setup: str) -> Session | None:
    """A session of ``profile`` after ``setup``, or None where that setup cannot happen."""
    session = new_session(profile)
    lines, state = SETUPS[setup]
    for line in lines:
        session.receive_data(line + b"\r\n")
        while session.next_actions() is not None:
            pass
    if session.state is not state:
        return None
    if setup == "mid-sasl" and session.has_line():
        return None
    if setup == "after-user" and session.pending_user is None:
        return None
    if setup == "after-utf8" and not session.utf8:
        return None
    return session


def describe(session: Session, line: bytes, actions: list[object] | None) -> str:
    """One answer, as the golden table writes it: the reply bytes, the other actions, the line
    the history recorded (when it is not the line sent), the state and the bad-command count,
    and what of the session's login state is set (USER's name, UTF8, LANG, deletions)."""
    if actions is None:
        return f"None {session.state.name}"
    data = b"".join(bytes(b) for a in actions if isinstance(a, Send) for b in a.buffers)
    out = [repr(data)]
    for action in actions:
        if isinstance(action, Close):
            out.append(f"Close({action.reason})")
        elif isinstance(action, StartTLS):
            out.append("StartTLS")
        elif not isinstance(action, Send):
            out.append(repr(action))
    commands = session.history.commands
    logged = commands[-1].line if commands else "-"
    if logged != " ".join(line.decode().split()):
        out.append(f"log={logged!r}")
    out.append(f"{session.state.name} {session.bad_commands}")
    if session.pending_user is not None:
        out.append(f"pending={session.pending_user}")
    if session.utf8:
        out.append("utf8")
    if session.language != "en":
        out.append(f"lang={session.language}")
    if session.deleted:
        out.append(f"deleted={sorted(session.deleted)}")
    if session.user is not None:
        out.append(f"user={session.user}")
    return " ".join(out)


def cases() -> Iterator[tuple[str, str, list[bytes]]]:
    """(profile, setup, the lines sent, each to a fresh session)."""
    for profile, (_, _, setups) in PROFILES.items():
        for setup in SETUPS:
            if "*" not in setups and setup not in setups:
                continue
            assert prepared(profile, setup) is not None, (profile, setup)
            lines = []
            for command in COMMANDS:
                every = [*GENERIC_ARGS, *SPECIFIC_ARGS.get(command, [])]
                # After close nothing is answered; mid-SASL every line is a SASL response.
                for args in every[:2] if setup in ("closed", "mid-sasl") else every:
                    lines.append(f"{command}{args}".encode())
            yield profile, setup, lines


def answer(profile: str, setup: str, line: bytes) -> str:
    session = prepared(profile, setup)
    assert session is not None
    before = len(session.history.commands)
    session.receive_data(line + b"\r\n")
    actions = session.next_actions()
    assert session.next_actions() is None, line
    if actions is not None:
        assert len(session.history.commands) == before + 1, line
    return describe(session, line, list(actions) if actions is not None else None)


def fast_answer(profile: str, setup: str, line: bytes) -> str | None:
    """The fast lane's answer, when it answers, written as :func:`answer` writes it."""
    session = prepared(profile, setup)
    assert session is not None
    reply = session.answer_line(line + b"\r\n")
    if reply is None:
        return None
    actions: list[object] = [Send(reply)]
    if session.state is State.CLOSED:
        actions.append(Close(session.close_reason))
    return describe(session, line, actions)


def table() -> list[str]:
    """The golden table: a heading per profile and setup, then one line per command line."""
    out = []
    for profile, setup, lines in cases():
        out.append(f"## {profile} {setup}")
        out += [f"{line.decode()!r} => {answer(profile, setup, line)}" for line in lines]
    return out


def golden() -> list[str]:
    return GOLDEN.read_text(encoding="utf-8").splitlines()


def test_every_command_in_every_state_answers_as_recorded() -> None:
    expected, got = golden(), table()
    wrong = [(e, g) for e, g in zip(expected, got, strict=False) if e != g]
    assert not wrong, "\n".join(f"want {e}\n got {g}" for e, g in wrong[:20])
    assert len(got) == len(expected)


def test_the_fast_lane_answers_as_recorded_whenever_it_answers() -> None:
    expected = iter(golden())
    answered = 0
    for profile, setup, lines in cases():
        assert next(expected) == f"## {profile} {setup}"
        for line in lines:
            want = next(expected).split(" => ", 1)[1]
            got = fast_answer(profile, setup, line)
            if got is not None:
                answered += 1
                assert got == want, (profile, setup, line)
    assert answered > 500  # the lane takes most of these lines


def test_the_table_covers_every_profile_and_setup() -> None:
    seen = {(p, s) for p, s, _ in cases()}
    for profile in PROFILES:
        assert (profile, "greeted") in seen
    assert len(seen) == 8 + 3 + 3 + 1 + 3 + 1 + 3 + 2 + 2 + 2
    assert prepared("require-tls", "logged-in") is None  # no login before TLS


if __name__ == "__main__":
    if sys.argv[1:] == ["--write"]:
        GOLDEN.parent.mkdir(exist_ok=True)
        GOLDEN.write_text("".join(f"{line}\n" for line in table()), encoding="utf-8")
    else:
        sys.exit(f"usage: python -m {__spec__.name if __spec__ else __file__} --write")
