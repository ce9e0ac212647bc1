"""The recorded history of every session and every command the server received.

Each command line is recorded *before* its reply is sent, so a test that has
read a reply can assert on the command behind it.  Secrets (the PASS argument,
the APOP digest, SASL responses) are masked before they are stored.

The helpers here are made for assertions after a ``poplib`` session::

    server.history.assert_sent("RETR", "2", user="alice", times=1)

and their failure message lists what was sent instead, the most similar
commands first.
"""

from __future__ import annotations

import difflib
import functools
import json
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, NamedTuple

if TYPE_CHECKING:
    import asyncio

__all__ = ["CommandRecord", "EndReason", "History", "SessionRecord"]

#: How a session ended.
EndReason = str
QUIT = "quit"  # the client sent QUIT
DROP = "drop"  # the client closed the connection (or it broke) without QUIT
TIMEOUT = "timeout"  # the autologout timer expired
SERVER = "server"  # the server closed it: shutdown, too many errors, a fault


class CommandRecord(NamedTuple):
    """One command line a client sent, and the status line of the reply.

    Immutable (a named tuple: cheap to make, one is made per command).
    """

    session_id: int
    client: tuple[str, int]
    user: str | None
    command: str
    args: tuple[str, ...]
    reply: str
    tls: bool
    received_at: float
    fault: str | None = None

    @property
    def ok(self) -> bool:
        """True if the reply was ``+OK`` (or a ``+`` SASL continuation)."""
        return self.reply.startswith("+")

    @property
    def line(self) -> str:
        """The command as it was sent (secrets masked)."""
        return " ".join((self.command, *self.args))

    def to_dict(self) -> dict[str, Any]:
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
        }

    def __str__(self) -> str:
        who = self.user or "-"
        tls = " [TLS]" if self.tls else ""
        fault = f" (fault: {self.fault})" if self.fault else ""
        return f"#{self.session_id} {who}{tls}: {self.line} -> {self.reply}{fault}"


#: A CommandRecord from a tuple of its fields, with no Python-level call.
_as_record: Callable[[tuple[Any, ...]], CommandRecord] = functools.partial(
    tuple.__new__, CommandRecord
)


@dataclass
class SessionRecord:
    """One connection: who, when, how it ended, and its commands in order."""

    id: int
    client: tuple[str, int]
    started_at: float
    user: str | None = None
    tls: bool = False
    ended_at: float | None = None
    end_reason: EndReason | None = None
    # The commands as plain tuples of the CommandRecord fields: a plain tuple of strings and
    # numbers leaves the garbage collector's lists after its first pass, a named tuple never
    # does (every full collection would walk every command of a long-lived server).
    _log: list[tuple[Any, ...]] = field(default_factory=list, init=False, repr=False)
    # Where the history keeps this record (-1: nowhere): an ended session is stored there as a
    # plain tuple instead (see History.close_session).
    _slot: int = field(default=-1, init=False, repr=False, compare=False)

    @property
    def commands(self) -> list[CommandRecord]:
        """This session's commands in order (a new list)."""
        return list(map(_as_record, self._log))

    @property
    def ended(self) -> bool:
        return self.ended_at is not None

    def transcript(self) -> str:
        """A readable transcript of the session, one command a line."""
        head = f"session #{self.id} from {self.client[0]}:{self.client[1]}"
        end = f"ended by {self.end_reason}" if self.end_reason else "still open"
        lines = [f"{head} ({end})"]
        lines += [
            f"  C: {c.line}{' [TLS]' if c.tls else ''}\n  S: {c.reply}" for c in self.commands
        ]
        return "\n".join(lines)


