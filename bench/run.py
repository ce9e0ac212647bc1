"""Benchmark runner for fakepop3 (issue 9): one table, every target side by side.

    python bench/run.py                      # full run: bare, fakepop3, fakepop3-uvloop, dovecot
    python bench/run.py --quick              # smoke run with small counts (seconds)
    python bench/run.py --only bare,fakepop3 --sections sessions,retr --runs 3

Each figure is the median of ``--runs`` runs; rounds interleave the targets so that drift hits
them alike.  Every figure of a target other than ``bare`` is printed with its ratio to the
yardstick (``bench/bare_server.py``), and the target of the issue sits in the last column.
Servers under load run in their own process (``bench/serve.py``); the load generator
(``bench/loadgen.py``, epoll engine) runs here.  Only loopback addresses are used.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import json
import math
import os
import statistics
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
from collections.abc import Callable, Coroutine
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))

import bare_server  # noqa: E402 - after the sys.path line above
import loadgen  # noqa: E402 - after the sys.path line above
import targets  # noqa: E402 - after the sys.path line above

ALL_TARGETS = ("bare", "fakepop3", "fakepop3-uvloop", "dovecot")
SECTIONS = ("sessions", "poplib", "idle", "retr", "fixture", "mailbox", "pattern")
MB = 1024 * 1024
T = TypeVar("T")


# --- configuration ------------------------------------------------------------------------------
@dataclass
class Config:
    runs: int = 5
    concurrency: tuple[int, ...] = (1, 10, 100)
    seconds: float = 1.5  # each sessions/s measurement aims at about this long
    max_sessions: int = 20000
    min_sessions: int = 200
    poplib_concurrency: tuple[int, ...] = (1, 10)
    idle: int = 10000
    idle_dovecot: int = 100  # Dovecot forks a process per session
    big: str = "big"  # mailbox layout of the RETR test
    retr_clients: int = 10
    cycles: int = 200  # start+stop cycles
    pytest_tests: int = 500
    pytest_runs: int = 3
    pattern_servers: int = 100
    pattern_clients: int = 10
    quick: bool = False


QUICK = Config(
    runs=1,
    concurrency=(1, 10, 100),
    seconds=0.2,
    max_sessions=400,
    min_sessions=50,
    poplib_concurrency=(10,),
    idle=200,
    idle_dovecot=20,
    big="big:5",
    retr_clients=3,
    cycles=20,
    pytest_tests=20,
    pytest_runs=1,
    pattern_servers=5,
    pattern_clients=3,
    quick=True,
)


# --- results ----------------------------------------------------------------------------------
@dataclass
class Row:
    key: str
    label: str
    fmt: str = "{:.0f}"
    target: str = ""
    # check(value, bare_value) -> True/False, for the fakepop3 column
    check: Callable[[float, float | None], bool] | None = None
    higher_is_better: bool = True


@dataclass
class Results:
    samples: dict[tuple[str, str], list[float]] = field(default_factory=dict)
    notes: dict[tuple[str, str], str] = field(default_factory=dict)
    rows: list[Row] = field(default_factory=list)
    extra: list[str] = field(default_factory=list)

    def row(self, row: Row) -> None:
        if all(r.key != row.key for r in self.rows):
            self.rows.append(row)

    def add(self, target: str, key: str, value: float) -> None:
        self.samples.setdefault((target, key), []).append(value)

    def note(self, target: str, key: str, text: str) -> None:
        self.notes[(target, key)] = text

    def median(self, target: str, key: str) -> float | None:
        vals = [v for v in self.samples.get((target, key), []) if not math.isnan(v)]
        return statistics.median(vals) if vals else None


def ratio_at_least(r: float) -> Callable[[float, float | None], bool]:
    return lambda v, bare: bare is not None and bare > 0 and v / bare >= r


def at_most(limit: float) -> Callable[[float, float | None], bool]:
    return lambda v, bare: v <= limit


def log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)


# --- sessions/s -------------------------------------------------------------------------------
def bench_sessions(
    names: list[str],
    tg: dict[str, targets.Target],
    cfg: Config,
    res: Results,
    with_poplib: bool,
    with_asyncio_client: bool,
) -> None:
    nusers = max(cfg.concurrency)
    for c in cfg.concurrency:
        res.row(
            Row(
                f"sps{c}",
                f"sessions/s, concurrency {c}",
                target=">= 0.80x bare" if c >= 10 else "",
                check=ratio_at_least(0.8) if c >= 10 else None,
            )
        )
        res.row(
            Row(f"lat{c}", f"  p50 / p99 latency ms, c={c}", fmt="{:.2f}", higher_is_better=False)
        )
        res.row(
            Row(
                f"scpu{c}",
                f"  server / load generator CPU %, c={c}",
                fmt="{:.0f}",
                higher_is_better=False,
            )
        )
    if with_poplib:
        for c in cfg.poplib_concurrency:
            res.row(Row(f"pop{c}", f"sessions/s with poplib client, c={c}"))
    if with_asyncio_client:
        res.row(Row("aio10", "sessions/s, asyncio-Protocol client, c=10"))
    running: dict[str, targets.Running] = {}
    try:
        for n in names:
            running[n] = tg[n].start(nusers, "session")
        counts: dict[tuple[str, int], int] = {}
        for n, r in running.items():  # warm up, and size each run to about cfg.seconds
            for c in cfg.concurrency:
                w = loadgen.run_sessions_epoll(
                    r.host, r.port, max(cfg.min_sessions, 2 * c), c, targets.users(nusers)
                )
                if w.errors:
                    log(f"  {n}: warm-up errors at c={c}: {w.errors} ({w.first_error})")
                counts[(n, c)] = int(
                    min(cfg.max_sessions, max(cfg.min_sessions, w.rate * cfg.seconds))
                )
        for rnd in range(cfg.runs):
            log(f"  sessions round {rnd + 1}/{cfg.runs}")
            for c in cfg.concurrency:
                for n, r in running.items():
                    cpu0 = r.cpu()
                    out = loadgen.run_sessions_epoll(
                        r.host, r.port, counts[(n, c)], c, targets.users(nusers)
                    )
                    cpu = r.cpu() - cpu0
                    res.add(n, f"sps{c}", out.rate)
                    res.add(n, f"lat{c}", out.pct(0.5))
                    res.add(n, f"lat{c}:p99", out.pct(0.99))
                    res.add(n, f"scpu{c}", 100 * cpu / out.seconds if out.seconds else math.nan)
                    res.add(n, f"ccpu{c}", 100 * out.client_cpu / out.seconds)
                    if out.errors:
                        res.note(n, f"sps{c}", f"{out.errors} errors: {out.first_error}")
            if with_poplib:
                for c in cfg.poplib_concurrency:
                    for n, r in running.items():
                        k = max(cfg.min_sessions // 2, counts[(n, 10)] // 4)
                        out = loadgen.run_poplib(r.host, r.port, k, c, targets.users(nusers))
                        res.add(n, f"pop{c}", out.rate)
                        if out.errors:
                            res.note(n, f"pop{c}", f"{out.errors} errors: {out.first_error}")
            if with_asyncio_client:
                for n, r in running.items():
                    out = asyncio.run(
                        loadgen.run_sessions(
                            r.host, r.port, counts[(n, 10)], 10, targets.users(nusers)
                        )
                    )
                    res.add(n, "aio10", out.rate)
    finally:
        for r in running.values():
            r.stop()


# --- idle sessions --------------------------------------------------------------------------
def bench_idle(names: list[str], tg: dict[str, targets.Target], cfg: Config, res: Results) -> None:
    res.row(
        Row(
            "idle",
            f"idle sessions: server KB per session ({cfg.idle:,} open)",
            "{:.2f}",
            "<= 5 KB",
            at_most(5.0),
            higher_is_better=False,
        )
    )
    res.row(
        Row(
            "idle_total",
            "  server memory with them open, MB",
            "{:.1f}",
            "<= 50 MB",
            at_most(50.0),
            higher_is_better=False,
        )
    )
    loadgen.raise_nofile(cfg.idle + 1000)
    for rnd in range(cfg.runs):
        log(f"  idle round {rnd + 1}/{cfg.runs}")
        for n in names:
            count = cfg.idle_dovecot if n == "dovecot" else cfg.idle
            with tg[n].start(count, "idle") as r:
                time.sleep(0.2)
                before = r.memory()
                clients: list[loadgen.Client] = []

                async def hold(
                    r: targets.Running = r,
                    count: int = count,
                    clients: list[loadgen.Client] = clients,
                ) -> int:
                    clients.extend(
                        await loadgen.hold_idle(r.host, r.port, count, targets.users(count))
                    )
                    await asyncio.sleep(0.3)  # let the server settle
                    after = r.memory()
                    loadgen.close_all(clients)
                    await asyncio.sleep(0.05)
                    return after

                try:
                    after = asyncio.run(hold())
                    res.add(n, "idle", (after - before) / count / 1024)
                    res.add(n, "idle_total", (after - before) / MB * cfg.idle / count)
                except Exception as e:
                    res.note(n, "idle", f"failed: {e!r}")
                    loadgen.close_all(clients)
                if count != cfg.idle:
                    res.note(n, "idle", f"measured with {count} sessions, scaled")


# --- RETR of a big message ------------------------------------------------------------------
def bench_retr(names: list[str], tg: dict[str, targets.Target], cfg: Config, res: Results) -> None:
    size = len(targets.mailbox(cfg.big)[0])
    mbs = size // MB
    res.row(
        Row(
            "retr",
            f"RETR {mbs} MB, one client, MB/s",
            target=">= 0.80x bare",
            check=ratio_at_least(0.8),
        )
    )
    res.row(
        Row(
            "retr_mem",
            f"  server memory peak serving it to {cfg.retr_clients} clients, MB",
            "{:.1f}",
            target="no copy per client",
            higher_is_better=False,
            check=lambda v, bare: v <= max(2 * (bare or 0), 0) + 0.5 * mbs,
        )
    )
    res.row(Row("retr_first", "  first RETR of it (wire bytes built), MB/s"))
    running: dict[str, targets.Running] = {}
    users = targets.users(cfg.retr_clients)
    try:
        for n in names:
            running[n] = tg[n].start(cfg.retr_clients, cfg.big)
            r = running[n]
            got, dt = asyncio.run(loadgen.retr_big(r.host, r.port, 1, 1, users))
            res.add(n, "retr_first", size / MB / dt)
            # warm up: each maildrop's message once (wire bytes are built lazily, once)
            asyncio.run(loadgen.retr_big(r.host, r.port, 1, cfg.retr_clients, users))
        for rnd in range(cfg.runs):
            log(f"  retr round {rnd + 1}/{cfg.runs}")
            for n, r in running.items():
                got, dt = asyncio.run(loadgen.retr_big(r.host, r.port, 1, 1, users))
                if got < size:
                    res.note(n, "retr", f"short answer: {got} < {size}")
                res.add(n, "retr", size / MB / dt)
                # memory while serving it to N clients at once
                stop = threading.Event()
                peak = [0]
                base = r.memory()

                def sample(
                    r: targets.Running = r, stop: threading.Event = stop, peak: list[int] = peak
                ) -> None:
                    while not stop.is_set():
                        peak[0] = max(peak[0], r.memory())
                        stop.wait(0.01)

                th = threading.Thread(target=sample, daemon=True)
                hwm = not r.multi_process and r.reset_peak()
                th.start()
                try:
                    asyncio.run(loadgen.retr_big(r.host, r.port, 1, cfg.retr_clients, users))
                finally:
                    stop.set()
                    th.join()
                top = max(peak[0], r.peak()) if hwm else peak[0]
                res.add(n, "retr_mem", max(0, top - base) / MB)
    finally:
        for r in running.values():
            r.stop()


# --- fixture cost ---------------------------------------------------------------------------
def child_env() -> dict[str, str]:
    return dict(
        os.environ, PYTHONPATH=str(targets.ROOT) + os.pathsep + os.environ.get("PYTHONPATH", "")
    )


def run_on_loop(target: str, coro: Coroutine[Any, Any, T]) -> T:
    """``asyncio.run``, or ``uvloop.run`` for the ``fakepop3-uvloop`` target."""
    if target == "fakepop3-uvloop":
        import uvloop

        return uvloop.run(coro)
    return asyncio.run(coro)


def run_child(args: list[str], timeout: float = 600) -> dict[str, object]:
    p = subprocess.run(
        [sys.executable, str(Path(__file__).resolve()), *args],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=timeout,
        check=False,
    )
    for line in reversed(p.stdout.splitlines()):
        if line.startswith("{"):
            return json.loads(line)  # type: ignore[no-any-return]
    tail = (p.stderr.strip().splitlines() or ["no output"])[-1]
    return {"error": tail}


class BareThreadServer:
    """The yardstick's fixture-equivalent: a thread + new loop + create_server, then stop."""

    def __init__(self, messages: list[bytes]) -> None:
        self.messages = messages

    def __enter__(self) -> BareThreadServer:
        ready = threading.Event()

        def main() -> None:
            loop = asyncio.new_event_loop()
            self.loop = loop
            srv = loop.run_until_complete(
                bare_server.start(targets.HOST, 0, self.messages, users={"alice": "secret"})
            )
            self.port = srv.sockets[0].getsockname()[1]
            ready.set()
            loop.run_forever()
            srv.close()
            loop.run_until_complete(srv.wait_closed())
            loop.close()

        self.thread = threading.Thread(target=main, daemon=True)
        self.thread.start()
        ready.wait()
        return self

    def __exit__(self, *exc: object) -> None:
        self.loop.call_soon_threadsafe(self.loop.stop)
        self.thread.join()


