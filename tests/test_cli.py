"""The standalone server (``python -m fakepop3``), driven as a CI job drives it.

Every test here starts the program as a real subprocess and talks to it with
``poplib``/``smtplib`` over real sockets.  Readiness is the ready file (polled
with a deadline: it is the event the program signals), never a sleep.  One
server is shared by the read-only tests of a module-scoped fixture; every test
that changes mail, resets or stops the server gets a process of its own.
"""

from __future__ import annotations

import hashlib
import io
import json
import mailbox
import poplib
import signal
import smtplib
import socket
import ssl
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest

from fakepop3.cli import _Progress, fill_mailboxes, main
from fakepop3.config import KNOWN_KEYS, Options
from fakepop3.generate import generate_messages
from fakepop3.protocol import CAPABILITIES
from fakepop3.server import POP3Server
from fakepop3.store import to_crlf

#: The longest a test waits for the program to signal something (a deadline, not a sleep).
DEADLINE = 15.0

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the standalone server's signals (SIGHUP) are POSIX"
)


# --- helpers ------------------------------------------------------------------------------
def wait_until(what: str, condition: Callable[[], Any], proc: subprocess.Popen[bytes]) -> Any:
    """Poll ``condition`` until it returns a true value; fail at the deadline or if proc exits."""
    deadline = time.monotonic() + DEADLINE
    while True:
        value = condition()
        if value:
            return value
        if proc.poll() is not None:
            raise AssertionError(f"fakepop3 exited ({proc.returncode}) while waiting for {what}")
        if time.monotonic() > deadline:
            raise AssertionError(f"fakepop3 did not produce {what} within {DEADLINE}s")
        time.sleep(0.01)  # a poll interval: the condition decides, not the time


def read_json(path: Path) -> dict[str, Any] | None:
    try:
        data: dict[str, Any] = json.loads(path.read_text("utf-8"))
    except FileNotFoundError:
        return None
    return data


def history_lines(path: Path) -> list[dict[str, Any]]:
    text = path.read_text("utf-8")
    # The program flushes whole lines; a line being written has no newline yet.
    return [json.loads(line) for line in text.splitlines(keepends=True) if line.endswith("\n")]


