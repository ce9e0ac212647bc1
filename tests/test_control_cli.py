"""The standalone program's control port and ``fakepop3 wait``, as a CI job uses them: the
program in a subprocess, ``curl`` for HTTP, ``poplib`` for the client under test."""

from __future__ import annotations

import json
import poplib
import shutil
import signal
import socket
import subprocess
import sys
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from .test_cli import DEADLINE, Standalone, command, launch  # noqa: F401 - a fixture

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the standalone server's signals (SIGHUP) are POSIX"
)

CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is installed by .ci/install-clients")


def curl(url: str, *args: str) -> tuple[int, Any]:
    """``curl`` as a shell script would call it: the status and the JSON body."""
    assert CURL is not None
    done = subprocess.run(
        [CURL, "-s", "-w", "\n%{http_code}", *args, url],
        capture_output=True,
        timeout=DEADLINE,
        check=True,
    )
    body, _, status = done.stdout.rpartition(b"\n")
    return int(status), json.loads(body) if body.strip() else None


def control(app: Standalone) -> str:
    return f"http://{app.host}:{app.ready['control_port']}"


@needs_curl
def test_the_control_port_is_in_the_ready_file_and_the_banner(
    launch: Callable[..., Standalone],  # noqa: F811
) -> None:
    app = launch("--user", "alice:pw", "--control-port", "0", "--control-token", "tok3n")
    port = app.ready["control_port"]
    assert isinstance(port, int) and port > 0
    out, _ = app.output()
    assert f"control API and live page on http://127.0.0.1:{port}/ (needs its token)" in out
    status, body = curl(control(app) + "/api/v1/users")
    assert status == 401 and "needs 'Authorization: Bearer TOKEN'" in body["error"]
    status, body = curl(control(app) + "/api/v1/users", "-H", "Authorization: Bearer tok3n")
    assert status == 200 and [u["name"] for u in body] == ["alice"]


@needs_curl
def test_the_token_from_the_environment(tmp_path: Path) -> None:
    ready = tmp_path / "ready.json"
    env = {"FAKEPOP3_CONTROL_TOKEN": "from-env", "FAKEPOP3_CONTROL_PORT": "0", "PATH": ""}
    proc = subprocess.Popen(
        command("--port", "0", "--ready-file", str(ready)),
        env={**dict(__import__("os").environ), **env},
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        wait = subprocess.run(
            command("wait", "--timeout", str(DEADLINE), "--ready-file", str(ready)),
            capture_output=True,
            timeout=DEADLINE * 2,
            check=False,
        )
        assert wait.returncode == 0, wait.stderr
        info = json.loads(ready.read_text("utf-8"))
        url = f"http://127.0.0.1:{info['control_port']}/api/v1/settings"
        assert curl(url)[0] == 401
        assert curl(url, "-H", "Authorization: Bearer from-env")[0] == 200
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0 and b"Traceback" not in err


@needs_curl
def test_sighup_and_post_reset_do_the_same(launch: Callable[..., Standalone]) -> None:  # noqa: F811
    app = launch("--user", "alice:pw", "--generate", "alice=3", "--control-port", "0")
    api = control(app) + "/api/v1"
    status, _ = curl(api + "/users/alice/messages", "-X", "POST", "-H",
                     "Content-Type: message/rfc822", "--data-binary", "Subject: x\r\n\r\ny\r\n")  # fmt: skip
    assert status == 201
    curl(api + "/faults", "-X", "POST", "-H", "Content-Type: application/json",
         "-d", '{"command": "STAT", "action": "error", "text": "no"}')  # fmt: skip
    open_session = app.client("alice", "pw")
    open_session.dele(1)
    status, body = curl(api + "/reset", "-X", "POST")
    assert (status, body) == (200, {"resets": 1})
    assert app.wait_for_resets(1)["resets"] == 1
    with pytest.raises(poplib.error_proto, match="The server was reset"):
        open_session.quit()
    open_session.close()
    client = app.client("alice", "pw")  # the maildrop is free again
    assert client.stat()[0] == 3  # the mail at start: the message added by HTTP is gone
    client.quit()
    curl(api + "/users/alice/messages", "-X", "DELETE")
    app.signal(signal.SIGHUP)
    assert app.wait_for_resets(2)["resets"] == 2
    assert (
        curl(api + "/users/alice/messages")[1] and len(curl(api + "/users/alice/messages")[1]) == 3
    )
    resets = [line for line in app.history() if line["event"] == "reset"]
    assert [line["resets"] for line in resets] == [1, 2]
    ends = [line for line in app.history() if line["event"] == "session_end"]
    assert ends[0]["reason"] == "reset"


# --- fakepop3 wait --------------------------------------------------------------------------
def run_wait(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        command("wait", *args), capture_output=True, text=True, timeout=DEADLINE * 2, check=False
    )


def test_wait_returns_once_each_kind_of_target_answers(
    launch: Callable[..., Standalone],  # noqa: F811
) -> None:
    app = launch("--control-port", "0")
    for args in (
        [f"{app.host}:{app.port}"],
        ["--ready-file", str(app.ready_file)],
        ["--control", control(app)],
    ):
        done = run_wait("--timeout", str(DEADLINE), *args)
        assert (done.returncode, done.stdout, done.stderr) == (0, "", ""), args


def test_wait_gives_up_with_one_line_and_exit_1(tmp_path: Path) -> None:
    with socket.socket() as sock:  # a port nobody listens on (bound, never listening)
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
        done = run_wait("--timeout", "0.3", f"127.0.0.1:{port}")
    assert done.returncode == 1
    assert done.stderr.startswith(f"fakepop3 wait: not ready within 0.3 s: 127.0.0.1:{port}: ")
    assert done.stderr.count("\n") == 1
    done = run_wait("--timeout", "0.2", "--ready-file", str(tmp_path / "none.json"))
    assert done.returncode == 1 and "no ready file" in done.stderr


def test_wait_refuses_a_server_that_is_not_pop3() -> None:
    with socket.socket() as listener:  # an SMTP greeting on every connection, until closed
        listener.bind(("127.0.0.1", 0))
        listener.listen()
        port = listener.getsockname()[1]

        def smtp() -> None:
            while True:
                try:
                    conn, _ = listener.accept()
                except OSError:
                    return
                with conn:
                    conn.sendall(b"220 smtp.example.org ESMTP\r\n")

        threading.Thread(target=smtp, daemon=True).start()
        proc = subprocess.Popen(
            command("wait", "--timeout", "0.5", f"127.0.0.1:{port}"),
            stderr=subprocess.PIPE,
            text=True,
        )
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 1
    assert "answered '220 smtp.example.org ESMTP', not a POP3 greeting" in err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        ([], "give one of HOST:PORT, --ready-file FILE or --control URL"),
        (["localhost"], "'localhost' is not HOST:PORT"),
        (["h:1", "--control", "http://x"], "give one of"),
        (["--timeout", "0", "h:1"], "--timeout must be a positive number"),
        (["--bogus"], "unrecognized arguments: --bogus"),
    ],
)
def test_wait_with_bad_arguments_exits_2(args: list[str], message: str) -> None:
    done = run_wait(*args)
    assert done.returncode == 2
    assert message in done.stderr and done.stderr.count("\n") == 1
    assert "Traceback" not in done.stderr
