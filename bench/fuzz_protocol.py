"""Coverage-guided fuzzing of the sans-IO protocol core, outside the normal test suite.

With atheris (``pip install atheris``; libFuzzer under the hood)::

    python bench/fuzz_protocol.py -max_total_time=600 [corpus_dir ...]
    python bench/fuzz_protocol.py -runs=100000

Any libFuzzer option can be given; a dictionary of POP3 keywords is added unless ``-dict=`` is.
Without atheris it falls back to a long hypothesis run of ``tests/test_fuzz.py`` with the
``thorough`` profile.

Each input is decoded into server settings (first byte), chunk boundaries and a byte stream that
is fed to a :class:`fakepop3.Session` chunk by chunk.  The harness fails (and libFuzzer keeps the
crashing input) on any exception from the core, on a reply that is not exactly one
``+OK``/``-ERR``/``+ `` status line of at most 512 octets (plus, for a multi-line reply, a
stuffed body ended by ``.`` CRLF), on a line handled without being recorded once in the
history, or on a reply after ``Close``.
"""

from __future__ import annotations

import importlib.util
import itertools
import os
import re
import subprocess
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

STATUS = re.compile(rb"(\+OK( [^\r\n]*)?|-ERR( [^\r\n]*)?|\+ [A-Za-z0-9+/]*=*)\r\n")
MULTILINE = {"CAPA", "LIST", "UIDL", "RETR", "TOP", "AUTH", "LANG"}
KEYWORDS = [
    "USER", "PASS", "APOP", "AUTH", "STLS", "UTF8", "LANG", "CAPA", "QUIT", "STAT", "LIST",
    "UIDL", "RETR", "TOP", "DELE", "RSET", "NOOP", "LAST", "RPOP", "PLAIN", "LOGIN", "CRAM-MD5",
    "XOAUTH2", "OAUTHBEARER", "alice", "secret", "AGFsaWNlAHNlY3JldA==", "\\x0D\\x0A", "*", "=",
]  # fmt: skip


def check_reply(data: bytes, command: str, args: tuple[str, ...], status: str) -> None:
    """One reply: a well-formed status line, then a body exactly when the command has one."""
    match = STATUS.match(data)
    if match is None or match.end() > 512:
        raise AssertionError(f"bad status line: {data[:200]!r}")
    if data[: match.end() - 2].decode("utf-8", "replace") != status:
        raise AssertionError(f"history says {status!r}, the wire {data[:100]!r}")
    rest = data[match.end() :]
    multi = data.startswith(b"+OK") and command in MULTILINE
    if command in ("LIST", "UIDL", "AUTH", "LANG") and args:
        multi = False
    if not multi:
        if rest:
            raise AssertionError(f"{command}: more than one line: {data[:200]!r}")
        return
    if not rest.endswith(b".\r\n") or not (rest == b".\r\n" or rest.endswith(b"\r\n.\r\n")):
        raise AssertionError(f"{command}: multi-line reply not terminated: {rest[-50:]!r}")
    for line in rest[:-3].split(b"\r\n")[:-1]:
        if line == b"." or (line.startswith(b".") and not line.startswith(b"..")):
            raise AssertionError(f"{command}: unstuffed line {line!r}")


def run_one(data: bytes) -> None:
    """Decode one fuzz input and drive a session with it, checking every reply."""
    from fakepop3 import History, MailStore, Session, Settings, State
    from fakepop3.protocol import CAPABILITIES, Close, Send, StartTLS

    if len(data) < 3:
        return
    # Byte 0: settings flags; byte 1: which capabilities are off (one in eight each);
    # byte 2: how many chunk boundaries follow; then the boundaries; then the stream.
    flags, capmask, ncuts = data[0], data[1], data[2] % 8
    cuts = sorted(set(data[3 : 3 + ncuts]))
    stream = data[3 + ncuts :]
    caps = sorted(CAPABILITIES)
    settings = Settings(
        disabled=frozenset(caps[(capmask + i) % len(caps)] for i in range(capmask % 4)),
        tls_available=bool(flags & 0x08),
        any_login=bool(flags & 0x10),
        max_bad_commands=1 + (flags >> 5),
    )
    store = MailStore()
    store.add_user("alice", "secret", messages=[b"Subject: a\r\n\r\n.dot\r\n", b"x", b""])
    store.add_user("bob", "hunter2", tokens=["tok"])
    history = History()
    session = Session(store, settings, history=history)
    greeting = session.greeting()
    assert isinstance(greeting[0], Send)
    bounds = [0, *(c * len(stream) // 256 for c in cuts), len(stream)]
    closed = False
    for a, b in itertools.pairwise(bounds):
        session.receive_data(stream[a:b])
        while True:
            before = len(history)
            actions = session.next_actions()
            if actions is None:
                break
            if closed:
                raise AssertionError("a reply after Close")
            if len(history) != before + 1:
                raise AssertionError("a line not recorded exactly once in the history")
            record = history.commands[-1]
            sends = [x for x in actions if isinstance(x, Send)]
            if len(sends) != 1:
                raise AssertionError(f"not exactly one reply: {actions!r}")
            reply = b"".join(bytes(buf) for buf in sends[0].buffers)
            check_reply(reply, record.command, record.args, record.reply)
            if any(isinstance(x, StartTLS) for x in actions):
                session.tls_started()
            if any(isinstance(x, Close) for x in actions):
                closed = True
                if session.state is not State.CLOSED:
                    raise AssertionError("Close without the session closed")
    session.connection_lost()
    if store.mailbox("alice").locked:
        raise AssertionError("maildrop still locked after the connection ended")


def fuzz_with_atheris(argv: list[str]) -> None:
    import atheris  # type: ignore[import-untyped]

    with atheris.instrument_imports():
        import fakepop3.auth
        import fakepop3.protocol
        import fakepop3.store  # noqa: F401

    if not any(arg.startswith("-dict=") for arg in argv):
        handle, path = tempfile.mkstemp(prefix="pop3-", suffix=".dict")
        with os.fdopen(handle, "w") as file:
            file.writelines(f'"{word}"\n' for word in KEYWORDS)
        argv = [*argv, f"-dict={path}"]
    atheris.Setup([sys.argv[0], *argv], run_one)
    atheris.Fuzz()


def fuzz_with_hypothesis() -> int:
    print("atheris is not installed: running tests/test_fuzz.py with the thorough profile")
    env = dict(os.environ, HYPOTHESIS_PROFILE="thorough")
    command = [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", "tests/test_fuzz.py"]
    return subprocess.call(command, cwd=ROOT, env=env)


def main() -> int:
    argv = sys.argv[1:]
    if importlib.util.find_spec("atheris") is None:
        return fuzz_with_hypothesis()
    fuzz_with_atheris(argv)
    return 0


if __name__ == "__main__":
    sys.exit(main())