@dataclass
class Standalone:
    """A running ``python -m fakepop3`` and its files."""

    proc: subprocess.Popen[bytes]
    dir: Path
    ready: dict[str, Any]
    history_file: Path
    ready_file: Path
    stdout_file: Path
    stderr_file: Path
    args: list[str] = field(default_factory=list)

    @property
    def host(self) -> str:
        return str(self.ready["host"])

    @property
    def port(self) -> int:
        return int(self.ready["port"])

    def history(self) -> list[dict[str, Any]]:
        return history_lines(self.history_file)

    def wait_for_event(self, **match: Any) -> list[dict[str, Any]]:
        """Wait until the history file has a line with these fields; return every line."""

        def found() -> list[dict[str, Any]] | None:
            lines = self.history()
            hit = any(all(line.get(k) == v for k, v in match.items()) for line in lines)
            return lines if hit else None

        lines: list[dict[str, Any]] = wait_until(f"a history line {match}", found, self.proc)
        return lines

    def wait_for_resets(self, count: int) -> dict[str, Any]:
        """Wait until the ready file says ``count`` resets are done; return its content."""

        def done() -> dict[str, Any] | None:
            ready = read_json(self.ready_file)
            return ready if ready is not None and ready["resets"] == count else None

        ready: dict[str, Any] = wait_until(f"reset {count} in the ready file", done, self.proc)
        return ready

    def wait_for_session_end(self, session: int) -> list[dict[str, Any]]:
        return self.wait_for_event(event="session_end", session=session)

    def client(self, user: str, password: str) -> poplib.POP3:
        client = poplib.POP3(self.host, self.port, timeout=DEADLINE)
        assert client.user(user).startswith(b"+OK")
        assert client.pass_(password).startswith(b"+OK")
        return client

    def signal(self, sig: int) -> None:
        self.proc.send_signal(sig)

    def stop(self) -> int:
        """SIGTERM, and the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(DEADLINE)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise AssertionError(
                "fakepop3 did not stop within the deadline after SIGTERM"
            ) from None

    def output(self) -> tuple[str, str]:
        return self.stdout_file.read_text("utf-8"), self.stderr_file.read_text("utf-8")


def command(*args: str) -> list[str]:
    return [sys.executable, "-m", "fakepop3", *args]


def start(directory: Path, *args: str) -> Standalone:
    """Start the program with ``--port 0``, a history and a ready file; wait until it is ready."""
    directory.mkdir(parents=True, exist_ok=True)
    ready_file = directory / "ready.json"
    history_file = directory / "history.jsonl"
    stdout_file, stderr_file = directory / "stdout.txt", directory / "stderr.txt"
    argv = command(
        "--port", "0", "--history", str(history_file), "--ready-file", str(ready_file), *args
    )
    with stdout_file.open("wb") as out, stderr_file.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=out, stderr=err, cwd=directory)
    try:
        ready = wait_until("the ready file", lambda: read_json(ready_file), proc)
    except AssertionError:
        proc.kill()
        proc.wait()
        raise AssertionError(
            f"fakepop3 did not get ready; stderr:\n{stderr_file.read_text('utf-8')}"
        ) from None
    return Standalone(
        proc, directory, ready, history_file, ready_file, stdout_file, stderr_file, argv
    )


@pytest.fixture
def launch(tmp_path: Path) -> Iterator[Callable[..., Standalone]]:
    """Start programs for one test; any still running at its end is stopped (and must exit 0)."""
    started: list[Standalone] = []

    def launch(*args: str) -> Standalone:
        app = start(tmp_path / f"run{len(started)}", *args)
        started.append(app)
        return app

    yield launch
    for app in started:
        if app.proc.poll() is None:
            assert app.stop() == 0
        _, err = app.output()
        assert "Traceback" not in err, err


def write_mbox(path: Path, messages: list[bytes]) -> None:
    box = mailbox.mbox(path, create=True)
    try:
        for message in messages:
            box.add(message)
    finally:
        box.close()


BOB_MAIL = [
    b"From: carol@example.org\nTo: bob@example.org\nSubject: first\n\nHello Bob.\n",
    b"From: dave@example.org\nTo: bob@example.org\nSubject: second\n\n.a dot line\nbye\n",
]
ALICE_PASSWORD = "se:cr:et"  # colons in the password are part of it


# --- one shared server for the tests that only read ---------------------------------------
@pytest.fixture(scope="module")
def shared(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Standalone]:
    directory = tmp_path_factory.mktemp("standalone")
    mbox = directory / "bob.mbox"
    write_mbox(mbox, BOB_MAIL)
    app = start(
        directory,
        "--user", f"alice:{ALICE_PASSWORD}",
        "--user", "bob:hunter2",
        "--user", "carol:pw",
        "--generate", "alice=5",
        "--seed", "7",
        "--load", f"bob={mbox}",
        "--tls-port", "0",
        "--ca-out", str(directory / "ca.pem"),
        "--smtp-port", "0",
    )  # fmt: skip
    yield app
    assert app.stop() == 0
    _, err = app.output()
    assert "Traceback" not in err, err


def test_ready_file_says_where_it_listens(shared: Standalone) -> None:
    ready = shared.ready
    assert set(ready) == {
        "host", "port", "tls_port", "smtp_port", "control_port", "ca", "pid", "resets"
    }  # fmt: skip
    assert ready["control_port"] is None  # no --control-port
    assert ready["host"] == "127.0.0.1"
    assert ready["pid"] == shared.proc.pid
    assert ready["resets"] == 0
    assert ready["ca"] == str((shared.dir / "ca.pem").resolve())
    for key in ("port", "tls_port", "smtp_port"):
        assert isinstance(ready[key], int) and ready[key] > 0, key
        with socket.create_connection((ready["host"], ready[key]), timeout=DEADLINE):
            pass


def test_banner_lists_addresses_users_and_message_counts(shared: Standalone) -> None:
    out, err = shared.output()
    assert f"listening on 127.0.0.1:{shared.port} (POP3, STLS offered)" in out
    assert f"implicit TLS on 127.0.0.1:{shared.ready['tls_port']}" in out
    assert f"SMTP intake on 127.0.0.1:{shared.ready['smtp_port']}" in out
    assert f"CA certificate: {shared.ready['ca']}" in out
    assert "users: alice (5 messages), bob (2 messages), carol (0 messages)" in out
    assert ALICE_PASSWORD not in out and "hunter2" not in out
    assert err == ""


def test_poplib_session_gets_the_generated_mail(shared: Standalone) -> None:
    expected = generate_messages(5, seed=7)
    client = shared.client("alice", ALICE_PASSWORD)
    assert client.stat() == (5, sum(len(to_crlf(m)) for m in expected))
    _, lines, _ = client.retr(3)
    assert b"\r\n".join(lines) + b"\r\n" == to_crlf(expected[2])
    client.quit()


def test_history_file_records_every_command_as_it_happens(shared: Standalone) -> None:
    client = shared.client("alice", ALICE_PASSWORD)
    client.stat()
    client.list(2)
    # The STAT line is in the file while the session is still open: written as it happens.
    lines = shared.wait_for_event(event="command", command="LIST", args=["2"], user="alice")
    session = next(line["session"] for line in lines if line.get("command") == "LIST")
    client.quit()
    lines = shared.wait_for_session_end(session)
    mine = [line for line in lines if line.get("session") == session]
    assert [(c["command"], c["args"]) for c in mine if c["event"] == "command"] == [
        ("USER", ["alice"]),
        ("PASS", ["***"]),
        ("STAT", []),
        ("LIST", ["2"]),
        ("QUIT", []),
    ]
    assert all(c["ok"] and c["reply"].startswith("+OK") for c in mine if c["event"] == "command")
    end = mine[-1]
    assert end["event"] == "session_end"
    assert (end["user"], end["reason"], end["commands"]) == ("alice", "quit", 5)
    assert lines[0]["event"] == "start" and lines[0]["port"] == shared.port
    text = shared.history_file.read_text("utf-8")
    assert ALICE_PASSWORD not in text, "the history must mask passwords"


def test_lint_findings_are_in_the_history_file(launch: Callable[..., Standalone]) -> None:
    app = launch("--user", "alice:secret", "--lint", "--disable", "PIPELINING")
    with socket.create_connection((app.host, app.port), timeout=DEADLINE) as sock:
        reader = sock.makefile("rb")
        assert reader.readline().startswith(b"+OK")
        sock.sendall(b"USER alice\nPASS secret\r\nQUIT\r\n")  # LF alone, then pipelined
        assert [reader.readline()[:3] for _ in range(3)] == [b"+OK"] * 3
    lines = app.wait_for_event(event="session_end", reason="quit")
    commands = {line["command"]: line["lint"] for line in lines if line["event"] == "command"}
    assert [f["rule"] for f in commands["USER"]] == ["bare-lf"]
    assert [f["rule"] for f in commands["PASS"]] == ["pipelining"]
    assert [f["rule"] for f in commands["QUIT"]] == ["pipelining"]
    assert lines[-1]["lint"] == []
    _, err = app.output()
    assert "[bare-lf] session 1, USER alice" in err  # the findings are reported on stderr too


def test_wrong_password_is_refused(shared: Standalone) -> None:
    client = poplib.POP3(shared.host, shared.port, timeout=DEADLINE)
    client.user("alice")
    with pytest.raises(poplib.error_proto, match=r"-ERR \[AUTH\]"):
        client.pass_("se")  # the part before the first colon is not the password
    client.quit()


def test_load_puts_the_mbox_into_the_maildrop(shared: Standalone) -> None:
    client = shared.client("bob", "hunter2")
    assert client.stat()[0] == 2
    for number, raw in enumerate(BOB_MAIL, 1):
        _, lines, _ = client.retr(number)
        assert b"\r\n".join(lines) + b"\r\n" == to_crlf(raw)
    client.quit()


def test_implicit_tls_with_the_written_ca(shared: Standalone) -> None:
    context = ssl.create_default_context(cafile=shared.ready["ca"])
    client = poplib.POP3_SSL("localhost", shared.ready["tls_port"], context=context)
    client.user("bob")
    client.pass_("hunter2")
    assert client.stat()[0] == 2
    client.quit()
    lines = shared.wait_for_event(event="command", command="STAT", user="bob", tls=True)
    assert any(line.get("command") == "PASS" and line["tls"] for line in lines)


def test_stls_on_the_plain_port_with_the_written_ca(shared: Standalone) -> None:
    client = poplib.POP3("localhost", shared.port, timeout=DEADLINE)
    assert "STLS" in client.capa()
    client.stls(ssl.create_default_context(cafile=shared.ready["ca"]))
    client.user("bob")
    assert client.pass_("hunter2").startswith(b"+OK")
    client.quit()


def test_the_ca_file_does_not_trust_another_server(shared: Standalone) -> None:
    with POP3Server(tls=True, tls_port=0) as other:  # its own, different test CA
        context = ssl.create_default_context(cafile=shared.ready["ca"])
        with pytest.raises(ssl.SSLCertVerificationError):
            assert other.tls_port is not None
            poplib.POP3_SSL("localhost", other.tls_port, context=context, timeout=DEADLINE)


def test_smtp_intake_then_retr(shared: Standalone) -> None:
    message = (
        b"From: app@example.com\r\nTo: carol@example.net\r\nSubject: welcome\r\n\r\n"
        b"Hi Carol,\r\n.this line starts with a dot\r\n"
    )
    with smtplib.SMTP(shared.host, shared.ready["smtp_port"], timeout=DEADLINE) as smtp:
        refused = smtp.sendmail("app@example.com", ["carol@example.net"], message)
        assert refused == {}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as info:
            smtp.sendmail("app@example.com", ["nobody@example.net"], message)
        assert info.value.recipients["nobody@example.net"][0] == 550
    lines = shared.wait_for_event(event="smtp", users=["carol"])
    delivery = next(line for line in lines if line["event"] == "smtp")
    assert delivery["mail_from"] == "app@example.com" and delivery["size"] == len(message)
    client = shared.client("carol", "pw")
    assert client.stat() == (1, len(message))
    _, body, _ = client.retr(1)
    assert b"\r\n".join(body) + b"\r\n" == message
    client.quit()


# --- signals ------------------------------------------------------------------------------
def test_sighup_resets_the_maildrops_and_the_history(
    launch: Callable[..., Standalone], tmp_path: Path
) -> None:
    mbox = tmp_path / "alice.mbox"
    write_mbox(mbox, [*BOB_MAIL, b"Subject: third\n\nthree\n"])
    app = launch("--user", "alice:pw", "--load", f"alice={mbox}")
    client = app.client("alice", "pw")
    uids = [line.split()[1] for line in client.uidl()[1]]
    client.dele(1)
    client.dele(2)
    client.quit()
    app.wait_for_session_end(1)
    client = app.client("alice", "pw")
    assert client.stat()[0] == 1
    client.quit()

    app.signal(signal.SIGHUP)
    ready = app.wait_for_resets(1)
    assert ready["port"] == app.port  # same server, not a restart
    lines = app.wait_for_event(event="reset", resets=1)
    assert [line["event"] for line in lines][-1] == "reset"

    client = app.client("alice", "pw")
    assert [line.split()[1] for line in client.uidl()[1]] == uids
    client.quit()
    lines = app.history()
    after = lines[[line["event"] for line in lines].index("reset") + 1 :]
    assert [line.get("command") for line in after if line["event"] == "command"] == [
        "USER",
        "PASS",
        "UIDL",
        "QUIT",
    ]
    out, _ = app.output()
    assert "reset #1" in out


@pytest.mark.parametrize("sig", [signal.SIGTERM, signal.SIGINT], ids=["SIGTERM", "SIGINT"])
def test_sigterm_and_sigint_stop_cleanly_with_exit_0(
    launch: Callable[..., Standalone], sig: signal.Signals, tmp_path: Path
) -> None:
    mbox = tmp_path / "alice.mbox"
    write_mbox(mbox, BOB_MAIL)
    app = launch("--user", "alice:pw", "--load", f"alice={mbox}")
    client = app.client("alice", "pw")  # a session still open at the stop
    client.dele(1)
    app.signal(sig)
    assert app.proc.wait(DEADLINE) == 0
    out, err = app.output()
    assert err == ""
    assert out.endswith("fakepop3: stopped\n")
    assert not app.ready_file.exists(), "a stale ready file would look ready to the next job"
    lines = app.history()
    assert lines[-1]["event"] == "stop"
    ends = [line for line in lines if line["event"] == "session_end"]
    assert [(e["user"], e["reason"]) for e in ends] == [("alice", "server")]
    client.close()


# --- the config file ----------------------------------------------------------------------
def test_config_file_with_capabilities_and_faults_and_flags_win(
    launch: Callable[..., Standalone], tmp_path: Path
) -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        write_mbox(tmp_path / "alice.mbox", BOB_MAIL)
        config = tmp_path / "fakepop3.toml"
        config.write_text(
            f"""
