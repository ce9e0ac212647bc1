"""curl against the standalone program (``python -m fakepop3``), as a CI job in another
language would use it: start it in the background, read the ready file, run the client,
stop it with SIGTERM, keep the JSON-lines history.

Readiness is an event, not a wait: the program prints its banner and then writes the ready
file before its event loop runs again, so once the banner is read and one POP3 greeting has
arrived, the ready file is there.
"""

from __future__ import annotations

import json
import os
import selectors
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any, NoReturn

import pytest

from fakepop3.store import to_crlf

from .conftest import (
    CLIENT_TIMEOUT,
    MESSAGES,
    PASSWORD,
    USER,
    Golden,
    SessionLines,
    format_sessions,
)

STARTUP_TIMEOUT = 30.0


class Standalone:
    """A running ``python -m fakepop3`` and what it said when it became ready."""

    def __init__(self, proc: subprocess.Popen[bytes], ready_file: Path, history: Path) -> None:
        self.proc = proc
        self.ready_file = ready_file
        self.history = history
        self.banner: list[str] = []
        self.ready: dict[str, Any] = {}

    def wait_ready(self) -> None:
        """Read the banner (to its last line, ``pid N: ...``), then get one greeting."""
        assert self.proc.stdout is not None
        fd = self.proc.stdout.fileno()
        deadline = time.monotonic() + STARTUP_TIMEOUT
        received = b""
        with selectors.DefaultSelector() as selector:
            selector.register(fd, selectors.EVENT_READ)
            while not any(line.lstrip().startswith(b"pid ") for line in received.split(b"\n")):
                if not selector.select(timeout=max(0.0, deadline - time.monotonic())):
                    self.fail(f"no banner within {STARTUP_TIMEOUT}s", received)
                chunk = os.read(fd, 65536)
                if not chunk:
                    self.fail("the program exited before it was ready", received)
                received += chunk
        self.banner = received.decode().splitlines()
        port = int(self.banner[0].rsplit(":", 1)[1].split()[0])
        # A greeting means the event loop runs, which it does only after the ready file exists.
        with socket.create_connection(("127.0.0.1", port), timeout=CLIENT_TIMEOUT) as probe:
            assert probe.makefile("rb").readline().startswith(b"+OK ")
        self.ready = json.loads(self.ready_file.read_text())
        assert self.ready["port"] == port

    def stop(self) -> int:
        """SIGTERM, then wait for the exit status."""
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
        try:
            return self.proc.wait(timeout=STARTUP_TIMEOUT)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
            raise

    def fail(self, why: str, received: bytes = b"") -> NoReturn:
        self.proc.kill()
        out, err = self.proc.communicate()
        pytest.fail(
            f"python -m fakepop3: {why}\nstdout:\n{(received + out).decode(errors='replace')}\n"
            f"stderr:\n{err.decode(errors='replace')}",
            pytrace=False,
        )

    def sessions(self) -> list[SessionLines]:
        """The sessions in the JSON-lines history, in order of their first command."""
        commands: dict[int, list[tuple[str, bool]]] = {}
        ends: dict[int, str] = {}
        for line in self.history.read_text(encoding="utf-8").splitlines():
            event = json.loads(line)
            if event["event"] == "command":
                text = " ".join([event["command"], *event["args"]])
                commands.setdefault(event["session"], []).append((text, event["tls"]))
            elif event["event"] == "session_end":
                ends[event["session"]] = event["reason"]
        return [(ends.get(session), lines) for session, lines in commands.items()]


@pytest.fixture
def standalone(tmp_path: Path) -> Iterator[Standalone]:
    mail = tmp_path / "mail"
    mail.mkdir()
    for number, message in enumerate(MESSAGES, 1):
        (mail / f"{number:02d}.eml").write_bytes(message)
    ready_file, history = tmp_path / "ready.json", tmp_path / "history.jsonl"
    args = [
        sys.executable,
        "-m",
        "fakepop3",
        "--port",
        "0",
        "--tls-port",
        "0",
        "--user",
        f"{USER}:{PASSWORD}",
        "--load",
        f"{USER}={mail}",
        "--ca-out",
        str(tmp_path / "ca.pem"),
        "--history",
        str(history),
        "--ready-file",
        str(ready_file),
    ]
    proc = subprocess.Popen(
        args,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )
    server = Standalone(proc, ready_file, history)
    try:
        server.wait_ready()
        yield server
    finally:
        if server.proc.poll() is None:
            server.stop()
        assert server.proc.stdout is not None and server.proc.stderr is not None
        server.proc.stdout.close()
        server.proc.stderr.close()


def test_curl_against_the_standalone_program(
    curl: str, standalone: Standalone, golden: Golden
) -> None:
    ready = standalone.ready
    base = [curl, "--silent", "--show-error", "--max-time", "20", "--user", f"{USER}:{PASSWORD}"]
    tls = ["--cacert", ready["ca"]]

    def fetch(*args: str) -> bytes:
        result = subprocess.run(
            [*base, *args], check=False, capture_output=True, timeout=CLIENT_TIMEOUT
        )
        assert result.returncode == 0, result.stderr.decode(errors="replace")
        return result.stdout

    plain = f"pop3://localhost:{ready['port']}"
    secure = f"pop3s://localhost:{ready['tls_port']}"
    stored = [to_crlf(m) for m in MESSAGES]
    assert fetch(*tls, f"{secure}/3") == stored[2]
    assert fetch(*tls, "--ssl-reqd", f"{plain}/") == b"".join(
        b"%d %d\r\n" % (i, len(m)) for i, m in enumerate(stored, 1)
    )
    assert fetch(*tls, "--ssl-reqd", "-X", "DELE", "-I", f"{plain}/1") == b""
    assert fetch(*tls, f"{secure}/1") == stored[1]  # the next login: message 1 is gone

    assert standalone.stop() == 0
    assert not standalone.ready_file.exists()  # removed at exit
    golden.check_text(
        "standalone_curl",
        format_sessions(standalone.sessions()),
        "python -m fakepop3 --ready-file ...: curl pop3s:// RETR 3, --ssl-reqd LIST, "
        "--ssl-reqd -X DELE -I /1, pop3s:// RETR 1 (the readiness probe sends no command)",
    )