def child_startstop(target: str, cycles: int) -> dict[str, object]:
    """Median ms of start+stop, thread-hosted and on a running loop (run in a child process)."""
    msg = [b"Subject: hello\r\n\r\nbody\r\n"]
    if target == "bare":

        def in_thread() -> None:
            with BareThreadServer(msg):
                pass

        async def on_loop() -> None:
            srv = await bare_server.start(targets.HOST, 0, msg, users={"alice": "secret"})
            srv.close()
            await srv.wait_closed()
    else:
        from fakepop3 import POP3Server
        from fakepop3.server import uvloop_factory

        factory = uvloop_factory() if target == "fakepop3-uvloop" else None

        def in_thread() -> None:
            with POP3Server(
                users={"alice": "secret"}, host=targets.HOST, port=0, loop_factory=factory
            ):
                pass

        async def on_loop() -> None:
            async with POP3Server(users={"alice": "secret"}, host=targets.HOST, port=0):
                pass

    def timed(fn: Callable[[], object]) -> float:
        t = time.perf_counter()
        fn()
        return (time.perf_counter() - t) * 1000

    in_thread()  # warm imports and caches
    thread_ms = statistics.median(timed(in_thread) for _ in range(cycles))

    async def loop_cycles() -> float:
        await on_loop()
        out = []
        for _ in range(cycles):
            t = time.perf_counter()
            await on_loop()
            out.append((time.perf_counter() - t) * 1000)
        return statistics.median(out)

    loop_ms = run_on_loop(target, loop_cycles())
    return {"thread_ms": thread_ms, "loop_ms": loop_ms}


