"""The speed tricks of fakepop3's hot paths, each measured against the plain way, in instructions.

Each trick of the "Speed notes" in ``bench/README.md`` is a pair here: a statement written the
plain way and the same statement with the trick, as the code that uses it writes it (a copy, so
that this file needs only the standard library and does not move when the package is
refactored).  ``valgrind --tool=callgrind`` counts the machine instructions of each, which are
the same from run to run on a busy machine.

    python bench/tricks.py                      # this Python: run callgrind, print the table
    python bench/tricks.py --json 3.11.json     # also keep the figures
    python bench/tricks.py --merge 3.1*.json    # one table, a column per Python version
    python bench/tricks.py --only enum-global,nul-find --n 1000
    python bench/tricks.py --list               # the pairs and where fakepop3 uses them
    strace -c python bench/tricks.py --inner --only recv-into --variant plain   # system calls

How: as with ``timeit``, each statement becomes a function ``setup; for _ in repeat(None, n):
statement``, its names local as in a method, module constants global as in fakepop3
(``is_plain`` tells the setup which of the two it is making).  One callgrind run per Python
executes every pair with ``--dump-before=os_getppid``: each ``os.getppid()`` call (a marker)
writes the count since the previous one.  Each function runs
``n`` times to warm up (CPython 3.11+ specializes its bytecode as it runs), then ``n`` times and
``2n`` times between markers: (count(2n) - count(n)) / n is the cost of one operation, and
start-up, imports, the setup and each call's fixed cost cancel out.  The empty loop's cost is
measured too and subtracted.  The cyclic garbage collector is off while a pair runs (the two
``gc-`` pairs call it themselves).

Instructions are not time: a system call counts for the few instructions around it (the pairs
marked "syscalls" save system calls; count them with ``strace -c``), a cache miss for one.

Rules for this file: a pair copies the statement as fakepop3 writes it, with the plain way the
code would be written without the trick; a stand-in class sets every attribute in ``__init__``
and has no class-level default (on 3.12+ a default slows every read of that name, which would
measure the stand-in, not the trick); a new trick gets a pair here and a paragraph in the
README's "Speed notes".
"""

from __future__ import annotations

import argparse
import asyncio
import collections
import dataclasses
import enum
import functools
import gc
import json
import os
import random  # noqa: F401 - used by the pairs' statements
import re
import socket  # noqa: F401 - used by the pairs' statements
import subprocess
import sys
import tempfile
import textwrap
import threading
import time
import tracemalloc
import typing  # noqa: F401 - used by the pairs' statements
from collections.abc import Callable, Iterator
from itertools import repeat
from pathlib import Path
from typing import Any, NamedTuple

Bench = Callable[[int], object]


@dataclasses.dataclass
class Pair:
    key: str
    what: str  # the plain way -> the trick
    where: str  # where fakepop3 uses the trick (module: names)
    plain: str
    trick: str
    setup: str = ""
    teardown: str = ""
    divisor: int = 1  # heavy statements run n // divisor times
    syscalls: bool = False  # saves system calls, which instructions do not show

    def bench(self, variant: str) -> Bench:
        body = self.plain if variant == "plain" else self.trick
        source = (
            f"def bench(n):\n    is_plain = {variant == 'plain'}\n"
            + textwrap.indent(textwrap.dedent(self.setup), "    ")
            + "\n    for _ in repeat(None, n):\n"
            + textwrap.indent(textwrap.dedent(body), "        ")
            + "\n"
            + textwrap.indent(textwrap.dedent(self.teardown), "    ")
        )
        namespace: dict[str, Any] = {}
        exec(compile(source, f"<{self.key} {variant}>", "exec"), globals(), namespace)
        bench: Bench = namespace["bench"]
        return bench


PAIRS: dict[str, Pair] = {}


def pair(key: str, what: str, where: str, **fields: Any) -> None:
    PAIRS[key] = Pair(key, what, where, **fields)


# --- stand-ins for fakepop3's objects (copies of today's code, cut down) ----------------------
class State(enum.Enum):
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"


_TRANSACTION = State.TRANSACTION
_CLOSED = State.CLOSED
_now = time.time
_monotonic = time.monotonic
_new_tuple = tuple.__new__
_NONE_DELETED: frozenset[int] = frozenset()
_SECRET = frozenset({"PASS", "APOP", "AUTH"})
_QUICK = {name.encode(): name for name in ("USER", "PASS", "STAT", "LIST", "UIDL", "RETR", "QUIT")}
_PARSED = {b"RETR 1\r\n": ("RETR", ("1",), ("1",))}
_STATUS = {b"+OK\r\n": "+OK", b"+OK Logged in.\r\n": "+OK Logged in."}
_RETR = {4321: b"+OK 4321 octets\r\n"}
_STATUS[_RETR[4321]] = "+OK 4321 octets"


