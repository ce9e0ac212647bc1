"""The standalone server over days: a full disk, a closed stdout, bad output paths, a bound on
the mail it generates (issue 22).  Each drives the program as a CI job does: a subprocess,
poplib over real sockets, the ready file as the signal to wait on."""

from __future__ import annotations

import contextlib
import json
import os
import poplib
import resource
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from fakepop3.cli import main
from fakepop3.config import MAX_GENERATED

from .test_cli import DEADLINE, command, read_json, wait_until

pytestmark = pytest.mark.skipif(
    sys.platform == "win32", reason="the standalone server's signals (SIGHUP) are POSIX"
)
LINUX = pytest.mark.skipif(not sys.platform.startswith("linux"), reason="/dev/full, /proc")


def _login(host: str, port: int) -> None:
    client = poplib.POP3(host, port, timeout=DEADLINE)
    try:
        assert client.user("alice").startswith(b"+OK")
        assert client.pass_("pw").startswith(b"+OK")
        assert client.stat() == (0, 0)
        assert client.quit().startswith(b"+OK")
    finally:
        client.close()


def _wait_ready(ready_file: Path, proc: subprocess.Popen[bytes], resets: int = 0) -> Any:
    return wait_until(
        f"the ready file with {resets} resets",
        lambda: (r := read_json(ready_file)) is not None and r["resets"] == resets and r,
        proc,
    )


def _stop(proc: subprocess.Popen[bytes]) -> int:
    proc.send_signal(signal.SIGTERM)
    try:
        return proc.wait(DEADLINE)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait()
        raise AssertionError("fakepop3 did not stop after SIGTERM") from None


# --- a full disk --------------------------------------------------------------------------
ROOM = 3000  # bytes the "disk" has left for the history file once the server is ready


@pytest.mark.skipif(not hasattr(resource, "prlimit"), reason="needs prlimit (Linux)")
def test_a_full_disk_stops_the_history_file_not_the_server(tmp_path: Path) -> None:
    """The disk fills up under a running server (its file size limit, RLIMIT_FSIZE, is lowered:
    a write past it is cut short, then fails as on a full disk)."""
    ready_file, history = tmp_path / "ready.json", tmp_path / "history.jsonl"
    argv = command(
        "--port", "0", "--user", "alice:pw", "--ready-file", str(ready_file),
        "--history", str(history),
    )  # fmt: skip
    err_file = tmp_path / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    limit = resource.RLIMIT_FSIZE
    try:
        ready = _wait_ready(ready_file, proc)
        room = history.stat().st_size + ROOM
        resource.prlimit(proc.pid, limit, (room, resource.RLIM_INFINITY))  # the soft limit
        host, port = ready["host"], ready["port"]
        for _ in range(30):  # the history fills up after a few sessions
            _login(host, port)
            if "warning" in err_file.read_text("utf-8"):
                break
        for _ in range(5):  # and the server goes on serving
            _login(host, port)
        proc.send_signal(signal.SIGHUP)
        _wait_ready(ready_file, proc, resets=1)
        _login(host, port)
    finally:
        with contextlib.suppress(OSError):  # room again for what the process writes at exit
            resource.prlimit(proc.pid, limit, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
        status = _stop(proc)
    assert status == 0
    err = err_file.read_text("utf-8")
    assert "Traceback" not in err, err
    [warning] = err.splitlines()
    assert warning.startswith(f"fakepop3: warning: cannot write the history file {history} (")
    text = history.read_text("utf-8")
    assert text.endswith("\n"), "never a partial line"
    assert len(text) <= room
    lines = [json.loads(line) for line in text.splitlines()]
    assert lines[0]["event"] == "start"
    assert any(line["event"] == "command" for line in lines)


def test_a_ready_file_that_cannot_be_rewritten_never_breaks_a_reset(tmp_path: Path) -> None:
    """The ready file cannot be rewritten (something else took its place): POST /api/v1/reset
    still resets, with one warning, no traceback, and exit 0."""
    import urllib.request

    ready_file = tmp_path / "ready.json"
    argv = command(
        "--port", "0", "--user", "alice:pw", "--ready-file", str(ready_file),
        "--control-port", "0",
    )  # fmt: skip
    err_file = tmp_path / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=err, cwd=tmp_path)
    try:
        ready = _wait_ready(ready_file, proc)
        ready_file.unlink()
        ready_file.mkdir()  # a folder where the file was: os.replace() onto it fails
        url = f"http://{ready['host']}:{ready['control_port']}/api/v1/reset"
        for count in (1, 2):
            request = urllib.request.Request(url, method="POST")
            with urllib.request.urlopen(request, timeout=10) as response:
                assert json.load(response) == {"resets": count}
        _login(ready["host"], ready["port"])
    finally:
        status = _stop(proc)
    assert status == 0
    err = err_file.read_text("utf-8")
    assert "Traceback" not in err, err
    [warning] = err.splitlines()
    assert warning.startswith(f"fakepop3: warning: cannot rewrite the ready file {ready_file} (")
    assert ready_file.is_dir()  # not ours to remove at exit