TIMING_CONFTEST = """
import os, statistics, time
import pytest

PHASES = {}

def pytest_runtest_logreport(report):
    if report.when in ("setup", "teardown"):
        PHASES[report.nodeid] = PHASES.get(report.nodeid, 0.0) + report.duration

@pytest.hookimpl(hookwrapper=True)
def pytest_runtestloop(session):
    t = time.perf_counter()
    yield
    with open(os.environ["BENCH_LOOP_TIME"], "w") as f:
        f.write(repr(time.perf_counter() - t))
    with open(os.environ["BENCH_LOOP_TIME"] + ".phases", "w") as f:
        f.write(repr(statistics.median(PHASES.values())))
"""

BARE_CONFTEST = """
import asyncio, sys, threading
sys.path.insert(0, {bench!r})
import bare_server

@pytest.fixture
def pop3_server():
    ready = threading.Event()
    box = {{}}
    def main():
        loop = asyncio.new_event_loop()
        srv = loop.run_until_complete(bare_server.start(
            "127.0.0.1", 0, [b"Subject: hello\\r\\n\\r\\nbody\\r\\n"], users={{"alice": "secret"}}))
        box["loop"], box["port"] = loop, srv.sockets[0].getsockname()[1]
        ready.set()
        loop.run_forever()
        srv.close()
        loop.run_until_complete(srv.wait_closed())
        loop.close()
    t = threading.Thread(target=main, daemon=True)
    t.start()
    ready.wait()
    yield box["port"]
    box["loop"].call_soon_threadsafe(box["loop"].stop)
    t.join()
"""