class Send(NamedTuple):
    buffers: tuple[bytes, ...]

    @property
    def size(self) -> int:
        return sum(len(b) for b in self.buffers)


@dataclasses.dataclass(frozen=True)
class SendClass:
    buffers: tuple[bytes, ...]


class CommandRecord(NamedTuple):
    session_id: int
    client: tuple[str, int]
    user: str | None
    command: str
    args: tuple[str, ...]
    reply: str
    tls: bool
    received_at: float
    fault: str | None = None


_as_record = functools.partial(tuple.__new__, CommandRecord)
_ENTRY = (1, ("127.0.0.1", 4000), "alice", "RETR", ("1",), "+OK 120 octets", False, 0.5, None)


@dataclasses.dataclass
class SessionRecord:
    id: int
    client: tuple[str, int]
    started_at: float
    user: str | None = None
    tls: bool = False
    ended_at: float | None = None
    end_reason: str | None = None
    _log: list[tuple[Any, ...]] = dataclasses.field(default_factory=list, init=False)
    _slot: int = dataclasses.field(default=-1, init=False)


def attr_class(count: int, *, slots: bool = False, defaults: bool = False, unset: int = 0) -> type:
    """A class whose ``__init__`` sets attributes a0.. a{count-1} but the first ``unset``;
    with ``__slots__``, or with a class-level default (None) for each."""
    names = [f"a{i}" for i in range(count)]
    body = "".join(f"    self.{name} = {i}\n" for i, name in enumerate(names) if i >= unset)
    namespace: dict[str, Any] = {}
    exec(f"def __init__(self):\n{body}    pass\n", namespace)
    attrs: dict[str, Any] = {"__init__": namespace["__init__"]}
    if slots:
        attrs["__slots__"] = tuple(names)
    if defaults:
        attrs.update(dict.fromkeys(names))
    made = type(f"Attrs{count}", (), attrs)
    for _ in range(3):
        made()  # instances made before share the layout, as earlier sessions do
    return made


ATTRS = {
    "29": attr_class(29),
    "30": attr_class(30),
    "slots": attr_class(29, slots=True),
    "default-shadowed": attr_class(20, defaults=True),
    "default-unset": attr_class(20, defaults=True, unset=5),
    "no-default": attr_class(20),
}
_FOUR_READS_ONE_WRITE = "obj.a0; obj.a3; obj.a17; obj.a28; obj.a9 = 1"
_THREE_READS = "obj.a0; obj.a3; obj.a17"


class FakeSession:
    """What a session holds for its history entry, with Session._log and History._append."""

    def __init__(self) -> None:
        self.history = self  # the history's fields on the same object
        self.enabled = True
        self._commands: list[tuple[Any, ...]] = []
        self._listeners: list[Any] = []
        self.record = SessionRecord(1, ("127.0.0.1", 4000), 0.5)
        self.id = 1
        self.client = ("127.0.0.1", 4000)
        self.user = "alice"
        self.tls = False

    def _log(self, name: str, args: tuple[str, ...], status: str, fault: str | None) -> None:
        history = self.history
        if not history.enabled:
            return
        if name in _SECRET:
            args = ()
        entry = (self.id, self.client, self.user, name, args, status, self.tls, _now(), fault)
        history._append(self.record, entry)

    def _append(self, session: SessionRecord, entry: tuple[Any, ...]) -> None:
        session._log.append(entry)
        self._commands.append(entry)
        if self._listeners:
            raise AssertionError


def status_line(first: bytes) -> str:
    if type(first) is bytes:
        known = _STATUS.get(first)
        if known is not None:
            return known
    raise AssertionError


class Lane:
    """The fields the fast lane's two flags stand for (Session's and _Connection's)."""

    __slots__ = (
        "_discarding",
        "_lane_open",
        "_lines",
        "_partial",
        "_sasl",
        "_starting_tls",
        "active",
        "busy",
        "closing",
        "fast",
        "last_activity",
        "out",
        "paused_writing",
        "session",
        "state",
        "throttle",
    )

    def __init__(self) -> None:
        self._lines: list[bytes] = []
        self._partial = b""
        self._discarding = self._starting_tls = self.busy = self.closing = False
        self._sasl = self.out = self.throttle = None
        self.paused_writing = self.active = False
        self.state = _TRANSACTION
        self.session = self
        self._lane_open = self.fast = True
        self.last_activity = 0.0


