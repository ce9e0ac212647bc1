"""A bounded soak of one fakepop3 server: many sessions, many clients, faults, then a leak check.

    python bench/soak.py                      # 100,000 sessions, 100 concurrent clients
    python bench/soak.py --sessions 20000 --concurrency 50
    python bench/soak.py --quick              # ~1,500 sessions, for the smoke test
    python bench/soak.py --json               # the report as one JSON object
    python bench/soak.py --cli                # 100,000 sessions through the standalone program
    python bench/soak.py --cli --no-resets --history-limit none   # the yardstick: no bound

``--cli`` runs ``python -m fakepop3`` with a config (users, an mbox each, fault rules for a few
"chaos" users and connect faults for all), a history file and a ready file; the clients mix
complete sessions, DELE, drops (at the greeting, in the middle), garbage, wrong passwords and
CAPA; a SIGHUP reset ends each round (``--no-resets``: none, and DELE is taken back by RSET).
It reports the program's RSS at start, after the first round, in the middle and at the end,
and checks that the history file holds whole lines only and the program exits 0.

The server runs in a subprocess (this script with ``--serve``), so that its file descriptors,
memory and asyncio tasks can be measured on their own.  The clients are raw asyncio connections
in this process, each running a mix of scenarios: complete sessions checked for consistency
(STAT against LIST, RETR sizes against LIST, DELE/RSET, UIDs), deletions committed by QUIT,
pipelining, garbage lines, wrong passwords, second logins that must get ``-ERR [IN-USE]``,
and abrupt drops (at the greeting, after DELE, in the middle of a RETR).  A few users
("chaos" users) have fault rules (``server.faults``: errors, disconnects, truncated and
malformed replies, delays), and connect faults hit anyone now and then.

Every user belongs to one client worker, which checks across sessions that a message deleted
and QUIT is gone for good, and that a message deleted by a session that was dropped is still
there (nothing is deleted without UPDATE).  The server refills mailboxes when sessions end.

The run is split in rounds.  After each round every client connection is closed, the script
waits until the server has recorded the end of every session, and then asks the server for its
figures: open file descriptors (/proc/self/fd), RSS, asyncio tasks, live connections, sessions
not ended, locked maildrops and internal errors.  Round 1 is the warm-up baseline; a leak is
reported when later rounds hold more descriptors or tasks than the baseline, any connection,
session or lock is left over, or RSS grew by more than ``--rss-slack`` MiB.

Exit status: 0 when no client saw an error and nothing leaked, 1 otherwise.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import gc
import hashlib
import json
import mailbox
import os
import random
import re
import signal
import subprocess
import sys
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

PASSWORD = "soak-pw"
MESSAGES_PER_USER = 6
MAX_BAD = 4
READ_TIMEOUT = 30.0  # a reply later than this is a hang: an error


# ============================================================================================
# The server side (``--serve``): a thread-hosted POP3Server answering "stats" on stdin.
# ============================================================================================
def soak_messages(rng: random.Random) -> list[bytes]:
    """A maildrop's worth of mail: small ones, dot-stuffing cases, one of ~64 KiB."""
    size = rng.randrange(1000)
    return [
        b"Subject: hello\r\n\r\nHi!\r\n",
        b"Subject: dots\r\n\r\n.leading\r\n.\r\n..two\r\nend\r\n",
        b"Subject: lf\n\nbare LF line ends\nsecond\n",
        b"Subject: pad\r\n\r\n" + b"x" * size + b"\r\n",
        b"Subject: empty body\r\n\r\n",
        b"Subject: big\r\n\r\n" + (b"y" * 78 + b"\r\n") * 800,
    ][:MESSAGES_PER_USER]


def rss_kib() -> int:
    try:
        with open("/proc/self/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
    except OSError:
        pass
    import resource

    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss)


def count_fds() -> int:
    try:
        return len(os.listdir("/proc/self/fd")) - 1  # minus the one listdir opened
    except OSError:
        return -1