def pytest_cost(target: str, tests: int, runs: int) -> tuple[float | None, str]:
    """ms per test that a function-scoped ``pop3_server`` fixture adds over an empty test."""
    value, why, _ = pytest_costs(target, tests, runs)
    return value, why


def pytest_costs(target: str, tests: int, runs: int) -> tuple[float | None, str, float | None]:
    """As :func:`pytest_cost`, plus the median over tests of the set-up + tear-down time pytest
    reports for a test with the fixture minus one without it: a figure a busy machine moves
    less, since a test slowed by other work is one sample of 500, not a share of a sum."""
    with tempfile.TemporaryDirectory(prefix="bench-pytest-") as tmp:
        d = Path(tmp)
        (d / "pytest.ini").write_text("[pytest]\nasyncio_default_fixture_loop_scope = function\n")
        conftest = TIMING_CONFTEST
        if target == "bare":
            conftest += BARE_CONFTEST.format(bench=str(HERE))
        (d / "conftest.py").write_text(conftest)
        (d / "test_empty.py").write_text(
            textwrap.dedent(f"""
            import pytest
            @pytest.mark.parametrize("i", range({tests}))
            def test_empty(i):
                pass
            """)
        )
        (d / "test_fixture.py").write_text(
            textwrap.dedent(f"""
            import pytest
            @pytest.mark.parametrize("i", range({tests}))
            def test_fixture(i, pop3_server):
                pass
            """)
        )

        # The fixture servers on uvloop: the plugin's --pop3-uvloop (both runs, the same cost).
        flags = ["--pop3-uvloop"] if target == "fakepop3-uvloop" else []

        def run(name: str) -> tuple[float, subprocess.CompletedProcess[str]]:
            """Seconds of pytest's test loop (set-up, call, tear-down of every test)."""
            env = dict(child_env(), BENCH_LOOP_TIME=str(d / "loop-time"))
            p = subprocess.run(
                [sys.executable, "-m", "pytest", "-q", "-p", "no:cacheprovider", *flags, name],
                cwd=d,
                capture_output=True,
                text=True,
                env=env,
                timeout=600,
                check=False,
            )
            try:
                phases.append(float((d / "loop-time.phases").read_text()))
                return float((d / "loop-time").read_text()), p
            except (OSError, ValueError):
                return math.nan, p

        diffs = []
        medians = []
        for _ in range(runs):
            phases: list[float] = []
            t_empty, p1 = run("test_empty.py")
            t_fix, p2 = run("test_fixture.py")
            if len(phases) == 2:
                medians.append((phases[1] - phases[0]) * 1000)
            if p2.returncode or p1.returncode:
                bad = p2 if p2.returncode else p1
                lines = [ln for ln in bad.stdout.splitlines() if "Error" in ln or "error" in ln]
                why = lines[0].strip() if lines else bad.stdout.strip().splitlines()[-1:]
                if "fixture 'pop3_server' not found" in bad.stdout:
                    why = "no pop3_server fixture yet"
                return None, f"not available yet ({why})", None
            diffs.append((t_fix - t_empty) * 1000 / tests)
        median = statistics.median(medians) if medians else None
        return statistics.median(diffs), "", median