class Faults:
    """A Faults with no rule: its hook takes the lock and finds nothing."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._rules: list[Any] = []
        self.armed = False

    def on_command(self, session: Any, command: str, args: tuple[str, ...]) -> Any:
        rule = self._fire("command", command, args, session.user)
        if rule is None:
            return None
        raise AssertionError

    def _fire(self, kind: str, command: str, args: tuple[str, ...], user: str | None) -> Any:
        with self._lock:
            if not self._rules:
                return None
        raise AssertionError


class Reply:
    def __init__(self) -> None:
        self.handlers = dict.fromkeys(_QUICK.values(), print)
        self.disabled_commands = frozenset({"APOP"})
        self.quick_handlers = {
            k: v for k, v in self.handlers.items() if k not in self.disabled_commands
        }


class Session:
    """Session.__init__ (keyword arguments, defaults filled in) and Session._setup."""

    def __init__(
        self,
        store: object,
        settings: object = None,
        *,
        history: object = None,
        client: tuple[str, int] = ("127.0.0.1", 0),
        tls: bool = False,
        faults: object = None,
        clock: Callable[[], float] = time.monotonic,
        auth: object = None,
    ) -> None:
        settings = settings or store
        faults = getattr(faults, "hook", faults)
        self._setup(
            store,
            settings,
            history if history is not None else store,
            client,
            tls,
            faults,
            clock,
            auth or store,
        )

    def _setup(
        self,
        store: object,
        settings: object,
        history: object,
        client: tuple[str, int],
        tls: bool,
        faults: object,
        clock: Callable[[], float],
        auth: object,
    ) -> None:
        self.store = store
        self.settings = settings
        self.history = history
        self.client = client
        self.tls = tls
        self.faults = faults
        self.clock = clock
        self.auth = auth


class Setup:
    """Session._setup's work as an ``__init__``."""

    def __init__(
        self,
        store: object,
        settings: object,
        history: object,
        client: tuple[str, int],
        tls: bool,
        faults: object,
        clock: Callable[[], float],
        auth: object,
    ) -> None:
        self.store = store
        self.settings = settings
        self.history = history
        self.client = client
        self.tls = tls
        self.faults = faults
        self.clock = clock
        self.auth = auth


class Message:
    __slots__ = ("_size", "_stuffed")

    def __init__(self) -> None:
        self._size: int | None = 120
        self._stuffed: bytes | None = b"x" * 120

    @property
    def size(self) -> int:
        if self._size is None:
            self._size = 0
        return self._size