class History:
    """Sessions and commands recorded by one server.  Thread-safe."""

    def __init__(self, *, enabled: bool = True) -> None:
        self.enabled = enabled
        # A plain lock: taking it is one C call (a Condition's ``with`` is a Python-level call,
        # and a session takes the lock when it ends); the condition shares it, for waiters.
        self._lock = threading.Lock()
        self._ended_changed = threading.Condition(self._lock)
        self._blocked_waiters = 0
        # Open sessions as SessionRecords, ended ones as plain tuples (see close_session).
        self._sessions: list[SessionRecord | tuple[Any, ...]] = []
        self._commands: list[tuple[Any, ...]] = []  # plain tuples, see SessionRecord
        self._ended = 0
        self._waiters: list[tuple[int, asyncio.AbstractEventLoop, asyncio.Future[None]]] = []
        self._listeners: list[Callable[[CommandRecord], None]] = []
        self._session_listeners: list[Callable[[SessionRecord], None]] = []

    # --- recording (used by the server) -------------------------------------------------
    def open_session(self, session_id: int, client: tuple[str, int], tls: bool) -> SessionRecord:
        record = SessionRecord(session_id, client, time.time(), None, tls)  # positional: cheaper
        if self.enabled:
            sessions = self._sessions
            record._slot = len(sessions)
            sessions.append(record)  # list.append is atomic: no lock (one per session)
        return record

    def record(self, session: SessionRecord, command: CommandRecord) -> None:
        if not self.enabled:
            return
        self._append(session, tuple(command))  # kept as a plain tuple (see SessionRecord)

    def _append(self, session: SessionRecord, entry: tuple[Any, ...]) -> None:
        """Record a command given as the plain tuple of its CommandRecord fields.

        ``Session.answer_line`` has an inlined copy (one call less per command).
        """
        # list.append is atomic: no lock on this hot path.
        session._log.append(entry)
        self._commands.append(entry)
        if self._listeners:
            self._notify(entry)

    def _notify(self, entry: tuple[Any, ...]) -> None:
        _call_each(list(self._listeners), _as_record(entry))

    def close_session(self, session: SessionRecord, reason: EndReason) -> None:
        if session.ended_at is not None:
            return
        session.ended_at = ended_at = time.time()
        session.end_reason = reason
        # An ended session is kept as a plain tuple of its fields and commands: the garbage
        # collector drops it from its lists after one pass, where a SessionRecord and its list
        # would stay for ever (a long-lived server's history would make every full collection
        # slower).  A SessionRecord is made again when the history is read.
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
        lock = self._lock
        lock.acquire()  # not `with` (twice the cost), and nothing here can raise
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

    def add_listener(self, listener: Callable[[CommandRecord], None]) -> None:
        """Call ``listener(record)`` for every command recorded from now on."""
        with self._lock:
            self._listeners.append(listener)

    def add_session_listener(self, listener: Callable[[SessionRecord], None]) -> None:
        """Call ``listener(session)`` whenever a session ends."""
        with self._lock:
            self._session_listeners.append(listener)

    # --- reading -------------------------------------------------------------------------
    @property
    def sessions(self) -> list[SessionRecord]:
        with self._lock:
            kept = list(self._sessions)
        return [r if isinstance(r, SessionRecord) else _ended_session(r) for r in kept]

    @property
    def commands(self) -> list[CommandRecord]:
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
                return line in self._commands
        return isinstance(line, str) and any(_norm(c.line) == _norm(line) for c in self.commands)

    @property
    def ended_sessions(self) -> int:
        """How many sessions have ended since the server started (not reset by :meth:`clear`)."""
        with self._lock:
            return self._ended

    def clear(self) -> None:
        """Forget every recorded session and command (the count of ended sessions stays)."""
        with self._lock:
            self._sessions.clear()
            self._commands.clear()

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
        return len(self.filter(command, *args, user=user))

    def command_lines(self, *, user: str | None = None, session: int | None = None) -> list[str]:
        """The command lines sent, in order, e.g. ``["USER alice", "PASS ***", "STAT", "QUIT"]``."""
        return [c.line for c in self.filter(user=user, session=session)]

    def transcript(self) -> str:
        """Every session's transcript, for a failure report."""
        return "\n".join(s.transcript() for s in self.sessions) or "(no POP3 sessions)"

    def to_jsonl(self) -> str:
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
    return record


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


def _set_done(future: asyncio.Future[None]) -> None:
    if not future.done():
        future.set_result(None)


def _norm(line: str) -> str:
    head, _, rest = line.strip().partition(" ")
    return f"{head.upper()} {rest}".strip()