def bench_fixture(names: list[str], cfg: Config, res: Results) -> None:
    res.row(
        Row(
            "start_thread",
            f"start+stop in a thread, ms (median of {cfg.cycles})",
            "{:.3f}",
            "<= 1 ms",
            at_most(1.0),
            higher_is_better=False,
        )
    )
    res.row(Row("start_loop", "start+stop on a running loop, ms", "{:.3f}", higher_is_better=False))
    res.row(
        Row(
            "pytest",
            f"pop3_server fixture: ms added per test ({cfg.pytest_tests} tests)",
            "{:.2f}",
            "<= 3 ms",
            at_most(3.0),
            higher_is_better=False,
        )
    )
    res.row(
        Row(
            "pytest_median",
            "  median set-up + tear-down added per test, ms",
            "{:.3f}",
            "<= bare",
            lambda value, bare: bare is not None and value <= bare,
            higher_is_better=False,
        )
    )
    for n in names:
        if n == "dovecot":
            continue
        for rnd in range(cfg.runs):
            out = run_child(["--child-startstop", n, str(cfg.cycles)])
            if "error" in out:
                res.note(n, "start_thread", f"failed: {out['error']}")
                break
            res.add(n, "start_thread", float(out["thread_ms"]))  # type: ignore[arg-type]
            res.add(n, "start_loop", float(out["loop_ms"]))  # type: ignore[arg-type]
            log(f"  start+stop {n} round {rnd + 1}/{cfg.runs}")
        value, why, median = pytest_costs(n, cfg.pytest_tests, cfg.pytest_runs)
        if value is None:
            res.note(n, "pytest", why)
        else:
            res.add(n, "pytest", value)
        if median is not None:
            res.add(n, "pytest_median", median)


