"""The POP3 session: the input buffer, the per-state dispatch and the one execute path.

Bytes from the client go in through :meth:`Session.receive_data`; each call of
:meth:`Session.next_actions` handles one complete command line and returns what the transport
must do (:class:`Send`, :class:`Pause`, :class:`Throttle`, :class:`StartTLS`, :class:`Close`).
:meth:`Session.answer_line` is the fast lane for a packet that is one command line
(``_fastlane.py``).  The rules of the core are at the top of ``_state.py``; those of this
module:

- Every command line runs through ``_fastlane.answer_line``, whichever lane it came in (the
  general path passes it the dispatch of the state); every history record goes through
  ``History.add_command``.
- :meth:`Session._refresh` is the only writer of ``_dispatch`` and ``_lane``; it runs after
  every change of what they depend on (state, TLS, SASL, STLS, the input buffer).
- ``Session`` has ``__slots__``: a new attribute is a new slot.
"""

from __future__ import annotations

import time
from collections.abc import Callable, MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from types import MappingProxyType

from .. import history as _history
from ..auth import Authenticator, Mechanism
from ..history import History, SessionRecord
from ..store import Mailbox, MailStore, Message
from . import _commands, _fastlane, _replies
from ._actions import Action, Buffer, Close, CommandFault, FaultHook, Send, StartTLS, whole
from ._dispatch import Entry
from ._parse import parse
from ._replies import status_of
from ._settings import Settings
from ._state import AUTHORIZATION, CLOSED, MAX_SASL_LINE, TRANSACTION, State

__all__ = ["Session"]

#: The history of a Session made without one: records nothing, numbers its sessions.
_UNRECORDED = History(enabled=False)
_NONE_DELETED: AbstractSet[int] = frozenset()
_NO_ANSWERS: MutableMapping[str, tuple[Buffer, ...]] = MappingProxyType({})  # type: ignore[assignment]
#: The dispatch of UPDATE and CLOSED: no command is read in them.
_NO_COMMANDS: dict[str, Entry] = {}
#: Makes a named tuple (a :class:`Send`) from a tuple of its fields, skipping the named
#: tuple's Python-level ``__new__``.
_new_tuple = tuple.__new__
_new_object = object.__new__
_now = time.time


