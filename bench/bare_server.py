"""The yardstick: a bare asyncio POP3 server (RFC 1939 core, no history, no extensions).

Everything fakepop3 is measured against.  Wire bytes of a RETR answer (status line,
dot-stuffed body, terminator) are built once per message; large answers are written
in slices of one shared buffer, paced by the transport's flow control, so serving a
big message to many clients does not copy it per client.

    python bench/bare_server.py --port 1100 --count 10 --size 3000   # any USER/PASS
"""

from __future__ import annotations

import argparse
import asyncio

CHUNK = 1 << 20


class Entry:
    __slots__ = ("raw", "retr", "size", "uid")

    def __init__(self, raw: bytes, uid: bytes) -> None:
        raw = raw.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
        self.raw = raw if raw.endswith(b"\r\n") else raw + b"\r\n"
        self.size, self.uid = len(self.raw), uid
        body = (b"\r\n" + self.raw).replace(b"\r\n.", b"\r\n..")[2:]
        self.retr = b"+OK %d octets\r\n%s.\r\n" % (self.size, body)


class Maildrop:
    def __init__(self, messages: list[bytes], users: dict[str, str] | None = None) -> None:
        self.users = {k.encode(): v.encode() for k, v in users.items()} if users else None
        self.set([Entry(m, b"bare-%d" % i) for i, m in enumerate(messages, 1)])

    def set(self, entries: list[Entry]) -> None:
        self.msgs = tuple(entries)
        self.stat, self.list, self.uidl = answers(self.msgs, None)


def answers(msgs: tuple[Entry, ...], dele: set[int] | None) -> tuple[bytes, bytes, bytes]:
    live = [(i, e) for i, e in enumerate(msgs, 1) if not dele or i not in dele]
    return (
        b"+OK %d %d\r\n" % (len(live), sum(e.size for _, e in live)),
        b"+OK\r\n" + b"".join([b"%d %d\r\n" % (i, e.size) for i, e in live]) + b".\r\n",
        b"+OK\r\n" + b"".join([b"%d %s\r\n" % (i, e.uid) for i, e in live]) + b".\r\n",
    )