# --- mailbox generation (bench/bench_generate.py, another helper's) ---------------------------
def bench_mailbox(cfg: Config, res: Results) -> None:
    script = HERE / "bench_generate.py"
    if not script.exists():
        res.extra.append("mailbox cost: bench/bench_generate.py not present yet")
        return
    helptext = subprocess.run(
        [sys.executable, str(script), "--help"],
        capture_output=True,
        text=True,
        env=child_env(),
        timeout=120,
        check=False,
    ).stdout
    args = [sys.executable, str(script)]
    if cfg.quick and "--quick" in helptext:
        args.append("--quick")
    elif cfg.quick:
        res.extra.append("mailbox cost: skipped in --quick (bench_generate.py has no --quick)")
        return
    elif "--runs" in helptext:
        args += ["--runs", str(cfg.runs)]
    _child_section(res, "mailbox cost", args, 40)
    bench_large_maildrop(cfg, res)


def _child_section(res: Results, title: str, args: list[str], last: int) -> None:
    """Run the bench script ``args`` (``[python, script, *options]``) and add the ``last``
    lines of its output to the table's notes under ``title``."""
    shown = " ".join([f"bench/{Path(args[1]).name}", *args[2:]])
    try:
        p = subprocess.run(
            args, capture_output=True, text=True, env=child_env(), timeout=1800, check=False
        )
    except subprocess.TimeoutExpired:
        res.extra.append(f"{title}: {shown} timed out")
        return
    out = p.stdout.strip() or p.stderr.strip()
    res.extra.append(f"{title} ({shown}, exit {p.returncode}):")
    res.extra.extend("  " + ln for ln in out.splitlines()[-last:])


def bench_large_maildrop(cfg: Config, res: Results) -> None:
    """bench/large_maildrop.py: 1,000,000 and 100,000 generated messages (100,000 in --quick)."""
    args = [
        sys.executable,
        str(HERE / "large_maildrop.py"),
        "--runs",
        str(1 if cfg.quick else cfg.runs),
    ]
    if cfg.quick:
        args += ["--counts", "100000"]
    _child_section(res, "large maildrop", args, 20)


