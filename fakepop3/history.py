"""The recorded history of every session and every command the server received.

Each command line is recorded *before* its reply is sent, so a test that has
read a reply can assert on the command behind it.  Secrets (the PASS argument,
the APOP digest, SASL responses) are masked before they are stored.

The protocol core records each command with one call, :attr:`History.add_command`: a plain
list append of the command's fields.  The history hands each command to its session's record
later, in a batch (``History._settle``: when the record is read, when the session ends, before
``clear``).  Rules: only ``_settle`` writes a record's commands; every record the core logs to
is open in this history; ``enabled`` is set when the history is made.

The helpers here are made for assertions after a ``poplib`` session::

    server.history.assert_sent("RETR", "2", user="alice", times=1)

and their failure message lists what was sent instead, the most similar
commands first.
"""

from __future__ import annotations

import difflib
import functools
import itertools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import asyncio

__all__ = ["CommandRecord", "EndReason", "History", "LintFinding", "SessionRecord"]

_now = time.time
#: ``_compact_at`` with no bound: more sessions than memory holds, and an int that CPython
#: compares on its fast path (one 30-bit digit; ``sys.maxsize`` is not).
_NO_BOUND = 2**30 - 1
_new_object = object.__new__

#: How a session ended.
EndReason = str
QUIT = "quit"  # the client sent QUIT
DROP = "drop"  # the client closed the connection (or it broke) without QUIT
TIMEOUT = "timeout"  # the autologout timer expired
SERVER = "server"  # the server closed it: shutdown, too many errors, a fault
RESET = "reset"  # the server was reset while the session was open (see POP3Server.reset)


class LintFinding(NamedTuple):
    """One protocol mistake of a client, found by the strict client lint (``lint=True``):
    the rule (``fakepop3.faults.LINT_RULES``), the session and command, what was wrong.

    The history keeps each one beside the command it concerns (:attr:`CommandRecord.lint`),
    or on its session (:attr:`SessionRecord.lint`) when it concerns the session's end."""

    rule: str
    session_id: int
    command: str
    text: str

    def __str__(self) -> str:
        return f"[{self.rule}] session {self.session_id}, {self.command}: {self.text}"

    def to_dict(self) -> dict[str, Any]:
        """The finding as the history file has it (in its command's or session's ``lint``)."""
        return {"rule": self.rule, "text": self.text}


class CommandRecord(NamedTuple):
    """One command line a client sent, and the status line of the reply.

    Immutable (a named tuple: cheap to make, one is made per command).
    """

    session_id: int
    """The number of the session (its `SessionRecord.id`)."""
    client: tuple[str, int]
    """The client's address: ``(host, port)``."""
    user: str | None
    """The user logged in (or named by USER) when the command came, or None."""
    command: str
    """The command, upper-cased: ``"RETR"``."""
    args: tuple[str, ...]
    """Its arguments as sent (secrets masked: ``("***",)`` for PASS)."""
    reply: str
    """The status line of the reply: ``"+OK 120 octets"``."""
    tls: bool
    """True if the connection was under TLS (STLS or implicit TLS) at that command."""
    received_at: float
    """When the command was read (``time.time()``)."""
    fault: str | None = None
    """The description of the fault rule that answered the command, or None."""
    lint: tuple[LintFinding, ...] = ()
    """The lint findings on this command (``lint=True``; empty otherwise)."""

    @property
    def ok(self) -> bool:
        """True if the reply was ``+OK`` (or a ``+`` SASL continuation)."""
        return self.reply.startswith("+")

    @property
    def line(self) -> str:
        """The command as it was sent (secrets masked)."""
        return " ".join((self.command, *self.args))

    def to_dict(self) -> dict[str, Any]:
        """The command as the history file's ``command`` line has it."""
        return {
            "session": self.session_id,
            "client": f"{self.client[0]}:{self.client[1]}",
            "user": self.user,
            "command": self.command,
            "args": list(self.args),
            "reply": self.reply,
            "ok": self.ok,
            "tls": self.tls,
            "time": self.received_at,
            "fault": self.fault,
            "lint": [f.to_dict() for f in self.lint],
        }

    def __str__(self) -> str:
        who = self.user or "-"
        tls = " [TLS]" if self.tls else ""
        fault = f" (fault: {self.fault})" if self.fault else ""
        lint = f" (lint: {', '.join(f.rule for f in self.lint)})" if self.lint else ""
        return f"#{self.session_id} {who}{tls}: {self.line} -> {self.reply}{fault}{lint}"


