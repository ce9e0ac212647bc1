"""POP3 load generator: raw asyncio sockets (a BufferedProtocol that never copies bodies).

A session is: connect, greeting, USER, PASS, STAT, LIST, UIDL, RETR k, QUIT.  ``N`` sessions
run at concurrency ``C``; we report sessions/s and p50/p99 session latency.  A poplib mode
(one thread per concurrent client) gives the "stock client" row.

    python bench/loadgen.py --port 1100 --sessions 2000 --concurrency 10 [--poplib]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import poplib
import resource
import select
import socket
import statistics
import struct
import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

BUFSIZE = 1 << 18
TERM = b"\r\n.\r\n"
LINGER0 = struct.pack("ii", 1, 0)  # close with RST: no TIME_WAIT pile-up on the client side
# One receive buffer for every connection of this process: BufferedProtocol hands it to
# recv_into and we inspect it synchronously in buffer_updated, so it is never shared in time.
_BUF = bytearray(BUFSIZE)
_VIEW = memoryview(_BUF)


class POP3Error(Exception):
    pass


class Client(asyncio.BufferedProtocol):
    """One POP3 connection; ``await cmd(...)`` sends a line and waits for the whole answer."""

    def __init__(self) -> None:
        self.loop = asyncio.get_running_loop()
        self.waiter: asyncio.Future[bytes] | None = self.loop.create_future()
        self.multi = False
        self.line: bytes | None = None  # status line of the answer being read
        self.tail = self.head = b""
        self.received = 0  # octets of the current answer
        self.transport: asyncio.Transport | None = None

    # -- protocol callbacks
    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def get_buffer(self, sizehint: int) -> memoryview:
        return _VIEW

    def buffer_updated(self, n: int) -> None:
        self.received += n
        buf = _BUF
        if self.line is None:
            i = buf.find(b"\n", 0, n)
            if i < 0:  # status line split across reads (rare): keep its start
                self.head += bytes(buf[:n])
                return
            self.line, self.tail, self.head = self.head + bytes(buf[: i + 1]), self.head[-4:], b""
            if not self.multi or self.line[:1] == b"-":
                return self.done()
        # multi-line: every answer ends with CRLF.CRLF (the status line's CRLF included), and
        # dot-stuffing guarantees it occurs nowhere earlier
        end = self.tail + bytes(buf[max(0, n - 5) : n])
        if end.endswith(TERM):
            return self.done()
        self.tail = end[-4:]

    def done(self) -> None:
        w, self.waiter = self.waiter, None
        line, self.line = self.line, None
        if w is not None and not w.done():
            w.set_result(line)  # type: ignore[arg-type]

    def eof_received(self) -> bool | None:
        self.connection_lost(None)
        return None

    def connection_lost(self, exc: Exception | None) -> None:
        w, self.waiter = self.waiter, None
        if w is not None and not w.done():
            w.set_exception(ConnectionError("connection closed by server"))

    # -- API
    def cmd(self, line: bytes, multi: bool = False) -> asyncio.Future[bytes]:
        if self.waiter is not None:
            raise RuntimeError("one command at a time")
        self.waiter = self.loop.create_future()
        self.multi, self.received, self.tail, self.head = multi, 0, b"", b""
        self.transport.write(line)  # type: ignore[union-attr]
        return self.waiter


async def connect(host: str, port: int) -> Client:
    loop = asyncio.get_running_loop()
    _, client = await loop.create_connection(Client, host, port)
    await _ok(client.waiter)  # type: ignore[arg-type]
    return client


async def _ok(fut: asyncio.Future[bytes]) -> bytes:
    line = await fut
    if line[:3] != b"+OK":
        raise POP3Error(line)
    return line


async def login(host: str, port: int, user: str, password: str) -> Client:
    c = await connect(host, port)
    await _ok(c.cmd(b"USER %s\r\n" % user.encode()))
    await _ok(c.cmd(b"PASS %s\r\n" % password.encode()))
    return c


async def session(host: str, port: int, user: str, password: str, i: int) -> None:
    c = await login(host, port, user, password)
    count = int((await _ok(c.cmd(b"STAT\r\n"))).split()[1])
    await _ok(c.cmd(b"LIST\r\n", True))
    await _ok(c.cmd(b"UIDL\r\n", True))
    if count:
        await _ok(c.cmd(b"RETR %d\r\n" % (i % count + 1), True))
    await _ok(c.cmd(b"QUIT\r\n"))
    c.transport.close()  # type: ignore[union-attr]


class SessionProtocol(Client):
    """Runs a whole session as a state machine driven by the protocol callbacks: no coroutine
    switch or future per command, so the generator spends as little CPU as asyncio allows."""

    def __init__(self, script: tuple[bytes, ...], i: int, done: asyncio.Future[None]) -> None:
        super().__init__()
        self.script, self.i, self.step, self.finished = script, i, -1, done
        self.count = 0

    def done(self) -> None:
        line, self.line = self.line, None
        if self.finished.done():
            return
        if line is None or line[:3] != b"+OK":
            self.finished.set_exception(POP3Error(line))
            self.transport.close()  # type: ignore[union-attr]
            return
        self.step = step = self.step + 1
        if step == 3:  # STAT answered: pick the message for RETR
            self.count = int(line.split()[1])
            if not self.count:
                self.step = step = 6
        if step == len(self.script):
            self.transport.close()  # type: ignore[union-attr]
            self.finished.set_result(None)
            return
        cmd = self.script[step]
        if step == 5:
            cmd = cmd % (self.i % self.count + 1)
        self.multi, self.received, self.tail, self.head = step in (3, 4, 5), 0, b"", b""
        self.transport.write(cmd)  # type: ignore[union-attr]

    def connection_lost(self, exc: Exception | None) -> None:
        if not self.finished.done():
            self.finished.set_exception(ConnectionError("connection closed by server"))


def session_script(user: str, password: str) -> tuple[bytes, ...]:
    return (
        b"USER %s\r\n" % user.encode(),
        b"PASS %s\r\n" % password.encode(),
        b"STAT\r\n",
        b"LIST\r\n",
        b"UIDL\r\n",
        b"RETR %d\r\n",
        b"QUIT\r\n",
    )


@dataclass
class Result:
    sessions: int
    seconds: float
    latencies: list[float] = field(default_factory=list)
    errors: int = 0
    client_cpu: float = 0.0  # CPU seconds the load generator itself used
    first_error: str = ""

    @property
    def rate(self) -> float:
        return self.sessions / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        if not self.latencies:
            return float("nan")
        s = sorted(self.latencies)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000.0

    def __str__(self) -> str:
        return (
            f"{self.sessions} sessions in {self.seconds:.3f}s = {self.rate:.0f}/s, "
            f"p50 {self.pct(0.5):.2f} ms, p99 {self.pct(0.99):.2f} ms, errors {self.errors}, "
            f"client CPU {self.client_cpu / self.seconds if self.seconds else 0:.0%}"
        )


def _cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run_sessions(
    host: str,
    port: int,
    n: int,
    concurrency: int,
    users: Sequence[str] = ("alice",),
    password: str = "secret",
    timeout: float = 300.0,
) -> Result:
    """Run ``n`` sessions, ``concurrency`` at a time; failed sessions are counted, not retried.

    Concurrent slot ``j`` logs in as ``users[j % len(users)]`` (servers lock a maildrop per
    session, so give at least ``concurrency`` users)."""
    lat: list[float] = []
    res = Result(0, 0.0, lat)
    counter = iter(range(n))
    loop = asyncio.get_running_loop()

    async def worker(script: tuple[bytes, ...]) -> None:
        for i in counter:
            t = time.perf_counter()
            fut = loop.create_future()
            try:
                tr, _ = await loop.create_connection(
                    lambda i=i, fut=fut: SessionProtocol(script, i, fut), host, port
                )
                tr.get_extra_info("socket").setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
                await fut
            except (OSError, POP3Error, ValueError, IndexError) as e:
                res.errors += 1
                res.first_error = res.first_error or repr(e)
                continue
            lat.append(time.perf_counter() - t)

    cpu, t0 = _cpu(), time.perf_counter()
    await asyncio.wait_for(
        asyncio.gather(
            *(
                worker(session_script(users[j % len(users)], password))
                for j in range(min(n, concurrency))
            )
        ),
        timeout,
    )
    res.seconds, res.client_cpu = time.perf_counter() - t0, _cpu() - cpu
    res.sessions = len(lat)
    return res


class _Conn:
    __slots__ = (
        "count",
        "head",
        "i",
        "line",
        "multi",
        "script",
        "slot",
        "sock",
        "step",
        "t0",
        "tail",
    )

    def __init__(self, sock: socket.socket, i: int, slot: int, script: tuple[bytes, ...]) -> None:
        self.sock, self.i, self.step, self.count, self.t0 = sock, i, -1, 0, time.perf_counter()
        self.slot, self.script = slot, script
        self.multi, self.line, self.tail, self.head = False, None, b"", b""


def run_sessions_epoll(
    host: str,
    port: int,
    n: int,
    concurrency: int,
    users: Sequence[str] = ("alice",),
    password: str = "secret",
    timeout: float = 300.0,
) -> Result:
    """The same sessions as :func:`run_sessions`, driven by a bare ``select.epoll`` loop.

    No asyncio: per event just recv_into, a look at the last bytes and one send, so the
    generator costs well under the server it measures (``client_cpu`` shows how much)."""
    lat: list[float] = []
    res = Result(0, 0.0, lat)
    scripts = [session_script(users[j % len(users)], password) for j in range(concurrency)]
    addr = (host, port)
    ep = select.epoll()
    conns: dict[int, _Conn] = {}
    buf = _BUF
    view = _VIEW
    started = 0

    def start(slot: int) -> None:
        nonlocal started
        s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        s.setblocking(False)
        s.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        s.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, LINGER0)
        s.connect_ex(addr)
        conns[s.fileno()] = _Conn(s, started, slot, scripts[slot])
        ep.register(s.fileno(), select.EPOLLIN)
        started += 1

    def finish(fd: int, c: _Conn, err: BaseException | None) -> None:
        del conns[fd]
        ep.unregister(fd)
        c.sock.close()
        if err is None:
            lat.append(time.perf_counter() - c.t0)
        else:
            res.errors += 1
            res.first_error = res.first_error or repr(err)
        if started < n:
            start(c.slot)

    cpu, t0 = _cpu(), time.perf_counter()
    deadline = t0 + timeout
    try:
        for slot in range(min(n, concurrency)):
            start(slot)
        while conns and time.perf_counter() < deadline:
            for fd, _ev in ep.poll(1.0):
                c = conns.get(fd)
                if c is None:
                    continue
                try:
                    k = c.sock.recv_into(view)
                except OSError as e:
                    finish(fd, c, e)
                    continue
                if not k:
                    finish(fd, c, ConnectionError("connection closed by server"))
                    continue
                if c.line is None:
                    j = buf.find(b"\n", 0, k)
                    if j < 0:
                        c.head += bytes(buf[:k])
                        continue
                    c.line, c.tail, c.head = c.head + bytes(buf[: j + 1]), c.head[-4:], b""
                    if c.multi and c.line[:1] != b"-":
                        end = c.tail + bytes(buf[max(0, k - 5) : k])
                        if not end.endswith(TERM):
                            c.tail = end[-4:]
                            continue
                else:
                    end = c.tail + bytes(buf[max(0, k - 5) : k])
                    if not end.endswith(TERM):
                        c.tail = end[-4:]
                        continue
                # an answer is complete
                line, c.line = c.line, None
                if line[:3] != b"+OK":
                    finish(fd, c, POP3Error(line))
                    continue
                c.step = step = c.step + 1
                if step == 3:
                    c.count = int(line.split()[1])
                    if not c.count:
                        c.step = step = 6
                if step == 7:
                    finish(fd, c, None)
                    continue
                cmd = c.script[step] if step != 5 else c.script[5] % (c.i % c.count + 1)
                c.multi, c.tail = step in (3, 4, 5), b""
                c.sock.send(cmd)
    finally:
        for fd, c in list(conns.items()):
            finish(fd, c, TimeoutError("session still open at the deadline"))
        ep.close()
    res.seconds, res.client_cpu = time.perf_counter() - t0, _cpu() - cpu
    res.sessions = len(lat)
    return res


def run_poplib(
    host: str,
    port: int,
    n: int,
    concurrency: int,
    users: Sequence[str] = ("alice",),
    password: str = "secret",
    timeout: float = 30.0,
) -> Result:
    """The same session with the standard library's poplib, one thread per concurrent client."""
    lat: list[float] = []
    res = Result(0, 0.0, lat)
    lock = threading.Lock()
    counter = iter(range(n))

    def worker(user: str) -> None:
        while True:
            with lock:
                i = next(counter, None)
            if i is None:
                return
            t = time.perf_counter()
            try:
                c = poplib.POP3(host, port, timeout=timeout)
                c.user(user)
                c.pass_(password)
                count = c.stat()[0]
                c.list()
                c.uidl()
                if count:
                    c.retr(i % count + 1)
                c.quit()
            except (OSError, poplib.error_proto) as e:
                with lock:
                    res.errors += 1
                    res.first_error = res.first_error or repr(e)
                continue
            lat.append(time.perf_counter() - t)  # list.append is atomic

    threads = [
        threading.Thread(target=worker, args=(users[j % len(users)],), daemon=True)
        for j in range(min(n, concurrency))
    ]
    cpu, t0 = _cpu(), time.perf_counter()
    for th in threads:
        th.start()
    for th in threads:
        th.join(timeout * max(1, n // max(1, concurrency)))
    res.seconds, res.client_cpu = time.perf_counter() - t0, _cpu() - cpu
    res.sessions = len(lat)
    return res


async def hold_idle(
    host: str,
    port: int,
    n: int,
    users: Sequence[str] = ("alice",),
    password: str = "secret",
    concurrency: int = 100,
) -> list[Client]:
    """Open ``n`` authenticated sessions (session ``i`` as ``users[i]``) and keep them open;
    the caller closes them with :func:`close_all`."""
    clients: list[Client] = []
    counter = iter(range(n))

    async def worker() -> None:
        for i in counter:
            clients.append(await login(host, port, users[i % len(users)], password))

    try:
        await asyncio.wait_for(asyncio.gather(*(worker() for _ in range(concurrency))), 600)
    except BaseException:
        close_all(clients)
        raise
    return clients


def close_all(clients: list[Client]) -> None:
    for c in clients:
        if c.transport is not None:
            c.transport.close()


async def retr_big(
    host: str,
    port: int,
    msgno: int,
    clients: int,
    users: Sequence[str] = ("alice",),
    password: str = "secret",
    on_start: Callable[[], object] | None = None,
) -> tuple[int, float]:
    """``clients`` sessions (``users[j]``) RETR message ``msgno`` at once; returns (octets
    received per client, seconds from the first RETR sent to the last answer complete)."""
    conns = [await login(host, port, users[j % len(users)], password) for j in range(clients)]
    if on_start is not None:
        on_start()
    try:
        t0 = time.perf_counter()
        futs = [c.cmd(b"RETR %d\r\n" % msgno, True) for c in conns]
        sizes = []
        for c, f in zip(conns, futs, strict=True):
            await _ok(f)
            sizes.append(c.received)
        dt = time.perf_counter() - t0
        for c in conns:
            await _ok(c.cmd(b"QUIT\r\n"))
    finally:
        close_all(conns)
    return min(sizes), dt


def raise_nofile(want: int) -> int:
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    target = want if hard == resource.RLIM_INFINITY else min(want, hard)
    if soft < target:
        resource.setrlimit(resource.RLIMIT_NOFILE, (target, hard))
    return resource.getrlimit(resource.RLIMIT_NOFILE)[0]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1100)
    p.add_argument("--sessions", type=int, default=2000)
    p.add_argument("--concurrency", type=int, default=10)
    p.add_argument(
        "--user",
        action="append",
        help="user to log in as (repeat; slot j takes the j-th); default u0..u{concurrency-1}",
    )
    p.add_argument("--password", default="secret")
    p.add_argument(
        "--engine",
        choices=("epoll", "asyncio", "poplib"),
        default="epoll",
        help="epoll: bare select.epoll loop (lightest); asyncio: Protocol state "
        "machine; poplib: the standard client, one thread per concurrent session",
    )
    a = p.parse_args()
    raise_nofile(a.concurrency * 2 + 64)
    users = a.user or [f"u{j}" for j in range(a.concurrency)]
    if a.engine == "poplib":
        r = run_poplib(a.host, a.port, a.sessions, a.concurrency, users, a.password)
    elif a.engine == "epoll":
        r = run_sessions_epoll(a.host, a.port, a.sessions, a.concurrency, users, a.password)
    else:
        r = asyncio.run(run_sessions(a.host, a.port, a.sessions, a.concurrency, users, a.password))
    print(r)
    if r.first_error:
        print("first error:", r.first_error)
    print(
        f"median latency {statistics.median(r.latencies) * 1000 if r.latencies else 0:.2f} ms"
        f" (pid {os.getpid()})"
    )


if __name__ == "__main__":
    main()