# --- the original sketch: many servers in one process ----------------------------------------
def child_pattern(target: str, servers: int, clients: int) -> dict[str, object]:
    """``servers`` servers on one loop, ``clients`` concurrent sessions each, all joined."""
    loadgen.raise_nofile(servers * (clients * 2 + 2) + 200)
    msgs = targets.session_messages()
    users = targets.users(clients)

    async def main() -> dict[str, object]:
        t0 = time.perf_counter()
        async with contextlib.AsyncExitStack() as stack:
            ports = []
            for _ in range(servers):
                if target == "bare":
                    srv = await bare_server.start(
                        targets.HOST, 0, msgs, users=dict.fromkeys(users, "secret")
                    )
                    stack.push_async_callback(srv.wait_closed)
                    stack.callback(srv.close)
                    ports.append(srv.sockets[0].getsockname()[1])
                else:
                    from fakepop3 import POP3Server

                    s = POP3Server(host=targets.HOST, port=0, history=True)
                    for u in users:
                        s.add_user(u, "secret", messages=msgs)
                    await stack.enter_async_context(s)
                    ports.append(s.port)
            t1 = time.perf_counter()
            outs = await asyncio.gather(
                *(loadgen.run_sessions(targets.HOST, p, clients, clients, users) for p in ports)
            )
            t2 = time.perf_counter()
        t3 = time.perf_counter()
        errors = sum(o.errors for o in outs)
        return {
            "total_s": t3 - t0,
            "sessions_s": t2 - t1,
            "sessions": sum(o.sessions for o in outs),
            "errors": errors,
            "first_error": next((o.first_error for o in outs if o.first_error), ""),
        }

    return run_on_loop(target, main())


def bench_pattern(names: list[str], cfg: Config, res: Results) -> None:
    s, c = cfg.pattern_servers, cfg.pattern_clients
    res.row(
        Row(
            "pattern",
            f"{s} servers x {c} clients in one process: total s",
            "{:.3f}",
            higher_is_better=False,
        )
    )
    res.row(Row("pattern_sps", "  sessions/s while all run"))
    for rnd in range(cfg.runs):
        log(f"  pattern round {rnd + 1}/{cfg.runs}")
        for n in names:
            if n == "dovecot":
                continue
            out = run_child(["--child-pattern", n, str(s), str(c)])
            if "error" in out:
                res.note(n, "pattern", f"failed: {out['error']}")
                continue
            res.add(n, "pattern", float(out["total_s"]))  # type: ignore[arg-type]
            res.add(n, "pattern_sps", float(out["sessions"]) / float(out["sessions_s"]))  # type: ignore[arg-type]
            if out["errors"]:
                res.note(n, "pattern", f"{out['errors']} errors: {out['first_error']}")


# --- the table ------------------------------------------------------------------------------
def fmt_value(row: Row, res: Results, n: str) -> str:
    v = res.median(n, row.key)
    if v is None:
        return "-"
    text = row.fmt.format(v)
    if row.key.startswith("lat"):
        p99 = res.median(n, row.key + ":p99")
        text += f" / {p99:.2f}" if p99 is not None else ""
    if row.key.startswith("scpu"):
        cc = res.median(n, "ccpu" + row.key[4:])
        return text + (f" / {cc:.0f}" if cc is not None else "")
    if n != "bare":
        bare = res.median("bare", row.key)
        if bare:
            text += f" ({v / bare:.2f}x)"
    if n.startswith("fakepop3") and row.check is not None:
        text += " ok" if row.check(v, res.median("bare", row.key)) else " MISS"
    return text