class POP3(asyncio.Protocol):
    __slots__ = ("buf", "dele", "drop", "msgs", "out", "paused", "pos", "tr", "user")

    def __init__(self, drop: Maildrop) -> None:
        self.drop, self.buf, self.user, self.msgs, self.dele = drop, b"", None, None, None
        self.out, self.pos, self.paused = None, 0, False

    def connection_made(self, tr) -> None:  # type: ignore[no-untyped-def]
        self.tr = tr
        tr.write(b"+OK bare POP3 ready\r\n")

    def data_received(self, data: bytes) -> None:
        buf = self.buf + data if self.buf else data
        while self.out is None and not self.tr.is_closing():
            i = buf.find(b"\n")
            if i < 0:
                break
            cmd, _, arg = buf[:i].rstrip(b"\r").partition(b" ")
            buf = buf[i + 1 :]
            h, state = HANDLERS.get(cmd.upper(), (None, None))
            r = (
                b"-ERR unknown command\r\n"
                if h is None
                else h(self, arg)
                if state is None or state == (self.msgs is None)
                else b"-ERR wrong state\r\n"
            )
            if len(r) > CHUNK:
                self.out, self.pos = memoryview(r), 0
                self.pump()
            elif r:
                self.tr.write(r)
        self.buf = buf if len(buf) < 4096 else b""

    def pump(self) -> None:
        out, tr = self.out, self.tr
        while out is not None and not self.paused and not tr.is_closing():
            if self.pos >= len(out):
                self.out = out = None
                if self.buf:
                    self.data_received(b"")
            else:
                tr.write(out[self.pos : self.pos + CHUNK])
                self.pos += CHUNK

    def connection_lost(self, exc: Exception | None) -> None:
        self.out = None

    def pause_writing(self) -> None:
        self.paused = True

    def resume_writing(self) -> None:
        self.paused = False
        self.pump()

    def msg(self, arg: bytes) -> tuple[int, Entry | None]:
        n = int(arg) if arg.isdigit() else 0
        ok = 0 < n <= len(self.msgs) and not (self.dele and n in self.dele)  # type: ignore
        return n, self.msgs[n - 1] if ok else None  # type: ignore[index]

    def user_(self, arg: bytes) -> bytes:
        self.user = arg
        return b"+OK\r\n"

    def pass_(self, arg: bytes) -> bytes:
        users = self.drop.users
        if self.user is None or (users is not None and users.get(self.user) != arg):
            self.user = None
            return b"-ERR [AUTH] invalid login\r\n"
        self.msgs = self.drop.msgs
        return b"+OK logged in\r\n"

    def info(self, arg: bytes, which: int) -> bytes:
        if arg:
            n, e = self.msg(arg)
            return (
                b"-ERR no such message\r\n"
                if e is None
                else (
                    b"+OK %d %d\r\n" % (n, e.size) if which == 1 else b"+OK %d %s\r\n" % (n, e.uid)
                )
            )
        drop = self.drop
        if not self.dele and self.msgs is drop.msgs:
            return (drop.stat, drop.list, drop.uidl)[which]
        return answers(self.msgs, self.dele)[which]  # type: ignore[arg-type]

    def retr(self, arg: bytes) -> bytes:
        e = self.msg(arg)[1]
        return b"-ERR no such message\r\n" if e is None else e.retr

    def top(self, arg: bytes) -> bytes:
        a, _, k = arg.partition(b" ")
        e = self.msg(a)[1]
        if e is None or not k.isdigit():
            return b"-ERR no such message\r\n"
        head, sep, body = e.raw.partition(b"\r\n\r\n")
        text = head + sep + b"".join([ln + b"\r\n" for ln in body.split(b"\r\n")[:-1][: int(k)]])
        return b"+OK\r\n" + (b"\r\n" + text).replace(b"\r\n.", b"\r\n..")[2:] + b".\r\n"

    def dele_(self, arg: bytes) -> bytes:
        n, e = self.msg(arg)
        if e is None:
            return b"-ERR no such message\r\n"
        self.dele = (self.dele or set()) | {n}
        return b"+OK deleted\r\n"

    def rset(self, arg: bytes) -> bytes:
        self.dele = None
        return b"+OK\r\n"

    def quit(self, arg: bytes) -> bytes:
        if self.dele:  # UPDATE state
            gone = {id(self.msgs[n - 1]) for n in self.dele}  # type: ignore[index]
            self.drop.set([e for e in self.drop.msgs if id(e) not in gone])
        self.tr.write(b"+OK bye\r\n")
        self.tr.close()
        return b""


HANDLERS = {  # command: (handler, True = AUTHORIZATION only / False = TRANSACTION / None = any)
    b"USER": (POP3.user_, True),
    b"PASS": (POP3.pass_, True),
    b"QUIT": (POP3.quit, None),
    b"STAT": (lambda s, a: s.info(b"", 0), False),
    b"LIST": (lambda s, a: s.info(a, 1), False),
    b"UIDL": (lambda s, a: s.info(a, 2), False),
    b"RETR": (POP3.retr, False),
    b"TOP": (POP3.top, False),
    b"DELE": (POP3.dele_, False),
    b"RSET": (POP3.rset, False),
    b"NOOP": (lambda s, a: b"+OK\r\n", False),
}


async def start(
    host: str, port: int, messages: list[bytes], users: dict[str, str] | None = None, **kw: object
) -> asyncio.Server:
    """Serve ``messages`` (one maildrop shared by all users) on the running loop."""
    drop = Maildrop(messages, users)
    return await asyncio.get_running_loop().create_server(
        lambda: POP3(drop), host, port, backlog=kw.pop("backlog", 1024), **kw
    )  # type: ignore


def sample_messages(count: int, size: int) -> list[bytes]:
    line = b"." + b"x" * 70 + b"\r\n"
    return [
        b"Subject: message %d\r\nFrom: a@example.com\r\n\r\n" % i + line * (size // len(line))
        for i in range(1, count + 1)
    ]


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--port", type=int, default=1100)
    p.add_argument("--count", type=int, default=10)
    p.add_argument("--size", type=int, default=3000)
    a = p.parse_args()

    async def serve() -> None:
        srv = await start(a.host, a.port, sample_messages(a.count, a.size))
        host, port = srv.sockets[0].getsockname()[:2]
        print(f"listening on {host}:{port}", flush=True)
        await srv.serve_forever()

    try:
        asyncio.run(serve())
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    main()