class Session:
    """One POP3 session, from greeting to close.

    ``record`` is the history entry of this session; ``clock`` returns seconds
    (``time.monotonic`` unless a test injects another).
    """

    __slots__ = (
        "_answers",
        "_discarding",
        "_dispatch",
        "_lane",
        "_lines",
        "_notes",  # a LintedSession's only (_linted.py): a Session never touches it
        "_partial",
        "_pending_user",
        "_released",
        "_reply",
        "_sasl",
        "_starting_tls",
        "auth",
        "bad_commands",
        "client",
        "clock",
        "close_reason",
        "deleted",
        "faults",
        "history",
        "id",
        "language",
        "mailbox",
        "messages",
        "record",
        "settings",
        "state",
        "store",
        "tls",
        "user",
        "utf8",
    )

    #: True for a :class:`~fakepop3.protocol._linted.LintedSession` (a ``lint=True`` server's).
    linting = False

    state: State
    user: str | None
    mailbox: Mailbox | None
    #: The maildrop's snapshot at login (a tuple, or a compact ``MessageList``).
    messages: Sequence[Message]
    #: Numbers of the messages marked as deleted (a new set at the first DELE).
    deleted: AbstractSet[int]
    utf8: bool
    language: str
    bad_commands: int
    settings: Settings
    store: MailStore
    auth: Authenticator
    history: History
    id: int
    record: SessionRecord
    client: tuple[str, int]
    tls: bool
    faults: FaultHook | None
    clock: Callable[[], float]
    # Answers about the snapshot (STAT, LIST, UIDL), shared with the other sessions on it;
    # the session gets the dict of its snapshot at login (read-only before).
    _answers: MutableMapping[str, tuple[Buffer, ...]]
    _reply: _replies.Replies
    #: The commands of the state (see _dispatch.py), and the fast lane's when it is open.
    _dispatch: dict[str, Entry]
    _lane: dict[str, Entry] | None
    # Complete lines waiting (None marks an overlong one); a list, not a deque: the queue is
    # short (list-not-deque, bench/README.md, Speed notes).
    _lines: list[bytes | None]
    _partial: bytes
    _discarding: bool
    _pending_user: str | None
    _sasl: Mechanism | None
    _starting_tls: bool
    #: Why the session closed itself (its history's end reason, once ``CLOSED``); read by
    #: the transport as a plain slot (bench/README.md, Speed notes, "After issue 16").
    close_reason: str
    _released: bool  # the maildrop lock, taken at login, was given back

    def __new__(
        cls,
        store: MailStore,
        settings: Settings | None = None,
        *,
        history: History | None = None,
        client: tuple[str, int] = ("127.0.0.1", 0),
        tls: bool = False,
        faults: FaultHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        auth: Authenticator | None = None,
    ) -> Session:
        """``Session(store, settings, history=..., ...)``: the keyword form, defaults filled in
        (a ``__new__`` rather than an ``__init__``, so that it and :meth:`open` share one body
        and ``open`` pays no second call)."""
        settings = settings or Settings()
        # A fakepop3.Faults gives the core its hook object (Faults.hook); any other FaultHook
        # is used as it is.
        faults = getattr(faults, "hook", faults)
        return Session.open(
            store,
            settings,
            history if history is not None else _UNRECORDED,
            client,
            tls,
            faults,
            clock,
            auth or Authenticator(store, any_login=settings.any_login),
        )

    @staticmethod
    def open(
        store: MailStore,
        settings: Settings,
        history: History,
        client: tuple[str, int],
        tls: bool,
        faults: FaultHook | None,
        clock: Callable[[], float],
        auth: Authenticator,
    ) -> Session:
        """A session for a transport: every argument given, in this order (``faults`` the hook
        object, or None).  Cheaper than ``Session(...)``: a class called with keyword
        arguments builds a dict of them, and a class call runs ``__new__`` in a new
        interpreter frame (see bench/README.md, "Speed notes")."""
        self = _new_object(Session)
        self.settings = settings
        self.store = store
        self.auth = auth
        self.history = history
        self.id = session_id = next(history.session_ids)  # 1, 2, ... per history (server)
        self.record = history.open_session(session_id, client, tls)
        self.client = client
        self.tls = tls
        self.faults = faults
        self.clock = clock
        self._lines = []
        self._reply = settings.replies
        self.state = AUTHORIZATION
        self.user = None
        self.mailbox = None
        self.messages = ()
        self.deleted = _NONE_DELETED
        self._answers = _NO_ANSWERS
        self.utf8 = False
        self.language = "en"
        self.bad_commands = 0
        self._pending_user = None
        self._sasl = None
        self._partial = b""
        self._discarding = False
        self._starting_tls = False
        self.close_reason = _history.QUIT
        self._released = False
        # What _refresh finds now (AUTHORIZATION, nothing buffered), without the call.
        dispatch = settings.dispatch
        self._dispatch, self._lane = (dispatch.on_tls if tls else dispatch.plain).authorization
        return self

    @property
    def pending_user(self) -> str | None:
        """The name given by USER, while it waits for PASS (None otherwise)."""
        return self._pending_user

    @property
    def timestamp(self) -> str:
        """The APOP timestamp of this session's greeting (RFC 1939 s7)."""
        return f"{self._reply.stamp_head}{self.id}{self._reply.stamp_tail}"

    def capabilities(self) -> list[str]:
        """What CAPA lists now (RFC 2449 s5 and s6; STLS per RFC 2595; UTF8/LANG per RFC 6856)."""
        return _commands.capabilities(self)

    # --- the state ----------------------------------------------------------------------
    def _refresh(self) -> None:
        """Pick the dispatch of the state, and open or close the fast lane.

        The fast lane is open (``_lane`` is its dispatch) only while nothing is buffered, no
        SASL exchange or STLS is under way, and the state reads commands.  Call this after
        changing any of these (and TLS): it is the only writer of ``_dispatch`` and ``_lane``.
        """
        state = self.state
        if state is not TRANSACTION and state is not AUTHORIZATION:  # UPDATE, CLOSED
            self._dispatch = _NO_COMMANDS
            self._lane = None
            return
        dispatch = self.settings.dispatch
        tables = dispatch.on_tls if self.tls else dispatch.plain
        self._dispatch, lane = tables.transaction if state is TRANSACTION else tables.authorization
        self._lane = (
            None
            if self._lines
            or self._partial
            or self._discarding
            or self._sasl is not None
            or self._starting_tls
            else lane
        )

    def _close(self) -> None:
        self.state = CLOSED
        self._lines.clear()
        self._partial = b""
        self._refresh()

    # --- input ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client.  An overlong line is never buffered past the limit.

        RFC 2449 s4: command lines "MUST NOT exceed 255 octets, including the
        terminating CRLF".  The rest of an overlong line is discarded, and the
        line is answered with one ``-ERR`` when its end arrives.
        """
        if self.state is CLOSED:
            return
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                return
            data = data[end + 1 :]
            self._discarding = False
            self._lines.append(None)
        if self._partial:
            data = self._partial + data
            self._partial = b""
        limit = self.settings.max_line
        if self._sasl is not None:
            limit = max(limit, MAX_SASL_LINE)
        *complete, tail = data.split(b"\n")
        for line in complete:
            self._lines.append(line if len(line) < limit else None)
        if len(tail) >= limit:
            self._discarding = True
        else:
            self._partial = tail
        self._refresh()

    def note_busy(self) -> None:
        """Called by a linted session's transport when bytes came while it was still
        answering (see ``_linted.py``); a :class:`Session` notes nothing."""

    def has_line(self) -> bool:
        """True if a complete command line is waiting for :meth:`next_actions`."""
        return bool(self._lines)

    @property
    def pending_lines(self) -> int:
        """How many complete command lines wait for :meth:`next_actions`."""
        return len(self._lines)

    def has_partial_line(self) -> bool:
        """True while the start of a command line has arrived but not its end (its LF)."""
        return bool(self._partial) or self._discarding

    # --- output --------------------------------------------------------------------------
    def greeting_line(self) -> bytes | None:
        """The fast lane of :meth:`greeting`: the ``+OK`` line, or None when a fault hook is
        armed (a connect fault may replace it: call :meth:`greeting` instead)."""
        faults = self.faults
        if faults is not None and faults.armed:
            return None
        reply = self._reply  # _greeting_bytes, inlined (bench/README.md, "Speed notes")
        if reply.greeting_tail:
            return b"%s%d%s" % (reply.greeting_head, self.id, reply.greeting_tail)
        return reply.greeting_head

    def _greeting_bytes(self) -> bytes:
        reply = self._reply
        if reply.greeting_tail:  # with the APOP timestamp
            return b"%s%d%s" % (reply.greeting_head, self.id, reply.greeting_tail)
        return reply.greeting_head

    def greeting(self) -> list[Action]:
        """The actions that open the session (normally the ``+OK`` greeting)."""
        greeting = self._greeting_bytes()
        if self.faults is not None and self.faults.armed:
            actions = self.faults.on_connect(self, greeting)
            if actions is not None:
                if any(isinstance(a, Close) for a in actions):
                    self._close()
                return actions
        return [_new_tuple(Send, ((greeting,),))]

    answer_line = _fastlane.answer_line

    def next_actions(self) -> list[Action] | None:
        """Handle the next complete command line; None when no complete line is buffered."""
        actions = self._next_actions()
        self._refresh()
        return actions

    def _next_actions(self) -> list[Action] | None:
        if self.state is CLOSED or not self._lines:
            return None
        raw = self._lines.pop(0)
        if raw is not None and self._sasl is None and len(raw) >= self.settings.max_line:
            raw = None  # buffered under the SASL limit, but it is a command line
        if raw is None and self._sasl is not None:
            self._sasl = None  # RFC 5034 s4: the exchange fails with -ERR, no half-open state
            reply = self._reply.err("SASL response too long; authentication cancelled.")
            return self._finish("SASL", ("***",), (reply,))
        if raw is None:
            self._pending_user = None  # a line too long is a command but PASS: USER forgotten
            text = f"Command line too long (at most {self.settings.max_line} octets)."
            return self._finish("", (), (self._reply.err(text),), bad=True)
        if self._sasl is not None:
            return self._sasl_response(raw[:-1] if raw.endswith(b"\r") else raw)
        return self._command(raw)

    def connection_lost(self, reason: str = _history.DROP) -> None:
        """The connection ended.  Unless QUIT ran UPDATE, nothing is deleted (RFC 1939 s6)."""
        if self.mailbox is not None and not self._released:
            self.mailbox.release(self)
            self._released = True
        if self.state is not CLOSED:
            self.state = CLOSED
            self._refresh()
        self.history.close_session(self.record, reason)

    def tls_started(self) -> None:
        """The TLS handshake after STLS finished."""
        self.tls = True
        self.record.tls = True
        self._refresh()

    # --- the general path ---------------------------------------------------------------
    def _command(self, line: bytes) -> list[Action]:
        """One command line taken from the buffer (``line`` as buffered: no LF, its CR kept)."""
        faults = self.faults
        if faults is not None and faults.armed:  # a Faults with no rules: skip the call
            parsed = parse(
                line[:-1] if line.endswith(b"\r") else line, self.settings.lenient_syntax
            )
            if not isinstance(parsed, str):
                name, args, logged = parsed
                entry = self._dispatch.get(name)
                if entry is not None:
                    fault = faults.on_command(self, name, args)
                    if fault is not None:
                        return self._fault(fault, entry, name, args, logged)
        # The one execute path, shared with the fast lane (rule 4).
        reply = _fastlane.answer_line(self, line + b"\n", self._dispatch)
        if reply is None:
            return self._not_a_command(line[:-1] if line.endswith(b"\r") else line)
        if self.state is not CLOSED and not self._starting_tls:
            return [Send(reply)]  # the common case: one reply, the session goes on
        return self._after([Send(reply)])

    def _not_a_command(self, raw: bytes) -> list[Action]:
        """A line the execute path does not run: not a command line, or an unknown command."""
        parsed = parse(raw, self.settings.lenient_syntax)
        self._pending_user = None  # any command but PASS forgets USER (RFC 1939 s7)
        if isinstance(parsed, str):
            return self._finish("", (), (self._reply.err(parsed),), bad=True)
        name, args, _ = parsed
        persona_text = self._reply.unknown_command
        if persona_text is not None:
            reply = self._reply.raw_err(persona_text)
        elif self.state is TRANSACTION:
            reply = self._reply.err(f"Unknown command: {name[:40]}")
        else:
            reply = self._reply.err("Unknown command.")
        # A line the server does not know may be a secret (a password or SASL response sent
        # after a refused PASS/AUTH): the history keeps a plausible keyword only, and no args.
        recorded = name if 3 <= len(name) <= 4 and name.isascii() and name.isalpha() else "***"
        return self._finish(recorded, ("***",) if args else (), (reply,), bad=True)

    def _fault(
        self,
        fault: CommandFault,
        entry: Entry,
        name: str,
        args: tuple[str, ...],
        logged: tuple[str, ...],
    ) -> list[Action]:
        """A command a fault rule hit: the fault's actions replace the reply (the command
        runs first if the fault says so), and the history records the fault."""
        reply: tuple[bytes | memoryview, ...] = ()
        if fault.runs_command:
            reply = whole(_commands.run(self, entry, name, args))  # a fault sees it whole
        actions = fault.actions(reply)
        self._record(name, logged, status_of(actions), fault.description)
        return self._after(actions)

    def _sasl_response(self, raw: bytes) -> list[Action]:
        mech = self._sasl
        assert mech is not None
        if raw.strip() == b"*":
            # RFC 5034 s4: "If the client wishes to cancel the authentication exchange, it
            # issues a line with a single '*'. If the server receives such a response, it
            # MUST reject the AUTH command by sending an -ERR reply."
            self._sasl = None
            return self._finish("SASL", ("*",), (self._reply.err("Authentication cancelled."),))
        decoded = _commands.b64(raw.decode("ascii", "replace").strip()) if raw.strip() else b""
        if decoded is None:
            self._sasl = None
            return self._finish(
                "SASL", ("***",), (self._reply.err("Invalid base64 in SASL response."),)
            )
        return self._finish("SASL", ("***",), _commands.sasl_step(self, mech, mech.step(decoded)))

    def _finish(
        self,
        name: str,
        logged: tuple[str, ...],
        reply: tuple[bytes, ...],
        *,
        bad: bool = False,
    ) -> list[Action]:
        """Record a reply made outside the execute path (a bad line, a SASL step); send it."""
        too_many = False
        if bad and self.state is AUTHORIZATION:
            self.bad_commands += 1
            if self.bad_commands >= self.settings.max_bad_commands:
                too_many = True  # this reply replaces the line's own -ERR, in the history too
                reply = (self._reply.err("Too many invalid commands, closing."),)
        self._record(name, logged, reply[0] if reply else b"", None)
        if too_many:
            self._close()
            return [Send(reply), Close(_history.SERVER)]
        if self.state is not CLOSED and not self._starting_tls:
            return [Send(reply)]  # the common case: one reply, the session goes on
        return self._after([Send(reply)])

    def _after(self, actions: list[Action]) -> list[Action]:
        """The actions of one command, with what must follow: a Close once the session
        closed, the TLS handshake after the reply to STLS."""
        if self.state is not CLOSED and not self._starting_tls and len(actions) == 1:
            if type(actions[0]) is Send:
                return actions  # the common case: one reply, the session goes on
        if self.state is CLOSED or any(isinstance(a, Close) for a in actions):
            if self.state is not CLOSED:
                self._close()
            if not any(isinstance(a, Close) for a in actions):
                actions.append(Close(self.close_reason))
        if self._starting_tls and any(isinstance(a, Send) for a in actions):
            self._starting_tls = False
            # RFC 2595 s4 / CVE-2011-0411: anything pipelined after STLS is discarded.
            self._lines.clear()
            self._partial = b""
            self._discarding = False
            actions.append(StartTLS())
            self._refresh()
        return actions

    def _record(
        self, name: str, logged: tuple[str, ...], status: str | bytes, fault: str | None
    ) -> None:
        """Record a command run outside the fast lane's code (``status``: the reply's status
        line, as text or as its first buffer in bytes)."""
        history = self.history
        if history.enabled:
            history.add_command(
                (self.id, self.client, self.user, name, logged, status, self.tls, _now(), fault)
            )