def table(names: list[str], res: Results, skipped: dict[str, str]) -> str:
    header = ["metric", *names, "target"]
    lines = [header]
    for row in res.rows:
        lines.append([row.label, *(fmt_value(row, res, n) for n in names), row.target])
    widths = [max(len(r[i]) for r in lines) for i in range(len(header))]
    out = []
    for k, r in enumerate(lines):
        out.append("  ".join(cell.ljust(w) for cell, w in zip(r, widths, strict=False)).rstrip())
        if k == 0:
            out.append("  ".join("-" * w for w in widths))
    notes = [f"  {n} / {k}: {text}" for (n, k), text in res.notes.items()]
    if notes:
        out.append("notes:")
        out.extend(notes)
    for n, why in skipped.items():
        out.append(f"{n}: {why}")
    out.extend(res.extra)
    return "\n".join(out)


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small counts, one run: a smoke test")
    p.add_argument(
        "--only",
        default=",".join(ALL_TARGETS),
        help="targets, comma-separated (bare is always measured: it is the bar)",
    )
    p.add_argument("--sections", default=",".join(SECTIONS), help=",".join(SECTIONS))
    p.add_argument("--runs", type=int, help="runs per figure (median); default 5, quick 1")
    p.add_argument(
        "--asyncio-client",
        action="store_true",
        help="also measure c=10 with the asyncio Protocol client",
    )
    p.add_argument("--json", help="also write the raw samples to this file")
    p.add_argument("--child-startstop", nargs=2, help=argparse.SUPPRESS)
    p.add_argument("--child-pattern", nargs=3, help=argparse.SUPPRESS)
    a = p.parse_args(argv)
    if a.child_startstop:
        print(json.dumps(child_startstop(a.child_startstop[0], int(a.child_startstop[1]))))
        return 0
    if a.child_pattern:
        t, s, c = a.child_pattern
        print(json.dumps(child_pattern(t, int(s), int(c))))
        return 0

    cfg = QUICK if a.quick else Config()
    if a.runs:
        cfg.runs = a.runs
    wanted = ["bare"] + [n for n in a.only.split(",") if n and n != "bare"]
    sections = [s for s in a.sections.split(",") if s]
    for s in sections:
        if s not in SECTIONS:
            p.error(f"unknown section {s!r}")
    skipped: dict[str, str] = {}
    tg: dict[str, targets.Target] = {}
    for n in wanted:
        t = targets.make(n)
        why = t.unavailable()
        if why:
            skipped[n] = why
            log(f"{n}: {why}")
        else:
            tg[n] = t
    names = list(tg)
    loadgen.raise_nofile(1 << 16)
    res = Results()
    t0 = time.perf_counter()
    load0 = os.getloadavg()[0]
    steps: list[tuple[str, Callable[[], None]]] = [
        (
            "sessions",
            lambda: bench_sessions(names, tg, cfg, res, "poplib" in sections, a.asyncio_client),
        ),
        ("idle", lambda: bench_idle(names, tg, cfg, res)),
        ("retr", lambda: bench_retr(names, tg, cfg, res)),
        ("fixture", lambda: bench_fixture(names, cfg, res)),
        ("mailbox", lambda: bench_mailbox(cfg, res)),
        ("pattern", lambda: bench_pattern(names, cfg, res)),
    ]
    for name, step in steps:
        if name in sections:
            log(f"[{name}]")
            try:
                step()
            except Exception as e:
                res.extra.append(f"section {name} failed: {e!r}")
                log(f"section {name} failed: {e!r}")
    print(
        f"fakepop3 benchmarks: {'quick, ' if cfg.quick else ''}median of {cfg.runs} run(s), "
        f"{os.cpu_count()} CPUs, Python {sys.version.split()[0]}, "
        f"{time.perf_counter() - t0:.0f} s, load average {load0:.1f} at start, "
        f"{os.getloadavg()[0]:.1f} at end"
    )
    if max(load0, os.getloadavg()[0]) > 0.5 * (os.cpu_count() or 1):
        print(
            "warning: the machine was busy with other work; absolute figures are low and noisy,"
            " ratios less so (targets are interleaved)"
        )
    print(table(names, res, skipped))
    if a.json:
        Path(a.json).write_text(
            json.dumps({f"{n}/{k}": v for (n, k), v in res.samples.items()}, indent=1)
        )
    return 0


if __name__ == "__main__":
    sys.exit(main())