def serve(args: argparse.Namespace) -> int:
    from fakepop3 import POP3Server, SessionRecord

    rng = random.Random(args.seed)
    normal = [f"user{i}" for i in range(args.concurrency)]
    chaos = [f"chaos{i}" for i in range(max(1, min(args.concurrency, 20) // 2))]
    users = {name: PASSWORD for name in normal + chaos}

    def refill(record: SessionRecord) -> None:
        if record.user is not None:
            inbox = server.mailbox(record.user)
            missing = MESSAGES_PER_USER - len(inbox)
            if missing > 0:
                inbox.extend(soak_messages(rng)[:missing])

    server = POP3Server(users=users, max_bad_commands=MAX_BAD, on_session_end=refill, timeout=60)
    for name in users:
        server.mailbox(name).extend(soak_messages(rng))
    faults = server.faults
    for name in chaos:
        faults.on("RETR", user=name, probability=0.2).error("Try later", code="SYS/TEMP")
        faults.on("RETR", user=name, probability=0.1).disconnect(after_bytes=100)
        faults.on("LIST", user=name, probability=0.1).disconnect()
        faults.on("STAT", user=name, probability=0.2).delay(0.002)
        faults.on("UIDL", user=name, probability=0.1).truncate()
        faults.on("TOP", user=name, probability=0.2).malformed("bare-lf")
        faults.on("DELE", user=name, probability=0.1).error("Not now")
        faults.on("QUIT", user=name, probability=0.1).disconnect()
    faults.on_connect(probability=0.002).refuse()
    faults.on_connect(probability=0.002).error("Busy, try later", code="SYS/TEMP")
    faults.on_connect(probability=0.005).delay(0.002)

    def stats(clear: bool) -> dict[str, Any]:
        loop = server._loop
        assert loop is not None

        async def inside() -> dict[str, Any]:
            sessions = server.history.sessions
            return {
                "tasks": len(asyncio.all_tasks()) - 1,  # minus this one
                "connections": len(server._connections),
                "open_sessions": sum(1 for s in sessions if not s.ended),
                "ended": server.history.ended_sessions,
                "locked": [m.name for m in server.store if m.locked],
            }

        figures = asyncio.run_coroutine_threadsafe(inside(), loop).result(30)
        if clear:
            server.history.clear()
        gc.collect()
        figures.update(
            fds=count_fds(),
            rss_kib=rss_kib(),
            errors=[repr(e)[:300] for e in server.errors[:5]],
            error_count=len(server.errors),
            fired={rule.description: rule.fired for rule in faults.rules if rule.fired},
        )
        return figures

    with server:
        print(json.dumps({"port": server.port, "users": normal, "chaos": chaos}), flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "wait":
                try:
                    server.wait_for_sessions(int(words[1]), timeout=float(words[2]))
                    answer: dict[str, Any] = {"ok": True}
                except TimeoutError as error:
                    answer = {"ok": False, "error": str(error)}
            elif words[0] == "stats":
                answer = stats(clear=len(words) > 1 and words[1] == "clear")
            elif words[0] == "quit":
                break
            else:
                answer = {"error": f"unknown request {words[0]!r}"}
            print(json.dumps(answer), flush=True)
    return 0


# ============================================================================================
# The client side.
# ============================================================================================
class ProtocolError(Exception):
    """A reply the server should not have sent."""


class Hang(Exception):
    """The server did not answer within READ_TIMEOUT."""


class Refused(Exception):
    """The connection was closed or refused at the greeting (a connect fault)."""


class Conn:
    """One raw POP3 connection."""

    def __init__(
        self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter, strict: bool
    ) -> None:
        self.reader = reader
        self.writer = writer
        self.strict = strict  # False on chaos users: LF line ends (a malformed fault) pass
        self.greeting = b""

    @classmethod
    async def open(cls, port: int, stats: Stats, strict: bool = True) -> Conn:
        reader, writer = await asyncio.open_connection("127.0.0.1", port, limit=1 << 20)
        stats.connections += 1
        conn = cls(reader, writer, strict)
        try:
            conn.greeting = await conn.line()
        except (ConnectionError, asyncio.IncompleteReadError) as error:
            conn.abort()
            raise Refused("closed before the greeting") from error
        if conn.greeting.startswith(b"-ERR"):
            conn.abort()
            raise Refused(conn.greeting.decode(errors="replace").strip())
        expect(conn.greeting.startswith(b"+OK "), "greeting", conn.greeting)
        return conn

    async def line(self) -> bytes:
        """One line, with its CRLF (LF alone, like poplib, when not strict)."""
        try:
            line = await asyncio.wait_for(self.reader.readuntil(b"\n"), READ_TIMEOUT)
        except asyncio.TimeoutError as error:
            raise Hang(f"no reply line within {READ_TIMEOUT}s") from error
        if not line.endswith(b"\r\n"):
            expect(not self.strict, "a line end that is not CRLF", line)
            line = line[:-1] + b"\r\n"
        return line

    def send(self, *lines: bytes) -> None:
        self.writer.write(b"".join(line + b"\r\n" for line in lines))

    async def cmd(self, line: bytes) -> bytes:
        self.send(line)
        return await self.line()

    async def ok(self, line: bytes) -> bytes:
        reply = await self.cmd(line)
        expect(reply.startswith(b"+OK"), line.decode(errors="replace"), reply)
        return reply

    async def multi(self, line: bytes | None = None) -> list[bytes]:
        """Send ``line`` (if given) and read a multi-line +OK reply; its unstuffed lines."""
        if line is not None:
            self.send(line)
        status = await self.line()
        expect(status.startswith(b"+OK"), f"{line!r}", status)
        lines: list[bytes] = []
        while True:
            raw = await self.line()
            if raw == b".\r\n":
                return lines
            lines.append(raw[1:-2] if raw.startswith(b".") else raw[:-2])

    async def eof(self) -> None:
        try:
            rest = await asyncio.wait_for(self.reader.read(), READ_TIMEOUT)
        except asyncio.TimeoutError as error:
            raise Hang("the server did not close after QUIT") from error
        expect(rest == b"", "end of session", rest)
        self.writer.close()

    def abort(self) -> None:
        self.writer.transport.abort()


def expect(condition: bool, what: str, got: object) -> None:
    if not condition:
        text = got.decode(errors="replace") if isinstance(got, bytes) else repr(got)
        raise ProtocolError(f"{what}: unexpected {text[:200]!r}")


@dataclass
class Stats:
    connections: int = 0
    sessions: int = 0
    scenarios: collections.Counter[str] = field(default_factory=collections.Counter)
    errors: collections.Counter[str] = field(default_factory=collections.Counter)
    examples: list[str] = field(default_factory=list)
    connect_faults: int = 0
    chaos_outcomes: collections.Counter[str] = field(default_factory=collections.Counter)
    in_use_retries: int = 0

    def error(self, kind: str, detail: str) -> None:
        self.errors[kind] += 1
        if sum(1 for e in self.examples if e.startswith(kind)) < 4:
            self.examples.append(f"{kind}: {detail}")


@dataclass
class Worker:
    """One client worker: owns one user, remembers which UIDs must (not) come back."""

    port: int
    user: str
    chaos_user: str | None
    rng: random.Random
    stats: Stats
    gone: set[str] = field(default_factory=set)  # deleted and QUIT: must never show again
    kept: set[str] = field(default_factory=set)  # deleted, then dropped: must still be there

    # --- building blocks ------------------------------------------------------------------
    async def login(self, conn: Conn, user: str | None = None) -> None:
        user = user or self.user
        how = self.rng.randrange(4)
        if how == 0:
            stamp = re.search(rb"<[^>]+>", conn.greeting)
            expect(stamp is not None, "APOP timestamp", conn.greeting)
            assert stamp is not None
            digest = hashlib.md5(stamp.group() + PASSWORD.encode()).hexdigest()
            reply = await conn.cmd(f"APOP {user} {digest}".encode())
        elif how == 1:
            token = base64.b64encode(f"\0{user}\0{PASSWORD}".encode())
            reply = await conn.cmd(b"AUTH PLAIN " + token)
        elif how == 2:
            expect((await conn.cmd(b"AUTH LOGIN")).startswith(b"+ "), "AUTH LOGIN", b"")
            expect((await conn.cmd(base64.b64encode(user.encode()))).startswith(b"+ "), "", b"")
            reply = await conn.cmd(base64.b64encode(PASSWORD.encode()))
        else:
            await conn.ok(f"USER {user}".encode())
            reply = await conn.cmd(f"PASS {PASSWORD}".encode())
        if reply.startswith(b"-ERR [IN-USE]"):
            raise InUse()
        expect(reply == b"+OK Logged in.\r\n", "login", reply)

    async def session(self, user: str | None = None) -> Conn:
        """A connection logged in as ``user``, retrying while a dropped session's lock lingers."""
        deadline = time.monotonic() + 5
        while True:
            conn = await Conn.open(self.port, self.stats, strict=user is None)
            try:
                await self.login(conn, user)
                return conn
            except InUse:
                conn.abort()
                self.stats.in_use_retries += 1
                if time.monotonic() > deadline:
                    raise ProtocolError("maildrop locked 5 s after its session ended") from None
                await asyncio.sleep(0.002)

    async def check_listing(self, conn: Conn) -> tuple[list[int], list[str]]:
        """STAT, LIST and UIDL agree; deleted-and-QUIT UIDs are gone, dropped ones are kept."""
        stat = (await conn.ok(b"STAT")).split()
        sizes = [int(line.split()[1]) for line in await conn.multi(b"LIST")]
        uids = [line.split()[1].decode() for line in await conn.multi(b"UIDL")]
        expect(int(stat[1]) == len(sizes) == len(uids), "STAT/LIST/UIDL counts", stat)
        expect(int(stat[2]) == sum(sizes), "STAT size against LIST", stat)
        expect(not self.gone & set(uids), "a message deleted at QUIT came back", self.gone)
        expect(self.kept <= set(uids), "a message deleted by a dropped session vanished", b"")
        return sizes, uids

    async def retr(self, conn: Conn, number: int, size: int) -> None:
        conn.send(f"RETR {number}".encode())
        status = await conn.line()
        expect(status == f"+OK {size} octets\r\n".encode(), "RETR status", status)
        received = 0
        while (raw := await conn.line()) != b".\r\n":
            received += len(raw) - (1 if raw.startswith(b".") else 0)
        expect(received == size, f"RETR octets against LIST {size}", received)

    # --- scenarios ------------------------------------------------------------------------
    async def full(self) -> None:
        conn = await self.session()
        sizes, _ = await self.check_listing(conn)
        if sizes:
            n = self.rng.randrange(len(sizes)) + 1
            await self.retr(conn, n, sizes[n - 1])
            expect(bool(await conn.multi(f"TOP {n} 0".encode())), "TOP", b"")
            await conn.ok(f"DELE {n}".encode())
            expect((await conn.cmd(f"RETR {n}".encode())).startswith(b"-ERR"), "deleted", b"")
            stat = (await conn.ok(b"STAT")).split()
            expect(int(stat[1]) == len(sizes) - 1, "STAT after DELE", stat)
            await conn.ok(b"RSET")
            stat = (await conn.ok(b"STAT")).split()
            expect(int(stat[1]) == len(sizes), "STAT after RSET", stat)
        await conn.ok(b"NOOP")
        await conn.ok(b"QUIT")
        await conn.eof()

    async def delete(self) -> None:
        conn = await self.session()
        _, uids = await self.check_listing(conn)
        if uids:
            await conn.ok(b"DELE 1")
            await conn.ok(b"QUIT")
            await conn.eof()
            self.gone.add(uids[0])
            self.kept.discard(uids[0])
        else:
            await conn.ok(b"QUIT")
            await conn.eof()

    async def drop_after_dele(self) -> None:
        conn = await self.session()
        _, uids = await self.check_listing(conn)
        if uids:
            await conn.ok(b"DELE 1")
            self.kept.add(uids[0])
        conn.abort()

    async def drop_mid_retr(self) -> None:
        conn = await self.session()
        sizes, _ = await self.check_listing(conn)
        if sizes:
            n = max(range(len(sizes)), key=lambda i: sizes[i]) + 1
            conn.send(f"RETR {n}".encode())
            expect((await conn.line()).startswith(b"+OK"), "RETR", b"")
            await conn.line()
        conn.abort()

    async def drop_at_greeting(self) -> None:
        reader, writer = await asyncio.open_connection("127.0.0.1", self.port)
        self.stats.connections += 1
        if self.rng.random() < 0.5:
            await reader.read(1)
        writer.transport.abort()

    async def pipelined(self) -> None:
        conn = await Conn.open(self.port, self.stats)
        conn.send(
            f"USER {self.user}".encode(), f"PASS {PASSWORD}".encode(), b"STAT", b"LIST", b"UIDL",
            b"NOOP", b"QUIT",
        )  # fmt: skip
        expect(await conn.line() == b"+OK\r\n", "USER", b"")
        reply = await conn.line()
        if reply.startswith(b"-ERR [IN-USE]"):  # a dropped session's lock lingers: fine
            self.stats.in_use_retries += 1
            conn.abort()
            return
        expect(reply == b"+OK Logged in.\r\n", "PASS", reply)
        count = int((await conn.line()).split()[1])
        expect(len(await conn.multi()) == count, "pipelined LIST", b"")
        expect(len(await conn.multi()) == count, "pipelined UIDL", b"")
        expect(await conn.line() == b"+OK\r\n", "NOOP", b"")
        expect((await conn.line()).startswith(b"+OK"), "QUIT", b"")
        await conn.eof()

    async def garbage(self) -> None:
        conn = await Conn.open(self.port, self.stats)
        if self.rng.random() < 0.5:
            conn.writer.write(b"X" * 5000)  # overlong, then a normal end
            reply = await conn.cmd(b"")
            expect(reply.startswith(b"-ERR Command line too long"), "overlong", reply)
            await conn.ok(b"QUIT")
            await conn.eof()
            return
        for _ in range(MAX_BAD):
            reply = await conn.cmd(self.rng.choice([b"HELO x", b"\xff\xfe", b"", b"GET /"]))
            expect(reply.startswith(b"-ERR"), "garbage", reply)
        expect(reply.startswith(b"-ERR Too many invalid commands"), "bad-command limit", reply)
        await conn.eof()

    async def wrong_password(self) -> None:
        conn = await Conn.open(self.port, self.stats)
        await conn.ok(f"USER {self.user}".encode())
        reply = await conn.cmd(b"PASS not-the-password")
        expect(reply == b"-ERR [AUTH] Authentication failed.\r\n", "wrong password", reply)
        await conn.ok(b"QUIT")
        await conn.eof()

    async def in_use(self) -> None:
        first = await self.session()
        second = await Conn.open(self.port, self.stats)
        try:
            await self.login(second, self.user + "")
            raise ProtocolError("a second login to a locked maildrop succeeded")
        except InUse:
            pass
        await first.ok(b"QUIT")
        await first.eof()
        await second.ok(b"QUIT")
        await second.eof()

    async def capa(self) -> None:
        conn = await Conn.open(self.port, self.stats)
        caps = await conn.multi(b"CAPA")
        expect(b"USER" in caps and b"PIPELINING" in caps, "CAPA", caps)
        await conn.ok(b"QUIT")
        await conn.eof()

    async def chaos(self) -> None:
        """A full session on a user with fault rules: anything may happen except a hang."""
        assert self.chaos_user is not None
        try:
            conn = await self.session(self.chaos_user)
            sizes = [int(line.split()[1]) for line in await conn.multi(b"LIST")]
            await conn.ok(b"STAT")
            await conn.multi(b"UIDL")
            for n in range(1, len(sizes) + 1):
                await self.retr(conn, n, sizes[n - 1])
                await conn.multi(f"TOP {n} 1".encode())
            if sizes:
                await conn.ok(b"DELE 1")
            await conn.ok(b"QUIT")
            await conn.eof()
            self.stats.chaos_outcomes["clean"] += 1
        except (ProtocolError, InUse) as error:
            self.stats.chaos_outcomes[type(error).__name__] += 1
            if "conn" in locals():
                conn.abort()
        except (ConnectionError, asyncio.IncompleteReadError, asyncio.LimitOverrunError):
            self.stats.chaos_outcomes["disconnected"] += 1

    async def run(self, count: int) -> None:
        scenarios: list[tuple[str, Callable[[], Awaitable[None]], int]] = [
            ("full", self.full, 30),
            ("delete", self.delete, 12),
            ("drop_after_dele", self.drop_after_dele, 8),
            ("drop_mid_retr", self.drop_mid_retr, 5),
            ("drop_at_greeting", self.drop_at_greeting, 5),
            ("pipelined", self.pipelined, 10),
            ("garbage", self.garbage, 6),
            ("wrong_password", self.wrong_password, 6),
            ("in_use", self.in_use, 4),
            ("capa", self.capa, 4),
        ]
        if self.chaos_user is not None:  # one worker per chaos user: no lock contention
            scenarios.append(("chaos", self.chaos, 40))
        names = [s[0] for s in scenarios]
        weights = [s[2] for s in scenarios]
        table = {s[0]: s[1] for s in scenarios}
        for _ in range(count):
            name = self.rng.choices(names, weights)[0]
            self.stats.scenarios[name] += 1
            self.stats.sessions += 1
            try:
                await table[name]()
            except Refused:
                self.stats.connect_faults += 1
            except Hang as error:
                self.stats.error("hang", f"{name}: {error}")
            except ProtocolError as error:
                self.stats.error("protocol", f"{name}: {error}")
            except (ConnectionError, asyncio.IncompleteReadError, OSError) as error:
                self.stats.error("connection", f"{name}: {type(error).__name__}: {error}")


class InUse(Exception):
    """The login got -ERR [IN-USE]."""


class ServerProcess:
    """The server subprocess and its request/answer channel."""

    def __init__(self, args: argparse.Namespace) -> None:
        command = [
            sys.executable, str(Path(__file__).resolve()), "--serve",
            "--concurrency", str(args.concurrency), "--seed", str(args.seed),
        ]  # fmt: skip
        self.proc = subprocess.Popen(
            command, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1
        )
        self.hello = self.read()

    def read(self) -> dict[str, Any]:
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()
        if not line:
            raise RuntimeError(f"the soak server exited (status {self.proc.wait()})")
        answer: dict[str, Any] = json.loads(line)
        return answer

    def ask(self, request: str) -> dict[str, Any]:
        assert self.proc.stdin is not None
        self.proc.stdin.write(request + "\n")
        self.proc.stdin.flush()
        return self.read()

    def close(self) -> int:
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("quit\n")
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        return self.proc.wait(60)


async def run_round(
    port: int, users: list[str], chaos: list[str], sessions: int, rng: random.Random, stats: Stats
) -> None:
    workers = [
        Worker(port, user, chaos[i] if i < len(chaos) else None, random.Random(rng.random()), stats)
        for i, user in enumerate(users)
    ]
    share, extra = divmod(sessions, len(workers))
    await asyncio.gather(*(w.run(share + (i < extra)) for i, w in enumerate(workers)))


def soak(args: argparse.Namespace) -> dict[str, Any]:
    rng = random.Random(args.seed)
    server = ServerProcess(args)
    port, users, chaos = server.hello["port"], server.hello["users"], server.hello["chaos"]
    stats = Stats()
    rounds: list[dict[str, Any]] = []
    per_round = [args.sessions // args.rounds] * args.rounds
    per_round[-1] += args.sessions - sum(per_round)
    started = time.monotonic()
    loop = asyncio.new_event_loop()
    try:
        for index, count in enumerate(per_round, 1):
            t0 = time.monotonic()
            loop.run_until_complete(run_round(port, users, chaos, count, rng, stats))
            waited = server.ask(f"wait {stats.connections} 60")
            figures = server.ask("stats clear")
            figures.update(
                round=index,
                sessions=count,
                seconds=round(time.monotonic() - t0, 2),
                all_ended=waited["ok"],
                client_tasks=len(asyncio.all_tasks(loop)),
            )
            rounds.append(figures)
            if not args.json:
                print(
                    f"round {index}/{args.rounds}: {count} sessions in {figures['seconds']} s, "
                    f"fds {figures['fds']}, RSS {figures['rss_kib'] / 1024:.1f} MiB, "
                    f"tasks {figures['tasks']}, connections {figures['connections']}, "
                    f"open sessions {figures['open_sessions']}, errors so far "
                    f"{sum(stats.errors.values())}",
                    flush=True,
                )
    finally:
        loop.close()
        status = server.close()
    elapsed = time.monotonic() - started
    return report(args, stats, rounds, elapsed, status)


def report(
    args: argparse.Namespace,
    stats: Stats,
    rounds: list[dict[str, Any]],
    elapsed: float,
    status: int,
) -> dict[str, Any]:
    base = rounds[0] if len(rounds) == 1 else rounds[1] if args.rounds > 2 else rounds[0]
    last = rounds[-1]
    leaks: list[str] = []
    for r in rounds:
        if not r["all_ended"]:
            leaks.append(f"round {r['round']}: not every session ended on the server")
        for key in ("connections", "open_sessions"):
            if r[key]:
                leaks.append(f"round {r['round']}: {r[key]} {key.replace('_', ' ')} left")
        if r["locked"]:
            leaks.append(f"round {r['round']}: maildrops still locked: {r['locked'][:5]}")
    if last["fds"] > base["fds"]:
        leaks.append(f"file descriptors grew from {base['fds']} to {last['fds']}")
    if last["tasks"] > base["tasks"]:
        leaks.append(f"asyncio tasks grew from {base['tasks']} to {last['tasks']}")
    growth = (last["rss_kib"] - base["rss_kib"]) / 1024
    if growth > args.rss_slack:
        leaks.append(f"RSS grew by {growth:.1f} MiB (more than {args.rss_slack} MiB)")
    fired = last["fired"]
    # Connections refused or greeted with -ERR by a connect fault.  A client that hangs up at
    # once may not see its fault, so it sees at most as many as fired, never more.
    connect_fired = sum(
        v for k, v in fired.items() if "on connect" in k and not k.startswith("delay")
    )
    if stats.connect_faults > connect_fired:
        leaks.append(f"clients saw {stats.connect_faults} connect faults, {connect_fired} fired")
    server_errors = last["error_count"]
    if server_errors:
        leaks.append(f"{server_errors} error(s) inside the server: {last['errors']}")
    if status != 0:
        leaks.append(f"the server process exited with status {status}")
    result = {
        "sessions": stats.sessions,
        "connections": stats.connections,
        "concurrency": args.concurrency,
        "seconds": round(elapsed, 1),
        "sessions_per_second": round(stats.sessions / elapsed, 1),
        "scenarios": dict(stats.scenarios),
        "errors": dict(stats.errors),
        "error_examples": stats.examples,
        "connect_faults_seen": stats.connect_faults,
        "connect_faults_fired": connect_fired,
        "chaos_outcomes": dict(stats.chaos_outcomes),
        "in_use_retries": stats.in_use_retries,
        "faults_fired": fired,
        "baseline_round": base["round"],
        "fds": [base["fds"], last["fds"]],
        "rss_mib": [round(base["rss_kib"] / 1024, 1), round(last["rss_kib"] / 1024, 1)],
        "server_tasks": [base["tasks"], last["tasks"]],
        "rounds": [
            {k: r[k] for k in ("round", "sessions", "seconds", "fds", "rss_kib", "tasks")}
            for r in rounds
        ],
        "leaks": leaks,
        "ok": not stats.errors and not leaks,
    }
    return result


# ============================================================================================
# Through the CLI (``--cli``): the standalone program over a long run, its RSS at start, middle
# and end (issue 22: the in-memory history is bounded, the history file keeps everything).
# ============================================================================================
CLI_CHAOS_FAULTS = [
    {"command": "RETR", "user": "{user}", "probability": 0.2, "action": "error", "text": "Try later"},
    {"command": "RETR", "user": "{user}", "probability": 0.1, "action": "disconnect", "after_bytes": 100},
    {"command": "LIST", "user": "{user}", "probability": 0.1, "action": "disconnect"},
    {"command": "UIDL", "user": "{user}", "probability": 0.1, "action": "truncate"},
    {"command": "QUIT", "user": "{user}", "probability": 0.1, "action": "disconnect"},
]  # fmt: skip
CLI_CONNECT_FAULTS = [
    {"on": "connect", "probability": 0.002, "action": "refuse"},
    {"on": "connect", "probability": 0.002, "action": "error", "text": "Busy, try later"},
]
CLI_SCENARIOS = (
    ("full", 40), ("dele", 10), ("drop_mid", 15), ("drop_at_greeting", 10), ("garbage", 10),
    ("wrong_password", 10), ("capa", 5),
)  # fmt: skip


def _toml(value: Any) -> str:
    if isinstance(value, str):
        return json.dumps(value)
    return str(value).lower() if isinstance(value, bool) else str(value)


def cli_config(users: list[str], chaos: list[str]) -> str:
    lines = ["max_bad_commands = 4", "timeout = 60", "", "[users]"]
    lines += [f'{name} = "{PASSWORD}"' for name in users + chaos]
    # The same small mbox for everyone (generated mail is built on RETR, which costs more than
    # the rest of a session: the soak is about the server, not the generator).
    lines += ["", "[load]"] + [f'{name} = "mail.mbox"' for name in users + chaos]
    rules = [dict(r, user=name) for name in chaos for r in CLI_CHAOS_FAULTS] + CLI_CONNECT_FAULTS
    for rule in rules:
        lines += ["", "[[faults]]"] + [f"{k} = {_toml(v)}" for k, v in rule.items()]
    return "\n".join(lines) + "\n"


def proc_rss_kib(pid: int) -> int:
    with open(f"/proc/{pid}/status") as status:
        for line in status:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


class CliServer:
    """``python -m fakepop3`` with a config, a history file and a ready file."""

    def __init__(self, directory: Path, config: str, history_limit: str) -> None:
        self.dir = directory
        (directory / "fakepop3.toml").write_text(config, "utf-8")
        box = mailbox.mbox(directory / "mail.mbox")
        for message in soak_messages(random.Random(1)):
            box.add(message)
        box.close()
        self.ready_file, self.history = directory / "ready.json", directory / "history.jsonl"
        self.stderr = (directory / "stderr.txt").open("wb")
        self.proc = subprocess.Popen(
            [
                sys.executable, "-m", "fakepop3", "--config", "fakepop3.toml", "--port", "0",
                "--ready-file", str(self.ready_file), "--history", str(self.history),
                "--history-limit", history_limit,
            ],
            cwd=directory, stdout=subprocess.DEVNULL, stderr=self.stderr,
            env={**os.environ, "PYTHONPATH": str(ROOT)},
        )  # fmt: skip
        self.ready = self.wait_ready(0)

    def wait_ready(self, resets: int) -> dict[str, Any]:
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"fakepop3 exited with status {self.proc.returncode}")
            try:
                ready: dict[str, Any] = json.loads(self.ready_file.read_text("utf-8"))
            except (FileNotFoundError, ValueError):
                ready = {}
            if ready.get("resets") == resets:
                return ready
            time.sleep(0.01)
        raise RuntimeError(f"no reset {resets} in the ready file within 120 s")

    def reset(self, resets: int) -> None:
        self.proc.send_signal(signal.SIGHUP)
        self.wait_ready(resets)

    def rss_kib(self) -> int:
        return proc_rss_kib(self.proc.pid)

    def stop(self) -> int:
        self.proc.send_signal(signal.SIGTERM)
        status = self.proc.wait(60)
        self.stderr.close()
        return status


@dataclass
class CliWorker:
    port: int
    user: str
    chaos: bool
    rng: random.Random
    stats: Stats
    keep_mail: bool = False

    async def login(self, conn: Conn) -> None:
        await conn.ok(f"USER {self.user}".encode())
        for _ in range(500):  # a dropped session of this user may hold the lock a moment
            reply = await conn.cmd(f"PASS {PASSWORD}".encode())
            if not reply.startswith(b"-ERR [IN-USE]"):
                expect(reply.startswith(b"+OK"), "PASS", reply)
                return
            self.stats.in_use_retries += 1
            await asyncio.sleep(0.002)
            await conn.ok(f"USER {self.user}".encode())
        raise ProtocolError(f"{self.user}: the maildrop stayed locked")

    async def scenario(self, name: str) -> None:
        conn = await Conn.open(self.port, self.stats, strict=not self.chaos)
        if name == "drop_at_greeting":
            conn.abort()
            return
        if name == "garbage":
            reply = await conn.cmd(
                b"XYZZY " + bytes(self.rng.randrange(33, 127) for _ in range(20))
            )
            expect(reply.startswith(b"-ERR"), "garbage", reply)
        elif name == "wrong_password":
            await conn.ok(f"USER {self.user}".encode())
            reply = await conn.cmd(b"PASS not-the-password")
            expect(reply.startswith(b"-ERR"), "a wrong PASS", reply)
        elif name == "capa":
            await conn.multi(b"CAPA")
        else:
            await self.login(conn)
            count = int((await conn.ok(b"STAT")).split()[1])
            if name == "drop_mid":
                conn.send(b"RETR 1" if count else b"LIST")
                conn.abort()
                return
            if name == "full":
                listing = await conn.multi(b"LIST")
                expect(len(listing) == count, "LIST against STAT", listing)
                await conn.multi(b"UIDL")
                if count:
                    await conn.multi(f"RETR {self.rng.randrange(count) + 1}".encode())
            elif name == "dele" and count:
                await conn.ok(b"DELE 1")
                if self.keep_mail:  # no reset will bring it back: take the deletion back
                    await conn.ok(b"RSET")
        await conn.ok(b"QUIT")
        await conn.eof()

    async def run(self, count: int) -> None:
        names = [n for n, _ in CLI_SCENARIOS]
        weights = [w for _, w in CLI_SCENARIOS]
        for _ in range(count):
            name = "full" if self.chaos else self.rng.choices(names, weights)[0]
            self.stats.sessions += 1
            self.stats.scenarios[name] += 1
            try:
                await self.scenario(name)
                if self.chaos:
                    self.stats.chaos_outcomes["clean"] += 1
            except Refused:
                self.stats.connect_faults += 1
            except (ProtocolError, ConnectionError, asyncio.IncompleteReadError) as error:
                if self.chaos:
                    self.stats.chaos_outcomes[type(error).__name__] += 1
                else:
                    self.stats.error(type(error).__name__, f"{name} {self.user}: {error}")
            except Hang as error:
                self.stats.error("Hang", f"{name} {self.user}: {error}")


async def _cli_round(workers: list[CliWorker], sessions: int) -> None:
    share, extra = divmod(sessions, len(workers))
    await asyncio.gather(*(w.run(share + (i < extra)) for i, w in enumerate(workers)))


def cli_soak(args: argparse.Namespace) -> dict[str, Any]:
    import tempfile

    rng = random.Random(args.seed)
    users = [f"user{i}" for i in range(args.concurrency)]
    chaos = [f"chaos{i}" for i in range(max(1, args.concurrency // 10))]
    stats = Stats()
    per_round = [args.sessions // args.rounds] * args.rounds
    per_round[-1] += args.sessions - sum(per_round)
    rss: list[dict[str, Any]] = []
    with tempfile.TemporaryDirectory(prefix="fakepop3-soak-") as tmp:
        server = CliServer(Path(tmp), cli_config(users, chaos), args.history_limit)
        port = server.ready["port"]
        rss.append({"after": 0, "rss_kib": server.rss_kib()})
        started = time.monotonic()
        loop = asyncio.new_event_loop()
        try:
            done = 0
            for index, count in enumerate(per_round, 1):
                workers = [
                    CliWorker(
                        port, u, u in chaos, random.Random(rng.random()), stats, not args.resets
                    )
                    for u in users + chaos
                ]
                loop.run_until_complete(_cli_round(workers, count))
                done += count
                if args.resets:
                    server.reset(index)  # fresh maildrops for the next round: a reset mixed in
                rss.append({"after": done, "rss_kib": server.rss_kib()})
                if not args.json:
                    print(
                        f"round {index}/{args.rounds}: {done:,} sessions, RSS "
                        f"{rss[-1]['rss_kib'] / 1024:.1f} MiB, errors "
                        f"{sum(stats.errors.values())}",
                        flush=True,
                    )
        finally:
            loop.close()
            status = server.stop()
        elapsed = time.monotonic() - started
        text = server.history.read_bytes()
        err = (Path(tmp) / "stderr.txt").read_text("utf-8", "replace")
    lines = text.splitlines()
    events = collections.Counter(json.loads(line)["event"] for line in lines)
    middle = rss[len(rss) // 2]
    result = {
        "mode": "cli",
        "history_limit": args.history_limit,
        "resets": args.resets,
        "sessions": stats.sessions,
        "concurrency": len(users) + len(chaos),
        "seconds": round(elapsed, 1),
        "sessions_per_second": round(stats.sessions / elapsed, 1),
        "rss_mib": {
            "start": round(rss[0]["rss_kib"] / 1024, 1),
            "first_round": round(rss[1]["rss_kib"] / 1024, 1),
            "middle": round(middle["rss_kib"] / 1024, 1),
            "end": round(rss[-1]["rss_kib"] / 1024, 1),
        },
        "rss_by_round": rss,
        "history_file": {
            "mib": round(len(text) / 2**20, 1),
            "whole_lines": text.endswith(b"\n") or not text,
            "events": dict(events),
        },
        "scenarios": dict(stats.scenarios),
        "chaos_outcomes": dict(stats.chaos_outcomes),
        "connect_faults_seen": stats.connect_faults,
        "in_use_retries": stats.in_use_retries,
        "errors": dict(stats.errors),
        "error_examples": stats.examples,
        "exit_status": status,
        "stderr": err[-2000:],
    }
    result["ok"] = (
        not stats.errors and status == 0 and not err and result["history_file"]["whole_lines"]
    )
    return result


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--sessions", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=100)
    parser.add_argument("--rounds", type=int, default=10)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--rss-slack", type=float, default=32.0, help="MiB of RSS growth allowed")
    parser.add_argument("--quick", action="store_true", help="~1,500 sessions (the smoke test)")
    parser.add_argument("--json", action="store_true", help="print the report as JSON")
    parser.add_argument("--serve", action="store_true", help=argparse.SUPPRESS)
    parser.add_argument(
        "--cli", action="store_true", help="soak the standalone program (python -m fakepop3)"
    )
    parser.add_argument(
        "--history-limit", default="1000", help="--cli: the program's --history-limit (or none)"
    )
    parser.add_argument(
        "--no-resets",
        dest="resets",
        action="store_false",
        help="--cli: no SIGHUP between rounds (the maildrops empty, the history only grows)",
    )
    args = parser.parse_args()
    if args.quick:
        args.sessions, args.concurrency, args.rounds = 1500, 20, 3
    if args.serve:
        return serve(args)
    if args.sessions < args.rounds or args.concurrency < 1 or args.rounds < 1:
        parser.error("need --rounds >= 1, --concurrency >= 1 and --sessions >= --rounds")
    result = cli_soak(args) if args.cli else soak(args)
    if args.json:
        print(json.dumps(result))
    else:
        shown = {k: v for k, v in result.items() if k not in ("rounds", "rss_by_round")}
        print(json.dumps(shown, indent=2))
        print("OK: no errors, no leaks" if result["ok"] else "FAILED: see errors and leaks")
    return 0 if result["ok"] else 1


if __name__ == "__main__":
    sys.exit(main())
