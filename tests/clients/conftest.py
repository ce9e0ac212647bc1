"""Shared machinery for the real-client tests: find the client programs, run them, compare.

* :func:`require_program` finds a client program; a missing one skips the test with the
  reason, except in CI (``CI`` set), where it fails the test: CI never silently skips.
* :func:`run` runs a client with a bounded timeout and fails with its output and the server's
  transcript when it exits with an unexpected status.
* ``start_server`` starts thread-hosted :class:`fakepop3.POP3Server` instances holding
  :data:`MESSAGES` for ``alice``; errors inside a server fail the test.
* ``golden`` compares the command sequence a client sent (from the server's history) with a
  readable file in ``golden/``; ``FAKEPOP3_UPDATE_GOLDEN=1`` rewrites the files.
"""

from __future__ import annotations

import difflib
import os
import shutil
import subprocess
import sys
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server

GOLDEN_DIR = Path(__file__).parent / "golden"
USER = "alice"
PASSWORD = "secret"
#: Upper bound for one client run; a client normally needs well under a second.
CLIENT_TIMEOUT = 30.0

_BIG_BODY = b"".join(b"line %05d of a long body, with a dot after it.\r\n" % i for i in range(6000))

#: The maildrop every client reads.  Together they cover what clients get wrong: a line
#: starting with a dot and a line that is only a dot (byte-stuffing), CRLF and LF-only input,
#: 8-bit UTF-8, an encoded word, header lines longer than 78 characters, a "From " line in a
#: body, MIME parts, a Return-Path, and a message larger than one transport chunk.
MESSAGES: tuple[bytes, ...] = (
    (
        b"From: bob@example.com\r\nTo: alice@example.com\r\nSubject: Hello\r\n"
        b"Message-ID: <1@example.com>\r\n\r\n.dot at the start\r\nbody\r\n"
    ),
    b"From: carol@example.com\nTo: alice@example.com\nSubject: LF only\n\nstored with LF\n",
    b"Return-Path: <bounce@example.org>\r\n"
    b'From: "Zo\xc3\xab" <zoe@example.org>\r\n'
    b"To: alice@example.com\r\n"
    b"Subject: =?utf-8?q?caf=C3=A9?= and a rather long subject line that goes on past "
    b"seventy-eight characters\r\n"
    b"X-Long: " + b"x" * 120 + b"\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="BOUND"\r\n\r\n'
    b"preamble\r\n--BOUND\r\nContent-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: 8bit\r\n\r\n"
    b"H\xc3\xa9llo\r\n.\r\n..two dots\r\nFrom the start of a line\r\n"
    b"--BOUND\r\nContent-Type: application/octet-stream\r\n"
    b"Content-Transfer-Encoding: base64\r\n\r\nAAECAwQFBgcICQ==\r\n--BOUND--\r\n",
    b"From: dave@example.com\r\nTo: alice@example.com\r\nSubject: Big\r\n\r\n" + _BIG_BODY,
)


def to_lf(data: bytes) -> bytes:
    """``data`` with CRLF line ends turned into LF (what an MDA or a Maildir file holds)."""
    return data.replace(b"\r\n", b"\n")


# --- finding client programs -------------------------------------------------------------
def in_ci() -> bool:
    """True when the ``CI`` environment variable is set (and not to a false value)."""
    return os.environ.get("CI", "").strip().lower() not in ("", "0", "false", "no")


def find_program(name: str) -> str | None:
    """The path of program ``name``: beside this Python first (a venv's scripts), then PATH."""
    beside = Path(sys.executable).parent / name
    if beside.is_file() and os.access(beside, os.X_OK):
        return str(beside)
    return shutil.which(name)


def require_program(name: str, how: str) -> str:
    """Return the path of ``name``; skip the test if it is missing (fail it in CI).

    ``how`` says how to install it, for the skip or failure message.
    """
    path = find_program(name)
    if path is not None:
        return path
    reason = f"the POP3 client {name!r} is not installed ({how})"
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so a missing client fails instead of skipping")
    pytest.skip(reason)


@pytest.fixture(scope="session")
def curl() -> str:
    return require_program("curl", "run .ci/install-clients, or apt-get install curl")


@pytest.fixture(scope="session")
def fetchmail() -> str:
    return require_program("fetchmail", "run .ci/install-clients, or apt-get install fetchmail")


@pytest.fixture(scope="session")
def getmail() -> str:
    return require_program("getmail", "pip install -e '.[test]' (getmail6 is in the test extra)")


# --- running them ------------------------------------------------------------------------
def run(
    args: Sequence[str],
    server: POP3Server,
    *,
    expect: Sequence[int] = (0,),
    env: dict[str, str] | None = None,
    timeout: float = CLIENT_TIMEOUT,
) -> subprocess.CompletedProcess[bytes]:
    """Run a client program to completion; fail the test if its exit status is not expected."""
    result = subprocess.run(
        list(args),
        check=False,
        capture_output=True,
        env=env,
        timeout=timeout,
        stdin=subprocess.DEVNULL,
    )
    if result.returncode not in expect:
        settle(server)
        pytest.fail(
            f"{Path(args[0]).name} exited with status {result.returncode} (expected one of "
            f"{list(expect)})\ncommand: {list(args)}\n"
            f"--- stdout (end) ---\n{result.stdout[-3000:].decode(errors='replace')}\n"
            f"--- stderr (end) ---\n{result.stderr[-3000:].decode(errors='replace')}\n"
            f"--- server transcript ---\n{server.history.transcript()}",
            pytrace=False,
        )
    return result