#: What a linted session noted about a command's raw line: ``(name, value)`` pairs (a length,
#: or the text of what is wrong with the line).
LineFacts = tuple[tuple[str, int | str], ...]
#: A linter's check of one command: ``lint(record, facts)`` -> the findings on it.
Lint = Callable[["CommandRecord", LineFacts], "tuple[LintFinding, ...]"]

#: A CommandRecord from a tuple of its fields, with no Python-level call.
_make_record: Callable[[tuple[Any, ...]], CommandRecord] = functools.partial(
    tuple.__new__, CommandRecord
)


def _status_text(first: bytes) -> str:
    """The status line of a reply, from its first buffer (as ``History.add_command`` takes it)."""
    if first.endswith(b"\r\n") and first.count(b"\n") == 1:
        return first[:-2].decode("utf-8", "replace")
    return first[:600].split(b"\r\n", 1)[0].decode("utf-8", "replace")


_NO_LINT: tuple[tuple[LintFinding, ...]] = ((),)


def _as_record(entry: tuple[Any, ...]) -> CommandRecord:
    """The CommandRecord of a stored command (its reply given as bytes is decoded now; the
    core stores no ``lint`` field: only a linted command has one)."""
    reply = entry[5]
    if type(reply) is not str:
        entry = (*entry[:5], _status_text(reply), *entry[6:])
    if len(entry) < 10:
        entry += _NO_LINT
    return _make_record(entry)


@dataclass
class SessionRecord:
    """One connection: who, when, how it ended, and its commands in order."""

    id: int
    """The number of the session, from 1 in the order of connection."""
    client: tuple[str, int]
    """The client's address: ``(host, port)``."""
    started_at: float
    """When the client connected (``time.time()``)."""
    user: str | None = None
    """The user who logged in, or None."""
    tls: bool = False
    """True once the connection is under TLS."""
    ended_at: float | None = None
    """When the session ended, or None while it is open."""
    end_reason: EndReason | None = None
    """How it ended: ``"quit"``, ``"drop"``, ``"timeout"``, ``"server"``, ``"reset"``; None while open."""
    lint: tuple[LintFinding, ...] = ()
    """The lint findings on the session's end (``lint=True``): a connection dropped with
    deletions pending.  Those on a command are in its :attr:`CommandRecord.lint`."""
    # The commands as plain tuples of the CommandRecord fields, which the garbage collector
    # stops tracking (a named tuple it walks for ever): bench/README.md, "Speed notes".
    _log: list[tuple[Any, ...]] = field(default_factory=list, init=False, repr=False)
    # Where the history keeps this record (-1: nowhere): an ended session is stored there as a
    # plain tuple instead (see History.close_session).
    _slot: int = field(default=-1, init=False, repr=False, compare=False)
    # The history that records this open session: it hands the record its commands when they
    # are read, and when the session ends (see History._settle).
    _history: History | None = field(default=None, init=False, repr=False, compare=False)

    @property
    def commands(self) -> list[CommandRecord]:
        """This session's commands in order (a new list)."""
        history = self._history
        if history is not None:
            history._settle()
        return list(map(_as_record, self._log))

    @property
    def ended(self) -> bool:
        """True once the session has ended."""
        return self.ended_at is not None

    def to_dict(self) -> dict[str, Any]:
        """The session as the history file's ``session_end`` line has it (without its commands)."""
        return {
            "session": self.id,
            "client": f"{self.client[0]}:{self.client[1]}",
            "user": self.user,
            "tls": self.tls,
            "reason": self.end_reason,
            "commands": len(self.commands),
            "started": self.started_at,
            "time": self.ended_at,
            "lint": [f.to_dict() for f in self.lint],
        }

    def transcript(self) -> str:
        """A readable transcript of the session, one command a line."""
        head = f"session #{self.id} from {self.client[0]}:{self.client[1]}"
        end = f"ended by {self.end_reason}" if self.end_reason else "still open"
        lines = [f"{head} ({end})"]
        for c in self.commands:
            lines.append(f"  C: {c.line}{' [TLS]' if c.tls else ''}\n  S: {c.reply}")
            lines += [f"  lint: [{f.rule}] {f.text}" for f in c.lint]  # lint=True: its findings
        lines += [f"  lint: [{f.rule}] {f.text}" for f in self.lint]  # on the session's end
        return "\n".join(lines)


