"""The benchmark suite does not rot: the runner prints its table, and the yardstick server
(bench/bare_server.py) is a real POP3 server.  No timing is asserted here."""

from __future__ import annotations

import asyncio
import poplib
import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"
sys.path.insert(0, str(BENCH))

import bare_server  # noqa: E402 - after the sys.path line above
import loadgen  # noqa: E402 - after the sys.path line above

MESSAGES = [
    b"From: a@example.com\r\nSubject: one\r\n\r\nhello\r\n.leading dot\r\n..two dots\r\n",
    b"Subject: two\nX-LF: only\n\nl1\nl2\nl3\n",  # LF line ends: sent as CRLF
]


@pytest.fixture
def bare() -> Iterator[int]:
    ready = threading.Event()
    box: dict[str, object] = {}

    def main() -> None:
        loop = asyncio.new_event_loop()
        srv = loop.run_until_complete(
            bare_server.start("127.0.0.1", 0, list(MESSAGES), users={"alice": "secret"})
        )
        box["loop"], box["port"] = loop, srv.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        srv.close()
        loop.run_until_complete(srv.wait_closed())
        loop.close()

    thread = threading.Thread(target=main, daemon=True)
    thread.start()
    assert ready.wait(10)
    yield box["port"]  # type: ignore[misc]
    loop = box["loop"]
    loop.call_soon_threadsafe(loop.stop)  # type: ignore[attr-defined]
    thread.join(10)


def test_bare_server_speaks_pop3_to_poplib(bare: int) -> None:
    c = poplib.POP3("127.0.0.1", bare, timeout=10)
    try:
        assert c.getwelcome().startswith(b"+OK")
        c.user("alice")
        with pytest.raises(poplib.error_proto, match="AUTH"):
            c.pass_("wrong")
        c.user("alice")
        assert c.pass_("secret").startswith(b"+OK")
        sizes = [len(MESSAGES[0]), len(MESSAGES[1].replace(b"\n", b"\r\n"))]
        assert c.stat() == (2, sum(sizes))
        assert c.list()[1] == [b"1 %d" % sizes[0], b"2 %d" % sizes[1]]
        assert c.list(2) == b"+OK 2 %d" % sizes[1]
        uids = c.uidl()[1]
        assert len(uids) == 2 and len({u.split()[1] for u in uids}) == 2
        # poplib undoes the stuffing: the lines come back as stored
        assert c.retr(1)[1] == [
            b"From: a@example.com",
            b"Subject: one",
            b"",
            b"hello",
            b".leading dot",
            b"..two dots",
        ]
        assert c.top(2, 1)[1] == [b"Subject: two", b"X-LF: only", b"", b"l1"]
        assert c.top(2, 0)[1] == [b"Subject: two", b"X-LF: only", b""]
        assert c.noop().startswith(b"+OK")
        c.dele(1)
        with pytest.raises(poplib.error_proto):
            c.retr(1)
        assert c.stat() == (1, sizes[1])
        c.rset()
        assert c.stat() == (2, sum(sizes))
        with pytest.raises(poplib.error_proto):
            c.retr(3)
        c.dele(2)
        assert c.quit().startswith(b"+OK")
    finally:
        c.close()
    # QUIT in TRANSACTION entered UPDATE: message 2 is gone for the next session
    c = poplib.POP3("127.0.0.1", bare, timeout=10)
    try:
        c.user("alice")
        c.pass_("secret")
        assert c.stat() == (1, len(MESSAGES[0]))
        c.quit()
    finally:
        c.close()


def test_bare_server_refuses_commands_in_the_wrong_state(bare: int) -> None:
    c = poplib.POP3("127.0.0.1", bare, timeout=10)
    try:
        with pytest.raises(poplib.error_proto):
            c.stat()
        with pytest.raises(poplib.error_proto):
            c._shortcmd("BOGUS")
        c.quit()
    finally:
        c.close()


def test_load_generator_engines_complete_sessions(bare: int) -> None:
    users = ["alice"]
    r = loadgen.run_sessions_epoll("127.0.0.1", bare, 20, 1, users)
    assert (r.sessions, r.errors) == (20, 0), r.first_error
    r = asyncio.run(loadgen.run_sessions("127.0.0.1", bare, 20, 1, users))
    assert (r.sessions, r.errors) == (20, 0), r.first_error
    r = loadgen.run_poplib("127.0.0.1", bare, 5, 1, users)
    assert (r.sessions, r.errors) == (5, 0), r.first_error
    r = loadgen.run_sessions_epoll("127.0.0.1", bare, 3, 1, users, password="nope")
    assert (r.sessions, r.errors) == (0, 3)


def test_runner_quick_prints_a_table_with_numbers() -> None:
    p = subprocess.run(
        [
            sys.executable,
            str(BENCH / "run.py"),
            "--quick",
            "--only",
            "bare",
            "--sections",
            "sessions,poplib,idle,retr,fixture,pattern",
        ],
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    out = p.stdout
    assert "metric" in out and "bare" in out and "target" in out, out
    figures = {}
    for line in out.splitlines():
        m = re.match(r"^(\S.*?)\s{2,}(-?\d+(?:\.\d+)?)", line)
        if m:
            figures[m.group(1)] = float(m.group(2))
    for label in (
        "sessions/s, concurrency 1",
        "sessions/s, concurrency 10",
        "sessions/s, concurrency 100",
        "sessions/s with poplib client, c=10",
    ):
        assert figures.get(label, 0) > 0, out
    assert any(k.startswith("idle sessions") for k in figures), out
    assert any(k.startswith("RETR") and v > 0 for k, v in figures.items()), out
    assert any(k.startswith("5 servers x 3 clients") for k in figures), out
    assert any(k.startswith("start+stop in a thread") for k in figures), out
    assert any(k.startswith("pop3_server fixture") for k in figures), out
    assert "failed" not in out, out


def test_large_maildrop_bench_prints_its_figures() -> None:
    p = subprocess.run(
        [sys.executable, str(BENCH / "large_maildrop.py"), "--runs", "1", "--counts", "20000"],
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert p.returncode == 0, p.stderr[-3000:]
    line = next(x for x in p.stdout.splitlines() if x.strip().startswith("this checkout"))
    m = re.search(r"RSS (-?\d+) B/message .*\((\d+\.\d) MB sent", line)
    assert m is not None, p.stdout
    assert float(m.group(2)) > 0.4, line  # 20,000 LIST and UIDL lines were read
    assert "yardstick" in p.stdout and "B/item" in p.stdout, p.stdout


def test_the_wakeup_count_runs_and_counts_turns_of_the_loop() -> None:
    """bench/wakeups.py (issue 20's figure that a busy machine does not move): it prints counts
    per start+stop, and a start+stop turns the loop at least once (the stop's hand-over)."""
    done = subprocess.run(
        [sys.executable, str(BENCH / "wakeups.py"), "--cycles", "20"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    found = re.fullmatch(
        r"per start\+stop \(20\): loop turns ([\d.]+) \(could sleep ([\d.]+)\), voluntary "
        r"switches [\d.]+, involuntary [\d.]+, mean [\d.]+ ms\n",
        done.stdout,
    )
    assert found, done.stdout
    assert float(found.group(1)) >= 1.0
    assert float(found.group(2)) <= float(found.group(1))