class Server:
    def __init__(self) -> None:
        self._loop: asyncio.AbstractEventLoop | None = None


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _derive(key: int, index: int) -> int:
    z = (key + (index + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


def _size(key: int, index: int) -> int:
    u = (_derive(key, index) >> 11) / 9007199254740992.0
    return 300 + int(20_000 * (u * u * u))


_WRAP_RE = re.compile(r"(.{1,72})(?: |$)")
_PARAGRAPH = " ".join("Lorem ipsum dolor sit amet, consectetur adipiscing elit sed do.".split() * 6)


def commands(count: int, named: bool) -> list[tuple[Any, ...]]:
    """``count`` history entries made as the server makes them: the commands of a session share
    its client tuple; each command's arguments are a new tuple."""
    out: list[tuple[Any, ...]] = []
    for i in range(count):
        client = ("127.0.0.1", 40000 + i // 8)
        fields = (
            i // 8,
            client,
            f"u{i % 10}",
            "RETR",
            (str(i % 10),),
            "+OK 9 octets",
            False,
            i,
            None,
        )
        out.append(CommandRecord(*fields) if named else fields)
    return out


def sessions(count: int, named: bool) -> list[Any]:
    """``count`` ended sessions of ten commands each: SessionRecords or plain tuples."""
    out: list[Any] = []
    for j in range(count):
        log = commands(10, False)
        if named:
            record = SessionRecord(j, ("127.0.0.1", j), 0.5, "alice", False, 1.5, "quit")
            record._log = log
            out.append(record)
        else:
            out.append((j, ("127.0.0.1", j), 0.5, "alice", False, 1.5, "quit", tuple(log)))
    return out


_KEPT: dict[str, Any] = {}


def kept(key: str, make: Callable[[], Any]) -> Any:
    """What a gc pair keeps alive: made at its first call (the warm-up), dropped after it."""
    if key not in _KEPT:
        _KEPT[key] = make()
        gc.collect()  # the first pass untracks the plain tuples, as the server's gc does
    return _KEPT[key]


# --- the protocol core (protocol.py) ----------------------------------------------------------
pair(
    "enum-global",
    "State.X -> a module global _X",
    "protocol: _AUTHORIZATION.._CLOSED in Session's handlers; server: _CLOSED",
    setup="state = State.TRANSACTION",
    plain="state is State.TRANSACTION",
    trick="state is _TRANSACTION",
)
pair(
    "nul-find",
    'b"\\0" in data -> data.find(b"\\0") >= 0',
    "protocol: Session.answer_line, Session._command",
    setup='data = b"RETR 1\\r\\n"',
    plain='b"\\0" in data',
    trick='data.find(b"\\0") >= 0',
)
pair(
    "class-default-unset",
    "read an attribute the class defaults (None), unset on the instance -> set in __init__",
    "protocol: Session (every attribute set in Session._setup); 3 reads",
    setup='obj = ATTRS["default-unset"](); other = ATTRS["no-default"]()',
    plain=_THREE_READS,
    trick=_THREE_READS.replace("obj.", "other."),
)
pair(
    "class-default-shadowed",
    "read an attribute the class defaults, set on the instance -> no class default",
    "protocol: Session (no class-level defaults); 3 reads",
    setup='obj = ATTRS["default-shadowed"](); other = ATTRS["no-default"]()',
    plain=_THREE_READS,
    trick=_THREE_READS.replace("obj.", "other."),
)
pair(
    "attrs-under-30",
    "an object of 30 attributes -> 29 (4 reads, 1 write)",
    "protocol: Session (a test keeps it under 30 today)",
    setup='obj = ATTRS["30"](); other = ATTRS["29"]()',
    plain=_FOUR_READS_ONE_WRITE,
    trick=_FOUR_READS_ONE_WRITE.replace("obj.", "other."),
)
pair(
    "slots-read",
    "29 attributes, no __slots__ -> __slots__ (4 reads, 1 write)",
    "server: _Connection; store: Message (issue 16 plans __slots__ for Session)",
    setup='obj = ATTRS["29"](); other = ATTRS["slots"]()',
    plain=_FOUR_READS_ONE_WRITE,
    trick=_FOUR_READS_ONE_WRITE.replace("obj.", "other."),
)
pair(
    "slots-new",
    "make an object that sets 29 attributes: no __slots__ -> __slots__",
    "as slots-read: a Session and a _Connection per connection",
    setup='cls = ATTRS["29"]; slotted = ATTRS["slots"]',
    plain="cls()",
    trick="slotted()",
)
pair(
    "positional-new",
    "Session(store, settings, history=.., client=.., ...) -> Session.__new__ + _setup(positional)",
    "server: _Connection.connection_made; protocol: Session._setup",
    setup="store, client, clock = object(), ('127.0.0.1', 4000), time.monotonic",
    plain="Session(store, store, history=store, client=client, tls=False, faults=None, clock=clock, auth=store)",
    trick="s = Session.__new__(Session); s._setup(store, store, store, client, False, None, clock, store)",
)
pair(
    "kwargs-call",
    "a class called with keyword arguments -> positionally (the same __init__)",
    "as positional-new: the keyword arguments' share of it",
    setup="store, client, clock = object(), ('127.0.0.1', 4000), time.monotonic",
    plain="Setup(store, store, history=store, client=client, tls=False, faults=None, clock=clock, auth=store)",
    trick="Setup(store, store, store, client, False, None, clock, store)",
)
pair(
    "positional-dataclass",
    "SessionRecord(id=.., client=.., ...) -> SessionRecord(positional)",
    "history: History.open_session",
    setup="client = ('127.0.0.1', 4000)",
    plain="SessionRecord(id=1, client=client, started_at=0.5, user=None, tls=False)",
    trick="SessionRecord(1, client, 0.5, None, False)",
)
pair(
    "send-tuple-new",
    "Send((line,)) -> tuple.__new__(Send, ((line,),))",
    "protocol: Session.greeting (_new_tuple)",
    setup="line = b'+OK fakepop3 ready.\\r\\n'",
    plain="Send((line,))",
    trick="_new_tuple(Send, ((line,),))",
)
pair(
    "send-namedtuple",
    "a frozen dataclass -> a NamedTuple, one made per reply",
    "protocol: Send",
    setup="buffers = (b'+OK\\r\\n',)",
    plain="SendClass(buffers)",
    trick="Send(buffers)",
)
pair(
    "record-from-tuple",
    "CommandRecord(*fields) -> partial(tuple.__new__, CommandRecord)(fields)",
    "history: _as_record (SessionRecord.commands, History.commands, listeners)",
    setup="entry = _ENTRY",
    plain="CommandRecord(*entry)",
    trick="_as_record(entry)",
)
pair(
    "property-bypass",
    "message.size (a property) -> message._size, checked for None",
    "protocol: Session._cmd_retr (Message._size, _stuffed); server: _close_reason in buffer_updated",
    setup="message = Message()",
    plain="message.size",
    trick="size = message._size\nif size is None:\n    size = message.size",
)
pair(
    "status-cache",
    "decode a reply's status line -> dict.get on the shared cache",
    "protocol: _CONSTANT_STATUS in Session.answer_line and _status_line",
    setup="reply = b'+OK Logged in.\\r\\n'",
    plain="""
        if reply.endswith(b"\\r\\n") and reply.count(b"\\n") == 1:
            status = reply[:-2].decode("utf-8", "replace")
        """,
    trick="status = _STATUS.get(reply)\nif status is None:\n    raise AssertionError",
)
pair(
    "retr-status",
    "b'+OK %d octets' % size, decoded -> two dict lookups",
    "protocol: _RETR_STATUS in Session._cmd_retr, then _CONSTANT_STATUS",
    setup="size = 4321",
    plain='status = b"+OK %d octets\\r\\n" % size\nstatus[:-2].decode("utf-8", "replace")',
    trick="""
        status = _RETR.get(size)
        if status is None:
            raise AssertionError
        _STATUS.get(status)
        """,
)
pair(
    "parsed-lines",
    "parse b'RETR 1\\r\\n' -> dict.get of the lines already parsed",
    "protocol: _PARSED_LINES in Session.answer_line",
    setup="data, max_line = b'RETR 1\\r\\n', 255",
    plain="""
        end = len(data) - 1
        if end < 1 or end >= max_line or data.find(b"\\n") != end:
            raise AssertionError
        if data.find(b"\\0") >= 0:
            raise AssertionError
        line = data[: end - 1] if data[end - 1] == 13 else data[:end]
        keyword, _sep, rest = line.partition(b" ")
        name = _QUICK.get(keyword) or _QUICK.get(keyword.upper())
        text = rest.decode("utf-8")
        args = (text,) if name == "PASS" and text else tuple(text.split())
        logged = () if name in _SECRET else args
        """,
    trick="quick = _PARSED.get(data)\nif quick is not None:\n    name, args, logged = quick",
)
pair(
    "keyword-exact-first",
    "_QUICK.get(kw.upper()) -> _QUICK.get(kw) or _QUICK.get(kw.upper())",
    "protocol: Session.answer_line (a line not cached yet)",
    setup="keyword = b'RETR'",
    plain="_QUICK.get(keyword.upper())",
    trick="_QUICK.get(keyword) or _QUICK.get(keyword.upper())",
)
pair(
    "inline-log",
    "_status_line() + Session._log() + History._append() -> inlined",
    "protocol: Session.answer_line's history entry",
    setup="self = FakeSession(); reply, name, logged = (b'+OK\\r\\n',), 'NOOP', ()",
    plain="self._log(name, logged, status_line(reply[0]), None)",
    trick="""
        history = self.history
        if history.enabled:
            status = _STATUS.get(reply[0])
            if status is None:
                status = status_line(reply[0])
            entry = (self.id, self.client, self.user, name, logged, status, self.tls, _now(), None)
            self.record._log.append(entry)
            history._commands.append(entry)
            if history._listeners:
                raise AssertionError
        """,
)
pair(
    "log-entry-point",
    "one call to History._append(record, entry) -> its two appends inlined",
    "protocol: Session.answer_line (what one history entry point would cost it)",
    setup="self = FakeSession(); entry = _ENTRY",
    plain="self.history._append(self.record, entry)",
    trick="""
        history = self.history
        self.record._log.append(entry)
        history._commands.append(entry)
        if history._listeners:
            raise AssertionError
        """,
)
pair(
    "lane-flags",
    "12 conditions per packet -> one flag each side (_lane_open, fast)",
    "protocol: Session._lane_open (_refresh_lane); server: _Connection.fast (_refresh_fast)",
    setup="s = Lane()",
    plain="""
        if (s.session is None or s.busy or s.closing or s.out or s.paused_writing
                or s.throttle is not None):
            raise AssertionError
        if (s._lines or s._partial or s._discarding or s._sasl is not None
                or s._starting_tls or s.state is _CLOSED):
            raise AssertionError
        """,
    trick="""
        if not s.fast:
            raise AssertionError
        if not s._lane_open:
            raise AssertionError
        """,
)
pair(
    "faults-armed",
    "call the fault hook (no rule) -> read its `armed` flag",
    "faults: Faults.armed; protocol: Session.answer_line, Session._command",
    setup="session, faults, args = FakeSession(), Faults(), ('1',)",
    plain='if faults is not None:\n    faults.on_command(session, "RETR", args)',
    trick="if faults is not None and faults.armed:\n    raise AssertionError",
)
pair(
    "handlers-per-settings",
    "_HANDLERS.get(name) and `name in disabled` -> the settings' own handler dict",
    "protocol: _Reply.quick_handlers in Session.answer_line",
    setup="reply = Reply(); handlers = reply.handlers; name = 'RETR'",
    plain="""
        handler = handlers.get(name)
        if handler is None or name in reply.disabled_commands:
            raise AssertionError
        """,
    trick="handler = reply.quick_handlers.get(name)\nif handler is None:\n    raise AssertionError",
)
pair(
    "time-alias",
    "time.time() -> _now() (a module global)",
    "protocol: _now in Session.answer_line and Session._log",
    plain="time.time()",
    trick="_now()",
)
pair(
    "type-is",
    "isinstance(action, Send) -> type(action) is Send",
    "protocol: Session._after, _status_line; server: _Connection._process, _run",
    setup="action = Send((b'+OK\\r\\n',))",
    plain="isinstance(action, Send)",
    trick="type(action) is Send",
)
pair(
    "shared-empty-set",
    "set() per session -> one shared frozenset until the first DELE",
    "protocol: _NONE_DELETED, _NO_ANSWERS in Session._setup",
    plain="set()",
    trick="_NONE_DELETED",
)
pair(
    "list-not-deque",
    "collections.deque() -> [] per session",
    "protocol: Session._lines; server: _Connection.out (None until needed)",
    setup="deque = collections.deque",
    plain="deque()",
    trick="[]",
)

# --- the transport (server.py) ----------------------------------------------------------------
pair(
    "tobytes",
    "bytes(view[:n]) -> view[:n].tobytes()",
    "server: _Connection.buffer_updated",
    setup="view = memoryview(bytearray(64 * 1024)); count = 8",
    plain="bytes(view[:count])",
    trick="view[:count].tobytes()",
)
pair(
    "recv-into",
    "sock.recv(256 KiB) as asyncio.Protocol reads -> recv_into one buffer (BufferedProtocol)",
    "server: _Connection.get_buffer, buffer_updated; POP3Server._recv_buffer",
    setup="a, b = socket.socketpair(); buffer = memoryview(bytearray(64 * 1024)); line = b'RETR 1\\r\\n'",
    plain="a.send(line)\nb.recv(256 * 1024)",
    trick="a.send(line)\ngot = b.recv_into(buffer)\nbuffer[:got].tobytes()",
    teardown="a.close(); b.close()",
    syscalls=True,
)
pair(
    "one-write",
    "three writes (status, body, '.') -> b''.join, one write",
    "server: _Connection.buffer_updated, _write",
    setup="a, b = socket.socketpair(); buffer = memoryview(bytearray(64 * 1024))\n"
    "reply = (b'+OK 4321 octets\\r\\n', b'x' * 4321, b'.\\r\\n')",
    plain="for part in reply:\n    a.send(part)\nb.recv_into(buffer)",
    trick="a.send(b''.join(reply))\nb.recv_into(buffer)",
    teardown="a.close(); b.close()",
    syscalls=True,
)
pair(
    "stored-loop",
    "asyncio.get_running_loop() -> the loop the server recorded",
    "server: _Connection.connection_made",
    setup="loop = asyncio.new_event_loop(); server = Server(); server._loop = loop\n"
    "asyncio.events._set_running_loop(loop)",
    plain="asyncio.get_running_loop()",
    trick="got = server._loop\nif got is None:\n    got = asyncio.get_running_loop()",
    teardown="asyncio.events._set_running_loop(None); loop.close()",
    syscalls=True,
)
pair(
    "no-cast",
    "typing.cast(asyncio.Transport, base) -> an annotated assignment",
    "server: _Connection.connection_made",
    setup="base = object()",
    plain="transport = typing.cast(asyncio.Transport, base)",
    trick="transport: asyncio.Transport = base",
)
pair(
    "active-flag",
    "last_activity = monotonic() per read -> active = True (the sweep reads the clock)",
    "server: _Connection.buffer_updated, data_received; the idle sweep",
    setup="conn = Lane()",
    plain="conn.last_activity = _monotonic()",
    trick="conn.active = True",
)

# --- the history and the store (history.py, store.py) -----------------------------------------
pair(
    "lock-acquire",
    "with lock: -> lock.acquire(); lock.release()",
    "history: History.close_session; store: Mailbox.login",
    setup="lock = threading.Lock()",
    plain="with lock:\n    pass",
    trick="lock.acquire()\nlock.release()",
)
pair(
    "lock-not-condition",
    "with condition: -> with lock: (the condition shares the lock)",
    "history: History._lock and _ended_changed",
    setup="lock = threading.Lock(); condition = threading.Condition(lock)",
    plain="with condition:\n    pass",
    trick="with lock:\n    pass",
)
pair(
    "no-lock-append",
    "with lock: list.append(x) -> list.append(x) (atomic)",
    "history: History._append, open_session, Session.answer_line; store: MailStore.get (dict.get)",
    setup="lock = threading.Lock(); log = []; entry = (1, 'RETR')",
    plain="with lock:\n    log.append(entry)",
    trick="log.append(entry)",
)
pair(
    "gc-commands",
    "a full gc.collect() over 100,000 commands: NamedTuples -> plain tuples",
    "history: SessionRecord._log, History._commands (the CommandRecords are made when read)",
    setup="kept('commands', lambda: commands(100_000, named=is_plain))",
    plain="gc.collect()",
    trick="gc.collect()",
    divisor=500,
)
pair(
    "gc-sessions",
    "a full gc.collect() over 10,000 ended sessions: SessionRecord -> plain tuple",
    "history: History.close_session (the SessionRecords are made when read)",
    setup="kept('sessions', lambda: sessions(10_000, named=is_plain))",
    plain="gc.collect()",
    trick="gc.collect()",
    divisor=500,
)

# --- the generator (generate.py) --------------------------------------------------------------
pair(
    "derive-inline",
    "size(k) calling _derive() per message -> sizes()' loop, inlined",
    "generate: MessageGenerator.sizes",
    setup="key, k, lo, span = 0x1234_5678_9ABC_DEF0, 0, 300, 20_000\n"
    "mask, mix1, mix2 = _MASK64, _MIX1, _MIX2; z = key; out = []; append = out.append",
    plain="out.append(_size(key, k))\nk += 1",
    trick="""
        z = (z + _GOLDEN) & mask
        x = ((z ^ (z >> 30)) * mix1) & mask
        x = ((x ^ (x >> 27)) * mix2) & mask
        u = ((x ^ (x >> 31)) >> 11) / 9007199254740992.0
        append(lo + int(span * (u * u * u)))
        """,
)
pair(
    "size-no-random",
    "random.Random(seed).random() per message -> SplitMix64 arithmetic",
    "generate: MessageGenerator._size (a STAT makes no Random)",
    setup="key, k = 0x1234_5678_9ABC_DEF0, 0; new_random = random.Random",
    plain="new_random(_derive(key, k)).random()\nk += 1",
    trick="(_derive(key, k) >> 11) / 9007199254740992.0\nk += 1",
)
pair(
    "wrap-regex",
    "wrap a 470-character paragraph word by word -> _WRAP_RE.findall (in C)",
    "generate: _Locale.paragraph",
    setup="text = _PARAGRAPH",
    plain="""
        lines, cur, width = [], [], -1
        for w in text.split(" "):
            if width + 1 + len(w) > 72 and cur:
                lines.append(" ".join(cur))
                cur, width = [], -1
            cur.append(w)
            width += 1 + len(w)
        lines.append(" ".join(cur))
        """,
    trick="""
        lines = _WRAP_RE.findall(text)
        if sum(map(len, lines)) + len(lines) - 1 != len(text):
            raise AssertionError
        """,
)


# --- memory (tracemalloc, no callgrind) -------------------------------------------------------
def memory() -> dict[str, float]:
    """Bytes per object of the memory tricks, by tracemalloc (1,000 of each)."""

    def per_object(make: Callable[[], object]) -> float:
        objects: list[object] = [None] * 1000
        gc.collect()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for i in range(1000):
            objects[i] = make()
        after = tracemalloc.get_traced_memory()[0]
        tracemalloc.stop()
        return (after - before) / 1000

    return {
        "29 attributes, no __slots__": per_object(ATTRS["29"]),
        "30 attributes, no __slots__": per_object(ATTRS["30"]),
        "29 attributes, __slots__": per_object(ATTRS["slots"]),
        "collections.deque()": per_object(collections.deque),
        "[]": per_object(list),
        "set()": per_object(set),
    }


# --- running ----------------------------------------------------------------------------------
def empty_loop(n: int) -> None:
    for _ in repeat(None, n):
        pass


def _marker() -> None:
    os.getppid()  # callgrind dumps its counts before each call (--dump-before=os_getppid)


def _measure(bench: Bench, n: int) -> None:
    gc.collect()
    bench(n)  # warm-up: CPython 3.11+ specializes the bytecode as it runs
    _marker()
    bench(n)
    _marker()
    bench(2 * n)
    _marker()


def inner(keys: list[str], n: int, variants: tuple[str, ...]) -> None:
    """What callgrind runs: the empty loop, then each function, three markers each."""
    gc.disable()
    _measure(empty_loop, n)
    for key in keys:
        item = PAIRS[key]
        for variant in variants:
            _measure(item.bench(variant), max(2, n // item.divisor))
            _KEPT.clear()


def _run_callgrind(keys: list[str], n: int) -> list[int]:
    """The count of each interval between markers, in order."""
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "cg.out"
        command = [
            "valgrind",
            "--tool=callgrind",
            f"--callgrind-out-file={out}",
            "--dump-before=os_getppid",
            sys.executable,
            __file__,
            "--inner",
            "--n",
            str(n),
            "--only",
            ",".join(keys),
        ]
        env = {**os.environ, "PYTHONHASHSEED": "0"}
        done = subprocess.run(command, capture_output=True, text=True, env=env)
        if done.returncode != 0:
            raise SystemExit(f"callgrind run failed:\n{done.stderr[-3000:]}")
        dumps = sorted(Path(folder).glob("cg.out.*"), key=lambda p: int(p.suffix[1:]))
        counts = []
        for dump in dumps:
            found = re.search(r"^totals: (\d+)", dump.read_text(errors="replace"), re.M)
            if found is None:
                raise SystemExit(f"no totals in {dump.name}")
            counts.append(int(found.group(1)))
    expected = 3 * (1 + 2 * len(keys))
    if len(counts) != expected:
        raise SystemExit(f"{len(counts)} callgrind dumps, expected {expected} (one per marker)")
    return counts


def measure(keys: list[str], n: int) -> dict[str, Any]:
    counts = _run_callgrind(keys, n)

    def per_op(index: int, count: int) -> float:
        # function i's intervals: 3i (up to the end of its warm-up), 3i+1 (n runs), 3i+2 (2n)
        return (counts[3 * index + 2] - counts[3 * index + 1]) / count

    loop = per_op(0, n)
    rows = {}
    for i, key in enumerate(keys):
        count = max(2, n // PAIRS[key].divisor)
        plain = per_op(1 + 2 * i, count) - loop
        trick = per_op(2 + 2 * i, count) - loop
        rows[key] = {"plain": round(plain, 1), "trick": round(trick, 1)}
    return {
        "python": sys.version.split()[0],
        "n": n,
        "loop": round(loop, 1),
        "pairs": rows,
        "memory": {k: round(v) for k, v in memory().items()},
    }


def _cell(row: dict[str, float] | None) -> str:
    if row is None:
        return "-"
    plain, trick = row["plain"], row["trick"]
    change = f"{100 * (trick - plain) / plain:+.0f}%" if plain > 0 else "-"
    return f"{plain:,.0f} -> {trick:,.0f} ({change})"


def table(results: list[dict[str, Any]]) -> Iterator[str]:
    width = max(len(k) for k in PAIRS) + 2
    column = max(len(_cell(row)) for r in results for row in r["pairs"].values()) + 2
    yield "instructions per operation, plain -> trick (change), less the empty loop's"
    yield f"{'pair':<{width}}" + "".join(f"{'Python ' + r['python']:<{column}}" for r in results)
    yield f"{'(empty loop)':<{width}}" + "".join(f"{r['loop']:<{column},.0f}" for r in results)
    for key in PAIRS:
        if any(key in r["pairs"] for r in results):
            cells = "".join(f"{_cell(r['pairs'].get(key)):<{column}}" for r in results)
            yield f"{key:<{width}}{cells}" + ("  (syscalls)" if PAIRS[key].syscalls else "")
    yield ""
    width = max(len(k) for k in results[0]["memory"]) + 4
    yield f"{'bytes per object':<{width}}" + "".join(f"{r['python']:<10}" for r in results)
    for name in results[0]["memory"]:
        cells = "".join(f"{r['memory'].get(name, '-'):<10}" for r in results)
        yield f"{name:<{width}}{cells}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=2000, help="iterations (and 2n) per function")
    parser.add_argument("--only", help="comma-separated pair names")
    parser.add_argument("--json", help="also write the figures to this file")
    parser.add_argument("--merge", nargs="+", metavar="JSON", help="print one table of these runs")
    parser.add_argument("--list", action="store_true", help="list the pairs")
    parser.add_argument("--inner", action="store_true", help="run the pairs, no callgrind")
    parser.add_argument("--variant", choices=("plain", "trick"), help="with --inner: only this")
    args = parser.parse_args()
    keys = args.only.split(",") if args.only else list(PAIRS)
    unknown = [k for k in keys if k not in PAIRS]
    if unknown:
        raise SystemExit(f"unknown pair(s): {', '.join(unknown)}; see --list")
    if args.list:
        for item in PAIRS.values():
            print(f"{item.key}: {item.what}\n    {item.where}")
    elif args.inner:
        inner(keys, args.n, (args.variant,) if args.variant else ("plain", "trick"))
    else:
        if args.merge:
            results = [json.loads(Path(p).read_text()) for p in args.merge]
            results.sort(key=lambda r: [int(x) for x in r["python"].split(".")[:2]])
        else:
            started = time.monotonic()
            results = [measure(keys, args.n)]
            print(f"(callgrind run: {time.monotonic() - started:.0f} s)", file=sys.stderr)
            if args.json:
                Path(args.json).write_text(json.dumps(results[0], indent=1) + "\n")
        for line in table(results):
            print(line.rstrip())


if __name__ == "__main__":
    main()