class History:
    """Sessions and commands recorded by one server.  Thread-safe.

    It numbers the sessions it records 1, 2, ... (:attr:`session_ids`; :meth:`clear`
    does not start again), and keeps every one unless :meth:`keep_sessions` bounds it.
    """

    def __init__(self, *, enabled: bool = True) -> None:
        #: False: nothing is recorded (``history=False``).
        self.enabled = enabled
        #: The numbers of its sessions: 1, 2, ... in this history (so per server), also when
        #: recording is off.  The protocol core takes ``next(session_ids)`` for each session.
        self.session_ids: Iterator[int] = itertools.count(1)
        # keep_sessions: how many ended sessions to keep (None: all), and the length of
        # _sessions past which the oldest ended ones are dropped.
        self._keep: int | None = None
        self._compact_at = _NO_BOUND
        # A plain lock, taken with C calls (bench/README.md, "Speed notes"); the condition
        # shares it, for waiters.
        self._lock = threading.Lock()
        self._ended_changed = threading.Condition(self._lock)
        self._blocked_waiters = 0
        # Open sessions as SessionRecords, ended ones as plain tuples (see close_session).
        self._sessions: list[SessionRecord | tuple[Any, ...]] = []
        # Every command as a plain tuple (see SessionRecord), in the order received: the
        # protocol core appends to this list only (add_command), and _settle hands each command
        # to its session's record later, in a batch.
        self._commands: list[tuple[Any, ...]] = []
        self._settled = 0  # how many of _commands are in their record's log
        self._open: dict[int, SessionRecord] = {}  # the records _settle hands commands to
        #: Record one command: ``add_command(fields)``, ``fields`` those of a
        #: :class:`CommandRecord` as a plain tuple, in order, its ``args`` masked (no secret
        #: reaches the history), its ``reply`` the status line as text or as the reply's
        #: first buffer in bytes (decoded when read).  The protocol core's one entry point: a
        #: plain ``list.append`` (no Python call per command) unless a listener is registered.
        self.add_command: Callable[[tuple[Any, ...]], None] = (
            self._commands.append if enabled else _ignore
        )
        self._ended = 0
        #: The id of the last session opened (0: none yet); :meth:`clear` keeps it.
        self.last_session_id = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._listeners: list[Callable[[CommandRecord], None]] = []
        self._session_listeners: list[Callable[[SessionRecord], None]] = []
        # The strict client lint (set_linter): each command's findings, worked out as it is
        # recorded, and what the core noted about the raw line of the command (note_line).
        self._lint: Lint | None = None
        self._line_facts: dict[int, LineFacts] = {}

    # --- recording (used by the server) -------------------------------------------------
    def open_session(self, session_id: int, client: tuple[str, int], tls: bool) -> SessionRecord:
        # SessionRecord(session_id, client, time.time(), None, tls) without the class call
        # (bench/README.md, "Speed notes").
        self.last_session_id = session_id
        record = _new_object(SessionRecord)
        record.id = session_id
        record.client = client
        record.started_at = time.time()
        record.user = None
        record.tls = tls
        record.ended_at = None
        record.end_reason = None
        record._log = []
        record._slot = -1
        record._history = None
        if self.enabled:
            sessions = self._sessions
            record._slot = len(sessions)
            record._history = self
            self._open[session_id] = record  # one dict store is atomic: no lock
            sessions.append(record)  # list.append is atomic: no lock (one per session)
        return record

    def record(self, session: SessionRecord, command: CommandRecord) -> None:
        """Record ``command`` of the open session ``session`` (the session whose id it carries)."""
        if not self.enabled:
            return
        self.add_command(tuple(command))  # kept as a plain tuple (see SessionRecord)
        with self._lock:
            self._settle_locked(exact=True)  # hand it to its record now (it may be another's)

    def _add_and_notify(self, entry: tuple[Any, ...]) -> None:
        """``add_command`` while listeners are registered or a linter is set: the command's
        lint findings (if any) are stored with it, then the listeners get it."""
        lint = self._lint
        if lint is not None:
            facts = self._line_facts.pop(entry[0], ())
            found = lint(_as_record(entry), facts)
            if found:
                entry = (*entry[:9], found)
        self._commands.append(entry)
        if self._listeners:
            self._notify(entry)

    # --- the strict client lint ------------------------------------------------------------
    def set_linter(self, lint: Lint) -> None:
        """Call ``lint(record, facts)`` for every command recorded from now on; the findings
        it returns are stored in the record (:attr:`CommandRecord.lint`).  ``facts``: what the
        core noted about the command's raw line (:meth:`note_line`).  Only ``lint=True``
        servers set one: the history of the others pays nothing for it."""
        with self._lock:
            self._lint = lint
            if self.enabled:
                self.add_command = self._add_and_notify

    def note_line(self, session_id: int, facts: LineFacts) -> None:
        """Called by a linted session just before it runs a command line: ``facts`` (pairs
        ``(name, value)``: ``("bare-lf", 0)``, ``("long-line", octets)``, ``("pipelined", 0)``,
        ``("malformed", what strict syntax says is wrong)``)
        go to the linter with the record of that line; ``()`` forgets them."""
        if facts:
            self._line_facts[session_id] = facts
        else:
            self._line_facts.pop(session_id, None)

    def set_session_lint(self, session: SessionRecord, found: tuple[LintFinding, ...]) -> None:
        """Store the lint findings on the end of the ended ``session`` (its
        :attr:`SessionRecord.lint`), also in the history's copy of it."""
        session.lint = found
        with self._lock:
            sessions = self._sessions
            slot = session._slot
            if not (0 <= slot < len(sessions) and _is_ended(sessions[slot], session.id)):
                # moved by keep_sessions (or dropped, or cleared): looked for from the end
                slot = next(
                    (
                        i
                        for i in range(len(sessions) - 1, -1, -1)
                        if _is_ended(sessions[i], session.id)
                    ),
                    -1,
                )
            if slot >= 0:
                sessions[slot] = (*sessions[slot][:8], found)  # type: ignore[index]

    def _settle(self) -> None:
        """Hand each command recorded since the last call to its session's record."""
        with self._lock:
            self._settle_locked()

    def _settle_locked(self, *, exact: bool = False) -> None:
        # Called with the lock held.  The core appends to _commands without it (list.append is
        # atomic): what it appends meanwhile waits for the next call.  Every command the core
        # records is of an open session's record (``record`` settles its own at once, so that
        # ``exact`` is needed there only): with one session open, all are that session's.
        commands = self._commands
        end = len(commands)
        start = self._settled
        if start == end:
            return
        self._settled = end
        open_records = self._open
        pending = commands[start:end]
        if len(open_records) == 1 and not exact:  # one session at a time: the usual case
            [only] = open_records.values()
            only._log.extend(pending)
            return
        for entry in pending:
            record = open_records.get(entry[0])
            if record is not None:
                record._log.append(entry)

    def _notify(self, entry: tuple[Any, ...]) -> None:
        _call_each(list(self._listeners), _as_record(entry))

    def close_session(self, session: SessionRecord, reason: EndReason) -> None:
        if session.ended_at is not None:
            return
        session.ended_at = ended_at = time.time()
        session.end_reason = reason
        lock = self._lock
        lock.acquire()  # not `with` (bench/README.md, "Speed notes"); nothing here raises
        if session._history is self:  # the record gets all its commands now
            open_records = self._open
            if len(open_records) == 1:  # _settle_locked's usual case, inlined (Speed notes)
                commands = self._commands
                end = len(commands)
                session._log.extend(commands[self._settled : end])
                self._settled = end
            else:
                self._settle_locked()
            session._history = None
            del open_records[session.id]
        # An ended session is kept as a plain tuple of its fields and commands, which the
        # collector stops tracking (bench/README.md, "Speed notes"); read, it is a
        # SessionRecord again.
        slot = session._slot
        if slot >= 0:
            sessions = self._sessions
            if slot < len(sessions) and sessions[slot] is session:
                sessions[slot] = (
                    session.id,
                    session.client,
                    session.started_at,
                    session.user,
                    session.tls,
                    ended_at,
                    reason,
                    tuple(session._log),
                )
                if slot >= self._compact_at:  # over the keep_sessions bound: drop old ones
                    self._drop_oldest_locked()
        self._ended += 1
        waiting = self._blocked_waiters or self._waiters or self._session_listeners
        lock.release()
        if waiting:
            self._session_ended(session)

    def _session_ended(self, session: SessionRecord) -> None:
        """Wake whoever waits for ended sessions, and call the session listeners."""
        with self._lock:
            ended = self._ended
            if self._blocked_waiters:
                self._ended_changed.notify_all()
            ready = [w for w in self._waiters if w[0] <= ended]
            if ready:
                self._waiters = [w for w in self._waiters if w[0] > ended]
            listeners = list(self._session_listeners)
        for _, loop, future in ready:
            try:
                loop.call_soon_threadsafe(_set_done, future)
            except RuntimeError:  # that loop is closed (its test gave up waiting): nobody waits
                pass
        _call_each(listeners, session)

    def keep_sessions(self, limit: int | None) -> None:
        """Keep in memory only the last ``limit`` ended sessions and their commands (None: all).

        Every open session is kept, however many.  Older ended sessions are dropped in
        batches, so up to ``2 * limit + 100`` ended sessions may be held between two drops;
        listeners (a history file) still get every command and every session.  The drop
        runs where sessions end (the server's loop), which is also where the core records.
        """
        if limit is not None and (not isinstance(limit, int) or limit < 0):
            raise ValueError(f"keep_sessions takes a count, 0 or more, or None, not {limit!r}")
        with self._lock:
            self._keep = limit
            self._compact_at = _NO_BOUND if limit is None else 2 * limit + 100
            if len(self._sessions) > self._compact_at:
                self._drop_oldest_locked()

    def _drop_oldest_locked(self) -> None:
        """Forget the ended sessions (and their commands) older than the last ``_keep``."""
        keep = self._keep
        assert keep is not None
        self._settle_locked()  # every command now in its record: _commands can be cut
        sessions = self._sessions
        kept: list[SessionRecord | tuple[Any, ...]] = []
        ended = 0
        for item in reversed(sessions):
            if isinstance(item, SessionRecord):  # open (an ended one is kept as a tuple)
                kept.append(item)
            elif ended < keep:
                ended += 1
                kept.append(item)
        kept.reverse()
        ids = {item.id if isinstance(item, SessionRecord) else item[0] for item in kept}
        for slot, item in enumerate(kept):
            if isinstance(item, SessionRecord):
                item._slot = slot
        sessions[:] = kept
        commands = self._commands  # cut in place: add_command is its bound append
        commands[:] = [entry for entry in commands if entry[0] in ids]
        self._settled = len(commands)

    def add_listener(self, listener: Callable[[CommandRecord], None]) -> None:
        """Call ``listener(record)`` for every command recorded from now on."""
        with self._lock:
            self._listeners.append(listener)
            if self.enabled:
                self.add_command = self._add_and_notify

    def add_session_listener(self, listener: Callable[[SessionRecord], None]) -> None:
        """Call ``listener(session)`` whenever a session ends."""
        with self._lock:
            self._session_listeners.append(listener)

    # --- reading -------------------------------------------------------------------------
    @property
    def sessions(self) -> list[SessionRecord]:
        """Every session recorded (open and ended), in the order of connection (a new list)."""
        with self._lock:
            kept = list(self._sessions)
        return [r if isinstance(r, SessionRecord) else _ended_session(r) for r in kept]

    @property
    def commands(self) -> list[CommandRecord]:
        """Every command recorded, of all sessions, in the order received (a new list)."""
        with self._lock:
            return list(map(_as_record, self._commands))

    def __iter__(self) -> Iterator[CommandRecord]:
        return iter(self.commands)

    def __len__(self) -> int:
        with self._lock:
            return len(self._commands)

    def __contains__(self, line: object) -> bool:
        """``"RETR 1" in history``: was this command line sent (keyword case-insensitive)?"""
        if isinstance(line, CommandRecord):
            with self._lock:
                kept = list(self._commands)
            return line in map(_as_record, kept)
        return isinstance(line, str) and any(_norm(c.line) == _norm(line) for c in self.commands)

    @property
    def ended_sessions(self) -> int:
        """How many sessions have ended since the server started (not reset by :meth:`clear`)."""
        with self._lock:
            return self._ended

    def clear(self) -> None:
        """Forget every recorded session and command (the count of ended sessions stays)."""
        with self._lock:
            self._settle_locked()  # the open sessions' records keep their commands
            self._sessions.clear()
            self._commands.clear()
            self._settled = 0

    def filter(
        self,
        command: str | None = None,
        *args: str,
        user: str | None = None,
        session: int | None = None,
        ok: bool | None = None,
        tls: bool | None = None,
    ) -> list[CommandRecord]:
        """The commands matching every criterion given (``command`` is case-insensitive)."""
        name = command.upper() if command else None
        result = []
        for c in self.commands:
            if name is not None and c.command != name:
                continue
            if args and c.args != args:
                continue
            if user is not None and c.user != user:
                continue
            if session is not None and c.session_id != session:
                continue
            if ok is not None and c.ok != ok:
                continue
            if tls is not None and c.tls != tls:
                continue
            result.append(c)
        return result

    def count(self, command: str | None = None, *args: str, user: str | None = None) -> int:
        """How many commands match (the arguments as for :meth:`filter`)."""
        return len(self.filter(command, *args, user=user))

    def command_lines(self, *, user: str | None = None, session: int | None = None) -> list[str]:
        """The command lines sent, in order, e.g. ``["USER alice", "PASS ***", "STAT", "QUIT"]``."""
        return [c.line for c in self.filter(user=user, session=session)]

    def transcript(self) -> str:
        """Every session's transcript, for a failure report."""
        return "\n".join(s.transcript() for s in self.sessions) or "(no POP3 sessions)"

    def to_jsonl(self) -> str:
        """The commands as JSON lines, one :meth:`CommandRecord.to_dict` a line."""
        return "".join(json.dumps(c.to_dict()) + "\n" for c in self.commands)

    # --- assertions ----------------------------------------------------------------------
    def assert_sent(
        self,
        command: str,
        *args: str,
        user: str | None = None,
        times: int | None = None,
    ) -> list[CommandRecord]:
        """Assert that ``command`` (with exactly these ``args``) was sent (``times`` times).

        Returns the matching records.  On failure the message lists the most
        similar commands that were sent instead.
        """
        __tracebackhide__ = True  # pytest: show the failure at the test's line
        found = self.filter(command, *args, user=user)
        if (times is None and found) or (times is not None and len(found) == times):
            return found
        wanted = " ".join((command.upper(), *args))
        expectation = "at least once" if times is None else f"{times} time(s)"
        who = f" by user {user!r}" if user is not None else ""
        raise AssertionError(
            f"expected {wanted!r} to be sent {expectation}{who}, but it was sent "
            f"{len(found)} time(s).\n{self._similar(wanted, user)}"
        )

    def assert_not_sent(self, command: str, *args: str, user: str | None = None) -> None:
        """Assert that ``command`` (with these ``args``, if given) was never sent."""
        __tracebackhide__ = True
        found = self.filter(command, *args, user=user)
        if found:
            lines = "\n".join(f"  {c}" for c in found)
            raise AssertionError(
                f"expected {command.upper()!r} never to be sent, but got:\n{lines}"
            )

    def assert_sequence(
        self, *lines: str, user: str | None = None, session: int | None = None
    ) -> None:
        """Assert that these command lines were sent in this order (other commands may come between).

        Lines are compared case-insensitively on the command keyword; masked
        secrets appear as ``***``.
        """
        __tracebackhide__ = True
        sent = self.command_lines(user=user, session=session)
        i = 0
        for line in sent:
            if i < len(lines) and _norm(line) == _norm(lines[i]):
                i += 1
        if i < len(lines):
            listing = "\n".join(f"  {s}" for s in sent) or "  (nothing)"
            raise AssertionError(
                f"expected the commands {list(lines)!r} in this order; "
                f"{lines[i]!r} was not found after {list(lines[:i])!r}. Sent:\n{listing}"
            )

    def _similar(self, wanted: str, user: str | None) -> str:
        sent = self.commands
        if not sent:
            return "No commands were recorded at all."
        lines = [str(c) for c in sent]
        keyed = {str(c): c.line for c in sent}
        best = sorted(
            lines,
            key=lambda s: -difflib.SequenceMatcher(None, wanted, keyed[s]).ratio(),
        )[:5]
        similar = "\n".join(f"  {s}" for s in best)
        return f"Most similar commands sent:\n{similar}\nAll commands: {len(lines)}."

    # --- waiting -------------------------------------------------------------------------
    def wait_for_sessions(self, count: int, timeout: float | None = 10.0) -> None:
        """Block until ``count`` sessions have ended since the server started.

        Raises ``TimeoutError`` if that does not happen within ``timeout`` seconds.
        """
        with self._lock:
            self._blocked_waiters += 1
            try:
                ended = self._ended_changed.wait_for(lambda: self._ended >= count, timeout)
            finally:
                self._blocked_waiters -= 1
            if not ended:
                raise TimeoutError(
                    f"waited {timeout}s for {count} POP3 session(s) to end; {self._ended} ended"
                )

    async def wait_for_sessions_async(self, count: int) -> None:
        """Wait (without blocking the loop) until ``count`` sessions have ended."""
        # asyncio only here: the sans-IO core imports this module (tests/test_architecture.py).
        import asyncio

        loop = asyncio.get_running_loop()
        future: asyncio.Future[None] = loop.create_future()
        with self._lock:
            if self._ended >= count:
                return
            self._waiters.append((count, loop, future))
        await future


def _ended_session(kept: tuple[Any, ...]) -> SessionRecord:
    """The SessionRecord of an ended session kept as a plain tuple by History.close_session."""
    record = SessionRecord(*kept[:7])
    record._log = list(kept[7])
    if len(kept) > 8:  # lint findings on its end (History.set_session_lint)
        record.lint = kept[8]
    return record


def _is_ended(kept: SessionRecord | tuple[Any, ...], session_id: int) -> bool:
    """True if ``kept`` is the stored form of the ended session ``session_id``."""
    return isinstance(kept, tuple) and kept[0] == session_id


def _call_each(listeners: list[Callable[[Any], None]], item: object) -> None:
    """Call every listener, even when one raises; the first error is raised at the end."""
    errors: list[Exception] = []
    for listener in listeners:
        try:
            listener(item)
        except Exception as error:
            errors.append(error)
    if errors:
        raise errors[0]


def _ignore(entry: tuple[Any, ...]) -> None:
    """``add_command`` of a disabled history."""


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _norm(line: str) -> str:
    head, _, rest = line.strip().partition(" ")
    return f"{head.upper()} {rest}".strip()