port = {busy.getsockname()[1]}   # in use: the --port 0 flag must win
disable = ["UIDL"]
mechanisms = ["PLAIN"]

[users]
alice = "from-config"

[load]
alice = "alice.mbox"

[[faults]]
command = "RETR"
nth = 1
action = "error"
text = "Try later"
code = "SYS/TEMP"
""",
            "utf-8",
        )
        app = launch("--config", str(config), "--user", "bob:from-flag")
    client = app.client("alice", "from-config")
    capabilities = client.capa()
    assert "UIDL" not in capabilities
    assert capabilities["SASL"] == ["PLAIN"]
    with pytest.raises(poplib.error_proto, match=r"-ERR \[SYS/TEMP\] Try later"):
        client.retr(1)
    _, lines, _ = client.retr(1)  # the fault fired once
    assert b"\r\n".join(lines) + b"\r\n" == to_crlf(BOB_MAIL[0])
    client.quit()
    app.client("bob", "from-flag").quit()
    faulted = app.wait_for_event(event="command", command="RETR", ok=False)
    assert any(line.get("fault") for line in faulted if line.get("command") == "RETR")


def test_config_paths_are_relative_to_the_config_file(
    launch: Callable[..., Standalone], tmp_path: Path
) -> None:
    folder = tmp_path / "ci"
    (folder / "mail").mkdir(parents=True)
    (folder / "mail" / "1.eml").write_bytes(b"Subject: one\r\n\r\nfirst\r\n")
    (folder / "mail" / "2.eml").write_bytes(b"Subject: two\r\n\r\nsecond\r\n")
    config = folder / "fakepop3.toml"
    config.write_text('any_login = true\nca_out = "ca.pem"\n\n[load]\nbob = "mail"\n', "utf-8")
    app = launch("--config", str(config))
    assert app.ready["ca"] == str((folder / "ca.pem").resolve())
    assert (folder / "ca.pem").read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")
    client = app.client("bob", "anything")
    assert client.stat()[0] == 2
    assert client.retr(2)[1] == [b"Subject: two", b"", b"second"]
    client.quit()


# --- bad options: one line on stderr, exit 2 ------------------------------------------------
def _busy_port() -> tuple[socket.socket, int]:
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen()
    return sock, sock.getsockname()[1]


KNOWN = ", ".join(sorted(KNOWN_KEYS))
CAPAS = ", ".join(sorted(CAPABILITIES))
PORT_RANGE = "must be an integer from 0 to 65535 (0 picks a free port)"

#: (id, arguments, config file text or None, the exact stderr line after "fakepop3: error: ").
#: "{config}" and "{busy}" are filled in.
BAD: list[tuple[str, list[str], str | None, str]] = [
    ("port-too-big", ["--port", "99999"], None, f"--port {PORT_RANGE}, not 99999"),
    ("port-not-a-number", ["--port", "pop"], None, f"--port {PORT_RANGE}, not 'pop'"),
    ("tls-port-negative", ["--tls-port", "-1"], None, f"--tls-port {PORT_RANGE}, not -1"),
    ("smtp-port-too-big", ["--smtp-port", "65536"], None, f"--smtp-port {PORT_RANGE}, not 65536"),
    (
        "user-without-colon",
        ["--user", "alice"],
        None,
        "--user 'alice': expected NAME:PASSWORD with both parts non-empty, e.g. alice:secret",
    ),
    (
        "user-without-password",
        ["--user", "alice:"],
        None,
        "--user 'alice:': expected NAME:PASSWORD with both parts non-empty, e.g. alice:secret",
    ),
    (
        "user-without-name",
        ["--user", ":secret"],
        None,
        "--user ':secret': expected NAME:PASSWORD with both parts non-empty, e.g. alice:secret",
    ),
    (
        "load-missing-file",
        ["--user", "a:b", "--load", "a=missing.mbox"],
        None,
        "--load a=missing.mbox: no such file or folder",
    ),
    (
        "load-without-path",
        ["--load", "alice"],
        None,
        "--load 'alice': expected NAME=PATH with both parts non-empty",
    ),
    (
        "generate-bad-count",
        ["--user", "a:b", "--generate", "a=lots"],
        None,
        "--generate 'a=lots': COUNT must be a whole number, 0 or more",
    ),
    (
        "generate-for-unknown-user",
        ["--generate", "bob=3"],
        None,
        (
            "mail for 'bob' but no such user: add --user bob:PASSWORD (or [users] in the config), "
            "or --any-login"
        ),
    ),
    ("seed-not-a-number", ["--seed", "x"], None, "--seed must be a whole number, not 'x'"),
    (
        "unknown-locale",
        ["--any-login", "--generate", "a=1", "--locale", "xx_YY"],
        None,
        "--locale 'xx_YY': Invalid configuration for faker locale `xx_YY`",
    ),
    (
        "cert-without-key",
        ["--cert", "c.pem"],
        None,
        "--cert and --key go together: give both, or neither for a test CA",
    ),
    (
        "unknown-capability",
        ["--disable", "FROB"],
        None,
        f"unknown capability to disable: FROB; known: {CAPAS}",
    ),
    (
        "unknown-flag",
        ["--frobnicate"],
        None,
        "unrecognized arguments: --frobnicate (see fakepop3 --help)",
    ),
    (
        "abbreviated-flag",
        ["--po", "0"],
        None,
        "unrecognized arguments: --po 0 (see fakepop3 --help)",
    ),
    ("missing-config", ["--config", "nope.toml"], None, "--config nope.toml: no such file"),
    (
        "config-unknown-key",
        [],
        "prot = 1110\n",
        f"config {{config}}: unknown key 'prot' (did you mean 'port'?); known keys: {KNOWN}",
    ),
    (
        "config-bad-type",
        [],
        'port = "1110"\n',
        f"config {{config}}: port {PORT_RANGE}, not '1110'",
    ),
    ("config-bad-port", [], "port = 70000\n", f"config {{config}}: port {PORT_RANGE}, not 70000"),
    (
        "config-bad-toml",
        [],
        "port = \n",
        "config {config}: not valid TOML: Invalid value (at line 1, column 8)",
    ),
    (
        "config-bad-users",
        [],
        "users = ['alice:pw']\n",
        "config {config}: users must be a table, e.g. [users]",
    ),
    (
        "port-in-use",
        ["--port", "{busy}"],
        None,
        "cannot listen on 127.0.0.1:{busy}: Address already in use",
    ),
    (
        "tls-port-in-use",
        ["--tls-port", "{busy}"],
        None,
        "cannot listen on 127.0.0.1:{busy}: Address already in use",
    ),
    (
        "smtp-port-in-use",
        ["--smtp-port", "{busy}"],
        None,
        "SMTP intake cannot listen on 127.0.0.1:{busy}: Address already in use",
    ),
    (
        "control-port-in-use",
        ["--control-port", "{busy}"],
        None,
        "cannot listen on 127.0.0.1:{busy} for the control API: Address already in use",
    ),
    (
        "control-off-loopback-without-token",
        ["--control-port", "0", "--control-host", "0.0.0.0"],
        None,
        "the control API would listen on 0.0.0.0, which is not loopback, without a token: "
        "anyone who reaches it could read the test mail and change the server; give a control "
        "token (control_token=, --control-token or FAKEPOP3_CONTROL_TOKEN) or a loopback "
        "control host (--control-host 127.0.0.1)",
    ),
    (
        "control-token-with-a-space",
        ["--control-port", "0", "--control-token", "two words"],
        None,
        "--control-token must be a token of printable ASCII characters without spaces "
        "(got 9 characters, with a space or another character not allowed)",
    ),
    (
        "greeting-two-lines",
        ["--greeting", "a\nb"],
        None,
        "--greeting must be one line of text (1 to 200 characters, no CR, LF or NUL), not 'a\\nb'",
    ),
]


def _bad_case(name: str, directory: Path, busy: int) -> tuple[list[str], str]:
    """The arguments of case ``name`` (config file written in ``directory``) and its message."""
    _, args, config_text, message = next(case for case in BAD if case[0] == name)
    config = directory / "fakepop3.toml"
    argv = [a.replace("{busy}", str(busy)) for a in args]
    if config_text is not None:
        config.write_text(config_text, "utf-8")
        argv = ["--config", str(config), *argv]
    if not any(a in ("--port", "--po") for a in argv):
        argv = ["--port", "0", *argv]
    return argv, message.replace("{busy}", str(busy)).replace("{config}", str(config))


@pytest.mark.parametrize("name", [case[0] for case in BAD])
def test_bad_option_prints_one_line_and_exits_2(
    name: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """Every bad-option path, through the program's ``main`` (the subprocess test below
    runs the ones the issue names as a real program)."""
    monkeypatch.chdir(tmp_path)
    busy, port = _busy_port()
    with busy:
        argv, expected = _bad_case(name, tmp_path, port)
        status = main(argv)
    out, err = capsys.readouterr()
    assert err == f"fakepop3: error: {expected}\n"
    assert status == 2
    assert out == ""


#: The bad options the issue names, run as the real program.
AS_PROGRAM = [
    "config-unknown-key",
    "port-too-big",
    "load-missing-file",
    "user-without-colon",
    "port-in-use",
    "tls-port-in-use",
    "unknown-flag",
    "control-off-loopback-without-token",
]


@dataclass
class BadRun:
    returncode: int
    stdout: str
    stderr: str
    expected: str


@pytest.fixture(scope="module")
def bad_runs(tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict[str, BadRun]]:
    """The :data:`AS_PROGRAM` cases, run as subprocesses all at once."""
    busy, port = _busy_port()
    running = []
    for name in AS_PROGRAM:
        directory = tmp_path_factory.mktemp(name)
        argv, expected = _bad_case(name, directory, port)
        proc = subprocess.Popen(
            command(*argv), cwd=directory, stdout=subprocess.PIPE, stderr=subprocess.PIPE
        )
        running.append((name, proc, expected))
    results = {}
    try:
        for name, proc, expected in running:
            out, err = proc.communicate(timeout=DEADLINE * 2)
            results[name] = BadRun(proc.returncode, out.decode(), err.decode(), expected)
        yield results
    finally:
        for _, proc, _ in running:
            if proc.poll() is None:
                proc.kill()
                proc.wait()
        busy.close()


@pytest.mark.parametrize("name", AS_PROGRAM)
def test_bad_option_as_a_program_prints_one_line_and_exits_2(
    bad_runs: dict[str, BadRun], name: str
) -> None:
    run = bad_runs[name]
    assert run.stderr == f"fakepop3: error: {run.expected}\n"
    assert run.returncode == 2
    assert run.stdout == ""


def test_help_reads_well() -> None:
    result = subprocess.run(
        command("--help"), capture_output=True, text=True, timeout=DEADLINE, check=False
    )
    assert result.returncode == 0
    options = "--port --tls-port --ca-out --any-login --seed --locale --smtp-port --cert --key"
    for option in [
        *options.split(),
        "--user NAME:PASSWORD",
        "--load NAME=PATH",
        "--generate NAME=COUNT",
        "--history FILE",
        "--ready-file FILE",
        "--config FILE",
    ]:
        assert option in result.stdout, option
    assert "SIGHUP" in result.stdout and "status 2" in result.stdout


def test_console_script_is_main() -> None:
    (script,) = [ep for ep in entry_points(group="console_scripts") if ep.name == "fakepop3"]
    assert script.value == "fakepop3.cli:main"
    assert script.load() is main


# --- progress on a terminal (pure code) -----------------------------------------------------
class _Terminal(io.StringIO):
    def __init__(self, tty: bool) -> None:
        super().__init__()
        self.tty = tty

    def isatty(self) -> bool:
        return self.tty


@pytest.mark.parametrize("tty", [True, False], ids=["terminal", "pipe"])
def test_progress_shows_only_on_a_terminal(tmp_path: Path, tty: bool) -> None:
    mbox = tmp_path / "in.mbox"
    write_mbox(mbox, BOB_MAIL)
    opts = Options(users={"alice": "pw"}, load=[("alice", mbox)], generate=[("alice", 3)])
    server = POP3Server(opts.users)
    stream = _Terminal(tty)
    fill_mailboxes(server, opts, _Progress(stream))
    assert len(server.mailbox("alice")) == 5
    shown = stream.getvalue()
    if tty:
        assert f"loading {mbox} into alice (1/1)" in shown
        assert "generating 3 messages for alice (1/1)" in shown
        assert shown.endswith("\r\x1b[K"), "the progress line is cleared at the end"
    else:
        assert shown == ""


# --- user story 2: an importer in another language, tested in CI -----------------------------
def test_user_story_2_ci_job_with_resets_between_test_cases(
    launch: Callable[..., Standalone], tmp_path: Path
) -> None:
    """50 generated messages (fixed seed), ready file, test cases with a reset between,
    and the JSON-lines history kept as the build artifact of a failing case."""
    app = launch("--user", "importer:pw", "--generate", "importer=50", "--seed", "1234")
    expected = [hashlib.sha256(to_crlf(m)).hexdigest() for m in generate_messages(50, seed=1234)]

    def import_everything() -> list[str]:
        """What the importer does: fetch every message, delete it, QUIT."""
        client = app.client("importer", "pw")
        count, _ = client.stat()
        digests = []
        for number in range(1, count + 1):
            _, lines, _ = client.retr(number)
            digests.append(hashlib.sha256(b"\r\n".join(lines) + b"\r\n").hexdigest())
            client.dele(number)
        client.quit()
        return digests

    assert import_everything() == expected  # test case 1: the same mail on every machine
    check = app.client("importer", "pw")
    assert check.stat()[0] == 0  # the import deleted everything
    check.quit()
    for resets in (1, 2):  # between test cases: reset, without restarting
        app.signal(signal.SIGHUP)
        app.wait_for_resets(resets)
        assert import_everything() == expected

    # The CI job keeps the history as the artifact of a failing test case.
    wait_until(
        "the end of 4 sessions",
        lambda: sum(line["event"] == "session_end" for line in app.history()) == 4,
        app.proc,
    )
    assert app.stop() == 0
    artifact = tmp_path / "artifacts" / "pop3-history.jsonl"
    artifact.parent.mkdir()
    artifact.write_bytes(app.history_file.read_bytes())
    lines = history_lines(artifact)
    cases: list[list[dict[str, Any]]] = [[]]
    for line in lines:
        if line["event"] == "reset":
            cases.append([])
        elif line["event"] == "command":
            cases[-1].append(line)
    assert len(cases) == 3
    for case in cases:
        retrieved = [c["args"] for c in case if c["command"] == "RETR"]
        deleted = [c["args"] for c in case if c["command"] == "DELE"]
        assert retrieved == deleted == [[str(n)] for n in range(1, 51)]
        assert case[-1]["command"] == "QUIT" and case[-1]["user"] == "importer"
    assert lines[-1]["event"] == "stop"


def test_the_config_example_in_the_docs_is_valid(tmp_path: Path) -> None:
    """The TOML example in ``fakepop3.config``'s docstring is accepted as it is written."""
    import fakepop3.config
    from fakepop3.cli import make_server
    from fakepop3.config import load_config

    doc = fakepop3.config.__doc__
    assert doc is not None
    block = doc[doc.index("    host =") :].split('\n"""')[0]
    config = tmp_path / "fakepop3.toml"
    config.write_text("\n".join(line[4:] for line in block.splitlines()), "utf-8")
    values = load_config(config)
    assert values["port"] == 1110 and values["users"] == {"alice": "secret"}
    assert values["load"] == [("alice", tmp_path / "fixtures/alice.mbox")]
    assert values["history"] == str(tmp_path / "pop3-history.jsonl")
    opts = Options()
    opts.apply(values)
    server = make_server(opts)
    assert server.settings.disabled == {"UIDL"}
    assert server.settings.mechanisms == ("PLAIN", "XOAUTH2")
    assert server.tls is not None and server.tls_port == 1995