# --- a closed stdout ----------------------------------------------------------------------
def test_a_closed_stdout_never_stops_the_server(tmp_path: Path) -> None:
    """``fakepop3 ... | head -1``: the reader goes away; resets are still counted."""
    ready_file = tmp_path / "ready.json"
    argv = command("--port", "0", "--user", "alice:pw", "--ready-file", str(ready_file))
    err_file = tmp_path / "stderr.txt"
    with err_file.open("wb") as err:
        proc = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=err, cwd=tmp_path)
    try:
        assert proc.stdout is not None
        assert proc.stdout.readline().startswith(b"fakepop3 ")  # head -1
        proc.stdout.close()
        ready = _wait_ready(ready_file, proc)
        for resets in (1, 2):
            proc.send_signal(signal.SIGHUP)
            _wait_ready(ready_file, proc, resets=resets)
        _login(ready["host"], ready["port"])
    finally:
        status = _stop(proc)
    assert status == 0
    assert err_file.read_text("utf-8") == ""


# --- bad output paths, bad files: one line, exit 2 ----------------------------------------
#: (id, arguments, the exact stderr line after "fakepop3: error: "); run in a folder that has
#: a subfolder "d" and a file "c.toml" that is not UTF-8.
BAD_PATHS: list[tuple[str, list[str], str]] = [
    (
        "ready-file-and-history-one-file",
        ["--ready-file", "x.json", "--history", "./x.json"],
        "--history and --ready-file name the same file x.json: give each its own",
    ),
    (
        "ca-out-and-history-one-file",
        ["--ca-out", "x.pem", "--history", "x.pem"],
        "--ca-out and --history name the same file x.pem: give each its own",
    ),
    (
        "history-is-the-load-file",
        ["--user", "a:b", "--load", "a=c.toml", "--history", "c.toml"],
        "--history and --load a name the same file c.toml: give each its own",
    ),
    ("ca-out-folder", ["--ca-out", "d"], "--ca-out d: is a folder; give a file path in it"),
    ("history-folder", ["--history", "d"], "--history d: is a folder; give a file path in it"),
    (
        "ready-file-folder",
        ["--ready-file", "d"],
        "--ready-file d: is a folder; give a file path in it",
    ),
    (
        "config-not-utf8",
        ["--config", "c.toml"],
        "config c.toml: not UTF-8 text (byte 0xff at offset 8); TOML files are UTF-8",
    ),
    (
        "generate-too-much",
        ["--user", "a:b", "--generate", "a=600000", "--generate", "a=400001"],
        f"--generate: 1,000,001 messages in all is more than the {MAX_GENERATED:,} a server "
        "generates (each takes memory while it serves); use fewer, or --load",
    ),
    (
        "hostname-with-crlf",
        ["--hostname", "pop\r\nX"],
        "--hostname must be a host name without CR, LF or NUL, not 'pop\\r\\nX'",
    ),
    (
        "timeout-nan",
        ["--timeout", "nan"],
        "--timeout must be a positive number of seconds, not nan",
    ),
    (
        "login-delay-negative",
        ["--login-delay", "-1"],
        "--login-delay must be at least 0 (a whole number), not -1",
    ),
]
LINUX_PATHS: list[tuple[str, list[str], str]] = [
    (
        "history-dev-full",
        ["--history", "/dev/full"],
        "--history /dev/full: No space left on device",
    ),
    (
        "history-not-creatable",
        ["--history", "/proc/history.jsonl"],
        "--history /proc/history.jsonl: No such file or directory",
    ),
    (
        "ready-file-not-creatable",
        ["--ready-file", "/proc/ready.json"],
        "--ready-file /proc/ready.json: cannot write in /proc: No such file or directory",
    ),
    (
        "ca-out-not-creatable",
        ["--ca-out", "/proc/ca.pem"],
        "--ca-out /proc/ca.pem: cannot write in /proc: No such file or directory",
    ),
]


@pytest.mark.parametrize(
    ("args", "expected"),
    [pytest.param(a, e, id=i) for i, a, e in BAD_PATHS]
    + [pytest.param(a, e, id=i, marks=LINUX) for i, a, e in LINUX_PATHS],
)
def test_bad_paths_print_one_line_and_exit_2(
    args: list[str],
    expected: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "d").mkdir()
    (tmp_path / "c.toml").write_bytes(b"seed = 1\xff\n")
    status = main(["--port", "0", *args])
    out, err = capsys.readouterr()
    assert err == f"fakepop3: error: {expected}\n"
    assert status == 2
    assert out == ""
    assert set(os.listdir(tmp_path)) == {"c.toml", "d"}, "nothing left behind"


def test_a_history_file_on_a_full_disk_as_a_program(tmp_path: Path) -> None:
    if not os.path.exists("/dev/full"):
        pytest.skip("no /dev/full")
    proc = subprocess.run(
        command("--port", "0", "--history", "/dev/full"),
        capture_output=True,
        timeout=DEADLINE * 2,
        cwd=tmp_path,
    )
    assert proc.stderr == b"fakepop3: error: --history /dev/full: No space left on device\n"
    assert proc.returncode == 2


# --- memory: the history kept in memory is bounded ----------------------------------------
def test_the_program_keeps_a_bounded_history_in_memory() -> None:
    from fakepop3.cli import make_server, options_from

    assert options_from([]).history_limit == 1000
    assert options_from(["--history-limit", "none"]).history_limit is None
    server = make_server(
        options_from(["--port", "0", "--user", "alice:pw", "--history-limit", "2"])
    )
    with server:
        for _ in range(120):
            _login(server.host, server.port)
        server.history.wait_for_sessions(120)
        ids = [s.id for s in server.history.sessions]
    assert len(ids) < 120 and ids[-2:] == [119, 120]