def settle(server: POP3Server) -> None:
    """Wait until every session the server has seen so far has ended.

    A client process may exit before the server has processed its disconnect; every
    session is recorded when it connects, so this waits for exactly those.
    """
    server.wait_for_sessions(len(server.history.sessions))


def assert_all_ok(server: POP3Server, *, except_commands: Sequence[str] = ()) -> None:
    """Assert that every command got ``+OK`` (or a ``+`` continuation), except those named."""
    settle(server)
    bad = [c for c in server.history.commands if not c.ok and c.command not in except_commands]
    assert not bad, "commands that got -ERR:\n" + "\n".join(map(str, bad))


# --- servers -------------------------------------------------------------------------------
StartServer = Callable[..., POP3Server]


@pytest.fixture
def start_server() -> Iterator[StartServer]:
    """Start a thread-hosted server with :data:`MESSAGES` for alice (``tls=True`` adds TLS).

    Keyword arguments go to :class:`POP3Server`.  Every server is stopped after the test,
    and an exception inside one fails the test.
    """
    servers: list[POP3Server] = []

    def start(
        *, tls: bool = False, messages: Sequence[bytes] = MESSAGES, **kwargs: object
    ) -> POP3Server:
        server = POP3Server(
            users={USER: PASSWORD},
            tls=tls,
            tls_port=0 if tls else None,
            **kwargs,  # type: ignore[arg-type]
        )
        server.mailbox(USER).extend(messages)
        server.start()
        servers.append(server)
        return server

    yield start
    for server in servers:
        server.stop()
    for server in servers:
        server.raise_errors()


# --- golden command sequences ------------------------------------------------------------
#: One session for :func:`format_sessions`: how it ended, and (command line, under TLS) pairs.
SessionLines = tuple[str | None, list[tuple[str, bool]]]


def format_sessions(sessions: Sequence[SessionLines]) -> str:
    """Sessions as golden text: numbered from 1, one command a line, ``<TLS>`` where TLS began."""
    blocks = []
    for number, (end_reason, commands) in enumerate(sessions, 1):
        lines = [f"session {number} (ended by {end_reason})"]
        tls = False
        for line, under_tls in commands:
            if under_tls and not tls:
                lines.append("  <TLS>")  # first under TLS: after STLS, or the whole session
                tls = True
            lines.append(f"  {line}")
        blocks.append("\n".join(lines))
    return "\n\n".join(blocks) + "\n"


def command_sequence(server: POP3Server) -> str:
    """What the clients sent to ``server``, from ``server.history.command_lines()``."""
    settle(server)
    return format_sessions(
        [
            (
                session.end_reason,
                list(
                    zip(
                        server.history.command_lines(session=session.id),
                        [c.tls for c in session.commands],
                        strict=True,
                    )
                ),
            )
            for session in server.history.sessions
        ]
    )


class Golden:
    """Compares command sequences with ``golden/<name>.txt``."""

    update = os.environ.get("FAKEPOP3_UPDATE_GOLDEN", "") not in ("", "0")

    def check(self, name: str, server: POP3Server, title: str) -> None:
        """Compare what the clients sent to ``server`` with the golden file ``name``.

        ``title`` describes the scenario; it is written at the top of the file as comments
        (comment lines are not compared).
        """
        self.check_text(name, command_sequence(server), title)

    def check_text(self, name: str, actual: str, title: str) -> None:
        """Compare a sequence made by :func:`format_sessions` with the golden file ``name``."""
        path = GOLDEN_DIR / f"{name}.txt"
        if self.update:
            GOLDEN_DIR.mkdir(exist_ok=True)
            header = (
                f"# {title}\n"
                "# The command lines the client sent to fakepop3, one block per session, as\n"
                "# server.history.command_lines() records them (secrets masked as ***; SASL\n"
                "# responses show as 'SASL ***'). <TLS> marks where TLS starts.\n"
                "# Regenerate: FAKEPOP3_UPDATE_GOLDEN=1 python -m pytest tests/clients\n\n"
            )
            path.write_text(header + actual, encoding="utf-8")
            return
        if not path.exists():
            pytest.fail(
                f"no golden file {path.name} in tests/clients/golden; create it with "
                "FAKEPOP3_UPDATE_GOLDEN=1 python -m pytest tests/clients, then review it",
                pytrace=False,
            )
        expected = "".join(
            line
            for line in path.read_text(encoding="utf-8").splitlines(keepends=True)
            if not line.startswith("#")
        ).lstrip("\n")
        if actual != expected:
            diff = "".join(
                difflib.unified_diff(
                    expected.splitlines(keepends=True),
                    actual.splitlines(keepends=True),
                    f"golden/{path.name}",
                    "sent now",
                )
            )
            pytest.fail(
                f"the client's command sequence differs from golden/{path.name} (if the change "
                f"is intended, rerun with FAKEPOP3_UPDATE_GOLDEN=1 and review the diff):\n{diff}",
                pytrace=False,
            )


@pytest.fixture
def golden() -> Golden:
    return Golden()