# --- options the schema brought to the program (issue 16) ------------------------------------
def test_token_flag_serves_an_xoauth2_login_over_a_real_socket(
    launch: Callable[..., Standalone],
) -> None:
    """``--token NAME=TOKEN`` gives a user an OAuth token: XOAUTH2 logs in with it; a token-only
    user (no ``--user``) exists too, and the new limits reach the server."""
    import base64

    app = launch(
        "--user", "alice:secret",
        "--token", "alice=tok-a",
        "--token", "bob=tok-b",
        "--generate", "bob=2",
        "--command-timeout", "30",
        "--max-connections", "5",
        "--max-bad-commands", "3",
    )  # fmt: skip
    for user, token in (("alice", "tok-a"), ("bob", "tok-b")):
        client = poplib.POP3(app.host, app.port, timeout=DEADLINE)
        try:
            sasl = f"user={user}\x01auth=Bearer {token}\x01\x01".encode()
            reply = client._shortcmd("AUTH XOAUTH2 " + base64.b64encode(sasl).decode())
            assert reply.startswith(b"+OK"), reply
            assert client.stat()[0] == (2 if user == "bob" else 0)
            client.quit()
        finally:
            client.close()
    client = poplib.POP3(app.host, app.port, timeout=DEADLINE)
    try:
        sasl = b"user=alice\x01auth=Bearer wrong\x01\x01"
        # A wrong token: an error challenge ("+ " and base64 JSON), then -ERR to the empty reply.
        reply = client._shortcmd("AUTH XOAUTH2 " + base64.b64encode(sasl).decode())
        assert reply.startswith(b"+ "), reply
        with pytest.raises(poplib.error_proto, match=r"-ERR"):
            client._shortcmd("")
    finally:
        client.close()


def test_environment_sets_options_and_flags_win(tmp_path: Path) -> None:
    """``FAKEPOP3_*`` variables, between the config file and the flags."""
    from fakepop3.cli import options_from

    config = tmp_path / "fakepop3.toml"
    config.write_text("port = 1\ncommand_timeout = 5\n[users.bob]\ntokens = ['t']\n", "utf-8")
    env = {
        "FAKEPOP3_CONFIG": str(config),
        "FAKEPOP3_PORT": "2",
        "FAKEPOP3_USERS": "alice:secret,carol:pw",
        "FAKEPOP3_TOKENS": "alice=tok",
    }
    opts = options_from(["--port", "3"], environ=env)
    assert opts.port == 3 and opts.command_timeout == 5
    assert opts.users == {"bob": None, "alice": "secret", "carol": "pw"}
    assert opts.tokens == {"bob": ["t"], "alice": ["tok"]}
    assert options_from([], environ=env).port == 2
    with pytest.raises(ValueError, match=r"^FAKEPOP3_PORT must be an integer from 0 to 65535"):
        options_from([], environ={"FAKEPOP3_PORT": "x"})
