"""The POP3 session as a state machine, with no I/O (sans-IO, in the spirit of h11).

Bytes from the client go in through :meth:`Session.receive_data`; each call of
:meth:`Session.next_actions` handles one complete command line and returns what
the transport must do: :class:`Send` bytes, :class:`Pause`, :class:`StartTLS`
or :class:`Close`.  The transport (``fakepop3.server``) only moves bytes.

The RFC text that each check implements is quoted beside it.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import itertools
import time
from collections.abc import Callable, MutableMapping
from collections.abc import Set as AbstractSet

from .. import history as _history
from ..auth import (
    Authenticator,
    Challenge,
    Failure,
    Mechanism,
    Success,
    make_mechanism,
)
from ..history import History, SessionRecord
from ..store import Mailbox, MailStore, Message
from . import _replies
from ._actions import Action, Close, FaultHook, Send, StartTLS
from ._replies import (
    _AUTHORIZATION,
    _CLOSED,
    _LOGGED_IN,
    _LOGGING_OUT,
    _NO_ANSWERS,
    _NONE_DELETED,
    _OK_REPLY,
    _TRANSACTION,
    _UPDATE,
    _lines,
    _new_tuple,
    _now,
    _remember_status,
    _retr_status,
    _status_line,
    _status_of,
)
from ._settings import Settings
from ._state import MAX_LINE, MAX_SASL_LINE, State

_session_ids = itertools.count(1)
# Bound by assignment, not by import: Python 3.11 to 3.13 compile a method call on a name bound
# by an import as an attribute read (a bound method made per call).  See bench/README.md,
# "Speed notes".
_CONSTANT_STATUS = _replies._CONSTANT_STATUS
_RETR_STATUS = _replies._RETR_STATUS


class Session:
    """One POP3 session, from greeting to close.

    ``record`` is the history entry of this session; ``clock`` returns seconds
    (``time.monotonic`` unless a test injects another).
    """

    # Every attribute is set in __init__, none is a class-level default: on Python 3.11 an
    # attribute read is only specialized (several times cheaper) when the class has no
    # attribute of that name and the instance has its own value.  Keep them fewer than 30:
    # past that CPython stops sharing the attribute layout and every read gets slower
    # (measured: 7% more instructions per session with 30).
    state: State
    user: str | None
    mailbox: Mailbox | None
    messages: tuple[Message, ...]
    #: Numbers of the messages marked as deleted (a new set at the first DELE).
    deleted: AbstractSet[int]
    # Answers about the snapshot (STAT, LIST, UIDL), shared with the other sessions on it;
    # the session gets the dict of its snapshot at login (read-only before).
    _answers: MutableMapping[str, tuple[bytes, ...]]
    utf8: bool
    language: str
    bad_commands: int
    clock: Callable[[], float]
    _pending_user: str | None
    _sasl: Mechanism | None
    _partial: bytes
    _discarding: bool
    _starting_tls: bool
    _close_reason: str
    _released: bool  # the maildrop lock, taken at login, was given back
    _lane_open: bool

    def __init__(
        self,
        store: MailStore,
        settings: Settings | None = None,
        *,
        history: History | None = None,
        client: tuple[str, int] = ("127.0.0.1", 0),
        tls: bool = False,
        faults: FaultHook | None = None,
        clock: Callable[[], float] = time.monotonic,
        auth: Authenticator | None = None,
    ) -> None:
        settings = settings or Settings()
        # A fakepop3.Faults gives the core its hook object (Faults.hook); any other FaultHook
        # is used as it is.
        faults = getattr(faults, "hook", faults)
        self._setup(
            store,
            settings,
            history if history is not None else History(enabled=False),
            client,
            tls,
            faults,
            clock,
            auth or Authenticator(store, any_login=settings.any_login),
        )

    def _setup(
        self,
        store: MailStore,
        settings: Settings,
        history: History,
        client: tuple[str, int],
        tls: bool,
        faults: FaultHook | None,
        clock: Callable[[], float],
        auth: Authenticator,
    ) -> None:
        # __init__'s work with every argument given, positionally: the server makes a session
        # per connection with Session.__new__ and _setup, because a class called with keyword
        # arguments costs ~2,500 instructions more (CPython 3.11 builds a dict of them).
        self.settings = settings
        self.store = store
        self.auth = auth
        self.history = history
        self.id = session_id = next(_session_ids)
        self.record: SessionRecord = history.open_session(session_id, client, tls)
        self.client = client
        self.tls = tls
        self.faults = faults
        self.clock = clock
        # Complete lines waiting (None marks an overlong one); a list: an empty deque costs
        # ~600 bytes per idle session, and the queue is short (one packet's lines).
        self._lines: list[bytes | None] = []
        self._reply = settings.replies
        self.state = _AUTHORIZATION
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
        self._close_reason = _history.QUIT
        self._released = False
        self._lane_open = True  # see _refresh_lane

    @property
    def pending_user(self) -> str | None:
        """The name given by USER, while it waits for PASS (None otherwise)."""
        return self._pending_user

    @property
    def timestamp(self) -> str:
        """The APOP timestamp of this session's greeting (RFC 1939 s7)."""
        return f"{self._reply.stamp_head}{self.id}{self._reply.stamp_tail}"

    # --- input ---------------------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        """Buffer bytes from the client.  An overlong line is never buffered past the limit.

        RFC 2449 s4: command lines "MUST NOT exceed 255 octets, including the
        terminating CRLF".  The rest of an overlong line is discarded, and the
        line is answered with one ``-ERR`` when its end arrives.
        """
        if self.state is _CLOSED:
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
        self._refresh_lane()

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

    def greeting_line(self) -> bytes | None:
        """The fast lane of :meth:`greeting`: the ``+OK`` line, or None when a fault hook is
        armed (a connect fault may replace it: call :meth:`greeting` instead)."""
        if self.faults is not None and self.faults.armed:
            return None
        return self._greeting_bytes()

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

    def next_actions(self) -> list[Action] | None:
        """Handle the next complete command line; None when no complete line is buffered."""
        actions = self._next_actions()
        self._refresh_lane()
        return actions

    def _refresh_lane(self) -> None:
        """Work out ``_lane_open``: may :meth:`answer_line` answer the next line?

        Not while anything is buffered, a SASL exchange or STLS is under way, or after the
        session closed.  Kept in one flag, read once per command: each entry point that can
        change these refreshes it, and the handlers that close it mid-command clear it.
        """
        self._lane_open = not (
            self._lines
            or self._partial
            or self._discarding
            or self._sasl is not None
            or self._starting_tls
            or self.state is _CLOSED
        )

    def _next_actions(self) -> list[Action] | None:
        if self.state is _CLOSED or not self._lines:
            return None
        raw = self._lines.pop(0)
        if raw is not None and self._sasl is None and len(raw) >= self.settings.max_line:
            raw = None  # buffered under the SASL limit, but it is a command line
        if raw is None and self._sasl is not None:
            self._sasl = None  # RFC 5034 s4: the exchange fails with -ERR, no half-open state
            reply = self._reply.err("SASL response too long; authentication cancelled.")
            return self._finish("SASL", ("***",), (reply,))
        if raw is None:
            text = f"Command line too long (at most {self.settings.max_line} octets)."
            return self._finish("", (), (self._reply.err(text),), bad=True)
        if raw.endswith(b"\r"):
            raw = raw[:-1]
        if self._sasl is not None:
            return self._sasl_response(raw)
        return self._command(raw)

    def answer_line(self, data: bytes) -> tuple[bytes, ...] | None:
        """The fast lane: answer ``data`` at once if it is exactly one plain command line.

        The same as ``receive_data(data)`` then ``next_actions()`` (the same reply, state
        and history), for the usual case only: nothing is buffered, ``data`` is one
        complete line under the limit, no fault rule is armed, and the command answers
        with one reply and goes on (or, for QUIT, closes: the transport closes the
        connection after the reply when ``state`` is ``CLOSED``).  Anything else returns
        None having consumed nothing; pass it to :meth:`receive_data` as usual.
        """
        if not self._lane_open:  # input buffered, SASL or STLS under way, or closed
            return None
        faults = self.faults
        if faults is not None and faults.armed:
            return None
        quick = _PARSED_LINES.get(data)  # the usual lines, parsed once (see _PARSED_LINES)
        if quick is not None:
            name, args, logged = quick
        else:
            end = len(data) - 1
            if end < 1 or end >= self.settings.max_line or data.find(b"\n") != end:
                return None
            if data.find(b"\0") >= 0:  # not `in`: bytes.__contains__ tries an int first (slow)
                return None
            line = data[: end - 1] if data[end - 1] == 13 else data[:end]  # one CR goes
            keyword, _, rest = line.partition(b" ")
            found = _QUICK.get(keyword) or _QUICK.get(keyword.upper())
            if found is None:
                return None  # not a command of the fast lane, or a line that is not plain
            name = found
            try:
                text = rest.decode("utf-8")
            except UnicodeDecodeError:
                return None
            args = (text,) if name == "PASS" and text else tuple(text.split())
            if name in _SECRET_COMMANDS:
                logged = _mask(name, args)
            else:
                logged = args
                if end < MAX_LINE:
                    _remember_line(data, name, args)
        # The handlers of the fast lane's commands that these settings have (not switched off).
        handler = self._reply.quick_handlers.get(name)
        if handler is None:
            return None
        reply = handler(self, args)
        if not self._lane_open:  # the command closed the lane (QUIT, AUTH): work it out again
            self._refresh_lane()
        history = self.history
        if history.enabled:
            # _status_line, then _log, inlined: this runs for nearly every command, and the
            # two calls cost ~7% of a session's instructions.
            status = _CONSTANT_STATUS.get(reply[0])  # handlers give bytes: hashed once
            if status is None:
                status = _status_line(reply[0])
            entry = (self.id, self.client, self.user, name, logged, status, self.tls, _now(), None)
            self.record._log.append(entry)  # History._append inlined: both appends are atomic
            history._commands.append(entry)
            if history._listeners:
                history._notify(entry)
        return reply

    def connection_lost(self, reason: str = _history.DROP) -> None:
        """The connection ended.  Unless QUIT ran UPDATE, nothing is deleted (RFC 1939 s6)."""
        if self.mailbox is not None and not self._released:
            self.mailbox.release(self)
            self._released = True
        self.state = _CLOSED
        self._lane_open = False
        self.history.close_session(self.record, reason)

    @property
    def close_reason(self) -> str:
        """Why the session closed itself (the end reason of its history, once ``CLOSED``)."""
        return self._close_reason

    def tls_started(self) -> None:
        """The TLS handshake after STLS finished."""
        self.tls = True
        self.record.tls = True
        self._refresh_lane()

    # --- dispatch ------------------------------------------------------------------------
    def _command(self, raw: bytes) -> list[Action]:
        if raw.find(b"\0") >= 0:
            return self._finish(
                "", (), (self._reply.err("Command line contains a NUL byte."),), bad=True
            )
        try:
            line = raw.decode("utf-8")
        except UnicodeDecodeError:
            return self._finish(
                "", (), (self._reply.err("Command line is not valid UTF-8."),), bad=True
            )
        if not line.strip():
            return self._finish("", (), (self._reply.err("Empty command line."),), bad=True)
        keyword, _, rest = line.lstrip(" ").partition(" ")
        name = keyword.upper()
        # PASS keeps the whole rest of the line: a password may contain spaces (RFC 1939 s7).
        args = (rest,) if name == "PASS" and rest else tuple(rest.split())
        handler = _HANDLERS.get(name)
        if handler is None or name in self._reply.disabled_commands:
            return self._unknown(name, args)
        faults = self.faults
        if faults is not None and faults.armed:  # a Faults with no rules: skip the call
            fault = faults.on_command(self, name, args)
            if fault is not None:
                reply: tuple[bytes | memoryview, ...] = ()
                if fault.runs_command:
                    reply = handler(self, args)
                actions = fault.actions(reply)
                status = _status_of(actions)
                self._log(name, args, status, fault.description)
                return self._after(actions, reply)
        reply = handler(self, args)
        return self._finish(name, args, reply)

    def _unknown(self, name: str, args: tuple[str, ...]) -> list[Action]:
        if self.state is _TRANSACTION:
            text = f"Unknown command: {name[:40]}"
        else:
            text = "Unknown command."
        # A line the server does not know may be a secret (a password or SASL response sent
        # after a refused PASS/AUTH): the history keeps a plausible keyword only, and no args.
        recorded = name if 3 <= len(name) <= 4 and name.isascii() and name.isalpha() else "***"
        return self._finish(recorded, ("***",) if args else (), (self._reply.err(text),), bad=True)

    def _finish(
        self,
        name: str,
        args: tuple[str, ...],
        reply: tuple[bytes | memoryview, ...],
        *,
        bad: bool = False,
    ) -> list[Action]:
        too_many = False
        if bad and self.state is _AUTHORIZATION:
            self.bad_commands += 1
            if self.bad_commands >= self.settings.max_bad_commands:
                too_many = True  # this reply replaces the line's own -ERR, in the history too
                reply = (self._reply.err("Too many invalid commands, closing."),)
        self._log(name, args, _status_line(reply[0] if reply else b""), None)
        if too_many:
            self._close()
            return [Send(reply), Close(_history.SERVER)]
        if self.state is not _CLOSED and not self._starting_tls:
            return [Send(reply)]  # the common case: one reply, the session goes on
        return self._after([Send(reply)], reply)

    def _after(self, actions: list[Action], reply: tuple[bytes | memoryview, ...]) -> list[Action]:
        if self.state is not _CLOSED and not self._starting_tls and len(actions) == 1:
            if type(actions[0]) is Send:
                return actions  # the common case: one reply, the session goes on
        if self.state is _CLOSED or any(isinstance(a, Close) for a in actions):
            if self.state is not _CLOSED:
                self._close()
            if not any(isinstance(a, Close) for a in actions):
                actions.append(Close(self._close_reason))
        if self._starting_tls and any(isinstance(a, Send) for a in actions):
            self._starting_tls = False
            # RFC 2595 s4 / CVE-2011-0411: anything pipelined after STLS is discarded.
            self._lines.clear()
            self._partial = b""
            self._discarding = False
            actions.append(StartTLS())
        return actions

    def _close(self) -> None:
        self.state = _CLOSED
        self._lane_open = False
        self._lines.clear()
        self._partial = b""

    def _log(self, name: str, args: tuple[str, ...], status: str, fault: str | None) -> None:
        history = self.history
        if not history.enabled:
            return
        if name in _SECRET_COMMANDS:
            args = _mask(name, args)
        # The fields of a CommandRecord as a plain tuple (see SessionRecord).
        entry = (self.id, self.client, self.user, name, args, status, self.tls, _now(), fault)
        history._append(self.record, entry)

    # --- helpers -------------------------------------------------------------------------
    def _state_error(self, state: State, name: str) -> bytes:
        if state is _TRANSACTION:
            return self._reply.err(f"{name} is only valid after login (TRANSACTION state).")
        return self._reply.err(f"{name} is only valid before login (AUTHORIZATION state).")

    def _message_number(self, name: str, arg: str) -> Message | bytes:
        """Resolve a message-number argument, or return the ``-ERR`` reply."""
        # RFC 1939 s5: "a message-number argument ... may NOT refer to a message marked as deleted".
        if not arg.isascii() or not arg.isdigit():
            return self._reply.err(f"Invalid message number: {arg[:40]}")
        number = int(arg)
        if number < 1 or number > len(self.messages):
            return self._reply.err(f"There's no message {number}.")
        if number in self.deleted:
            return self._reply.err("Message is deleted.")
        return self.messages[number - 1]

    def _arity(
        self, name: str, args: tuple[str, ...], low: int, high: int, what: str
    ) -> bytes | None:
        if len(args) < low:
            return self._reply.err(f"{name} needs {what}.")
        if len(args) > high:
            return self._reply.err(f"Too many arguments for {name}.")
        return None

    def _login(self, mailbox: Mailbox) -> bytes:
        s = self.settings
        now = self.clock()
        if (
            s.login_delay
            and s.enforce_login_delay
            and mailbox.last_login is not None
            and now - mailbox.last_login < s.login_delay
        ):
            # RFC 2449 s8.1.1: LOGIN-DELAY "occurs on an -ERR response to an AUTH, USER,
            # PASS or APOP command" when the user logged in too recently.
            return self._reply.err(
                f"Minimum time between logins is {s.login_delay} seconds.", "LOGIN-DELAY"
            )
        taken = mailbox.login(self)
        if taken is None:
            # RFC 2449 s8.1.2: IN-USE "occurs on an -ERR response to an AUTH, APOP, or PASS
            # command. It indicates the authentication was successful, but the user's maildrop
            # is currently in use".
            return self._reply.err("Mailbox is locked by another POP3 session.", "IN-USE")
        mailbox.last_login = now
        self.mailbox = mailbox
        self.messages, self._answers = taken
        self.user = mailbox.name
        self.record.user = mailbox.name
        self.state = _TRANSACTION
        return _LOGGED_IN

    def _login_refused_before_tls(self) -> bytes | None:
        if self.settings.require_tls and not self.tls:
            return self._reply.err(
                "Plaintext authentication disallowed on non-secure (SSL/TLS) connections; use STLS first.",
                "AUTH",
            )
        return None

    def _auth_failed(
        self, text: str = "Authentication failed.", code: str | None = "AUTH"
    ) -> bytes:
        if code == "AUTH" and not self.settings.enabled("AUTH-RESP-CODE"):
            code = None
        return self._reply.err(text, code)

    # --- commands: AUTHORIZATION --------------------------------------------------------
    def _cmd_user(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "USER"),)
        if len(args) != 1 and (err := self._arity("USER", args, 1, 1, "a user name")):
            return (err,)
        if self.settings.require_tls and (err := self._login_refused_before_tls()):
            return (err,)
        self._pending_user = args[0]
        # Like Dovecot: +OK for any name, so USER reveals nothing; PASS decides.
        return _OK_REPLY

    def _cmd_pass(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "PASS"),)
        if self.settings.require_tls and (err := self._login_refused_before_tls()):
            return (err,)
        if self._pending_user is None:
            return (self._reply.err("No username given; send USER first."),)
        if not args:
            return (self._reply.err("PASS needs a password."),)
        user, self._pending_user = self._pending_user, None
        mailbox = self.auth.check_password(user, args[0])
        if mailbox is None:
            self.user = None
            return (self._auth_failed(),)
        return (self._login(mailbox),)

    def _cmd_apop(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "APOP"),)
        if len(args) != 2 and (err := self._arity("APOP", args, 2, 2, "a user name and a digest")):
            return (err,)
        if self.settings.require_tls and (err := self._login_refused_before_tls()):
            return (err,)
        user, digest = args
        if len(digest) != 32 or any(c not in "0123456789abcdefABCDEF" for c in digest):
            return (self._reply.err("APOP digest must be 32 hexadecimal digits."),)
        timestamp = self.timestamp.encode()

        def expected(password: str) -> str:
            # RFC 1939 s7: MD5 of the timestamp (with its angle brackets) and the shared secret.
            return hashlib.md5(timestamp + password.encode("utf-8")).hexdigest()

        mailbox = self.auth.check_digest(user, expected, digest)
        if mailbox is None:
            return (self._auth_failed(),)
        return (self._login(mailbox),)

    def _cmd_auth(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "AUTH"),)
        if not args:
            # RFC 1734 behaviour that clients still use: a bare AUTH lists the mechanisms.
            return _lines(
                self._reply.ok("List of supported mechanisms follows"), self._mechanisms()
            )
        if err := self._arity("AUTH", args, 1, 2, "a mechanism name"):
            return (err,)
        if self.settings.require_tls and (err := self._login_refused_before_tls()):
            return (err,)
        name = args[0].upper()
        if name not in self._mechanisms():
            return (self._reply.err(f"Unsupported authentication mechanism: {args[0][:40]}"),)
        mech = make_mechanism(name, self.auth, self.settings.hostname)
        assert mech is not None
        initial: bytes | None = None
        if len(args) == 2:
            # RFC 5034 s4: an initial response of "=" is an empty one.
            decoded = b"" if args[1] == "=" else _b64(args[1])
            if decoded is None:
                return (self._reply.err("Invalid base64 in initial response."),)
            initial = decoded
        return self._sasl_step(mech, mech.start(initial))

    def _sasl_step(self, mech: Mechanism, step: Challenge | Success | Failure) -> tuple[bytes, ...]:
        if isinstance(step, Challenge):
            self._sasl = mech
            self._lane_open = False
            return (b"+ " + base64.b64encode(step.data) + b"\r\n",)
        self._sasl = None
        if isinstance(step, Success):
            return (self._login(step.mailbox),)
        return (self._auth_failed(step.text, step.code),)

    def _sasl_response(self, raw: bytes) -> list[Action]:
        mech = self._sasl
        assert mech is not None
        if raw.strip() == b"*":
            # RFC 5034 s4: "If the client wishes to cancel the authentication exchange, it
            # issues a line with a single '*'. If the server receives such a response, it
            # MUST reject the AUTH command by sending an -ERR reply."
            self._sasl = None
            return self._finish("SASL", ("*",), (self._reply.err("Authentication cancelled."),))
        decoded = _b64(raw.decode("ascii", "replace").strip()) if raw.strip() else b""
        if decoded is None:
            self._sasl = None
            return self._finish(
                "SASL", ("***",), (self._reply.err("Invalid base64 in SASL response."),)
            )
        return self._finish("SASL", ("***",), self._sasl_step(mech, mech.step(decoded)))

    def _mechanisms(self) -> list[str]:
        if self.settings.require_tls and not self.tls:
            return []
        return list(self.settings.mechanisms)

    def _cmd_stls(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if not self.settings.tls_available:
            return (self._reply.err("STLS is not available: this server has no TLS certificate."),)
        if self.tls:
            # RFC 2595 s4: the server MAY answer -ERR when TLS is already active.
            return (self._reply.err("TLS is already active."),)
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "STLS"),)
        if args:
            return (self._reply.err("Too many arguments for STLS."),)
        if self.utf8:
            # RFC 6856 s2: after UTF8, the client MUST NOT issue STLS.
            return (self._reply.err("STLS is not allowed after UTF8."),)
        self._starting_tls = True
        self._lane_open = False
        return (self._reply.ok("Begin TLS negotiation now."),)

    def _cmd_utf8(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _AUTHORIZATION:
            return (self._state_error(_AUTHORIZATION, "UTF8"),)
        if args:
            return (self._reply.err("Too many arguments for UTF8."),)
        self.utf8 = True
        return (self._reply.ok("UTF8 enabled"),)

    def _cmd_lang(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        langs = self.settings.languages
        if not args:
            return _lines(
                self._reply.ok("Language listing follows:"), [f"{k} {v}" for k, v in langs.items()]
            )
        if len(args) > 1:
            return (self._reply.err("Too many arguments for LANG."),)
        tag = args[0]
        if tag == "*":
            self.language = next(iter(langs))
            return (self._reply.ok(f"{self.language} Default language selected"),)
        for key in langs:
            if key.lower() == tag.lower():
                self.language = key
                return (self._reply.ok(f"{key} Language changed"),)
        return (self._reply.err(f"Unsupported language: {tag[:40]}"),)

    def _cmd_capa(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if args:
            return (self._reply.err("Too many arguments for CAPA."),)
        return _lines(self._reply.ok("Capability list follows"), self.capabilities())

    def capabilities(self) -> list[str]:
        """What CAPA lists now (RFC 2449 s5 and s6; STLS per RFC 2595; UTF8/LANG per RFC 6856)."""
        s = self.settings
        caps: list[str] = []
        for cap in ("TOP", "UIDL", "RESP-CODES", "PIPELINING", "AUTH-RESP-CODE"):
            # AUTH-RESP-CODE promises [AUTH] codes, which RESP-CODES switched off strips.
            if s.enabled(cap) and (cap != "AUTH-RESP-CODE" or s.enabled("RESP-CODES")):
                caps.append(cap)
        if s.enabled("USER") and not (s.require_tls and not self.tls):
            caps.append("USER")
        mechs = self._mechanisms()
        if s.enabled("SASL") and mechs:
            caps.append("SASL " + " ".join(mechs))
        # RFC 6856 s2: after UTF8 the client MUST NOT issue STLS, so it is no longer offered.
        if s.enabled("STLS") and s.tls_available and not self.tls and not self.utf8:
            caps.append("STLS")
        if s.enabled("UTF8"):
            caps.append("UTF8 USER")
        if s.enabled("LANG"):
            caps.append("LANG")
        if s.login_delay is not None:
            caps.append(f"LOGIN-DELAY {s.login_delay}")
        if s.expire is not None:
            caps.append(f"EXPIRE {str(s.expire).upper()}")
        if s.enabled("IMPLEMENTATION") and self.state is _TRANSACTION:
            caps.append(f"IMPLEMENTATION {s.implementation}")
        return caps

    def _cmd_quit(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if args:
            return (self._reply.err("Too many arguments for QUIT."),)
        if self.state is _TRANSACTION:
            # RFC 1939 s6: QUIT in TRANSACTION enters UPDATE: "removes all messages marked
            # as deleted from the maildrop and replies as to the status of this operation".
            self.state = _UPDATE
            mailbox = self.mailbox
            assert mailbox is not None
            if self.deleted:
                mailbox.commit_deletions([self.messages[n - 1] for n in sorted(self.deleted)])
            mailbox.release(self)
            self._released = True
        self._close_reason = _history.QUIT
        self.state = _CLOSED
        self._lane_open = False
        return _LOGGING_OUT

    # --- commands: TRANSACTION ----------------------------------------------------------
    def _live(self) -> list[tuple[int, Message]]:
        return [(i, m) for i, m in enumerate(self.messages, 1) if i not in self.deleted]

    def _cmd_stat(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "STAT"),)
        if args:
            return (self._reply.err("Too many arguments for STAT."),)
        return self._shared_answer("STAT")

    def _stat_answer(self) -> tuple[bytes, ...]:
        live = self._live()
        return (self._reply.ok(f"{len(live)} {sum(m.size for _, m in live)}"),)

    def _shared_answer(self, key: str) -> tuple[bytes, ...]:
        """STAT, LIST or UIDL about the whole maildrop: with no deletion marked, every session
        on the same unchanged maildrop gets the same bytes, so they are computed once."""
        if self.deleted:
            return _ANSWER_MAKERS[key](self)
        answer = self._answers.get(key)
        if answer is None:
            answer = self._answers[key] = _ANSWER_MAKERS[key](self)
            _remember_status(answer[0])
        return answer

    def _cmd_list(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        return self._listing("LIST", args)

    def _cmd_uidl(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        return self._listing("UIDL", args)

    def _listing(self, name: str, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, name),)
        if len(args) > 1:
            return (self._reply.err(f"Too many arguments for {name}."),)
        if args:
            message = self._message_number(name, args[0])
            if isinstance(message, bytes):
                return (message,)
            value = message.size if name == "LIST" else message.uid
            return (self._reply.ok(f"{int(args[0])} {value}"),)
        return self._shared_answer(name)

    def _list_answer(self) -> tuple[bytes, ...]:
        live = self._live()
        return _lines(self._reply.ok(f"{len(live)} messages:"), [f"{i} {m.size}" for i, m in live])

    def _uidl_answer(self) -> tuple[bytes, ...]:
        return _lines(self._reply.ok(), [f"{i} {m.uid}" for i, m in self._live()])

    def _cmd_retr(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "RETR"),)
        if len(args) != 1 and (err := self._arity("RETR", args, 1, 1, "a message number")):
            return (err,)
        message = self._message_number("RETR", args[0])
        if isinstance(message, bytes):
            return (message,)
        # The slots behind Message.size and Message.wire, read directly once made: a property
        # read is a Python call (CPython 3.11 does not specialize it), and RETR is frequent.
        size = message._size
        if size is None:
            size = message.size
        wire = message._stuffed
        if wire is None:
            wire = message.wire
        status = _RETR_STATUS.get(size)
        if status is None:
            status = _retr_status(size)
        return (status, wire, b".\r\n")

    def _cmd_top(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "TOP"),)
        if len(args) != 2 and (
            err := self._arity("TOP", args, 2, 2, "a message number and a number of lines")
        ):
            return (err,)
        message = self._message_number("TOP", args[0])
        if isinstance(message, bytes):
            return (message,)
        if not args[1].isascii() or not args[1].isdigit():
            return (self._reply.err(f"Invalid size: {args[1][:40]}"),)
        return (self._reply.ok(), message.top(int(args[1])), b".\r\n")

    def _cmd_dele(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "DELE"),)
        if len(args) != 1 and (err := self._arity("DELE", args, 1, 1, "a message number")):
            return (err,)
        message = self._message_number("DELE", args[0])
        if isinstance(message, bytes):
            return (message,)
        self.deleted = {*self.deleted, int(args[0])}
        return (self._reply.ok("Marked to be deleted."),)

    def _cmd_rset(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "RSET"),)
        if args:
            return (self._reply.err("Too many arguments for RSET."),)
        self.deleted = frozenset()
        live = self._live()
        return (self._reply.ok(f"{len(live)} messages ({sum(m.size for _, m in live)} octets)"),)

    def _cmd_noop(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if self.state is not _TRANSACTION:
            return (self._state_error(_TRANSACTION, "NOOP"),)
        if args:
            return (self._reply.err("Too many arguments for NOOP."),)
        return (self._reply.ok(),)

    def _cmd_obsolete(self, args: tuple[str, ...]) -> tuple[bytes, ...]:
        # LAST (RFC 1460) and RPOP (RFC 1081) are gone from RFC 1939; fetchmail still sends LAST.
        return (self._reply.err("Command not supported (obsolete)."),)


#: The capability that must be on for a command to exist (RFC 2449 s6: CAPA announces them).
_COMMAND_CAPABILITY = {
    "TOP": "TOP",
    "UIDL": "UIDL",
    "USER": "USER",
    "PASS": "USER",
    "APOP": "APOP",
    "STLS": "STLS",
    "UTF8": "UTF8",
    "LANG": "LANG",
    "CAPA": "CAPA",
    "AUTH": "SASL",
}


def _shared_first(
    key: str, handler: Callable[[Session, tuple[str, ...]], tuple[bytes, ...]]
) -> Callable[[Session, tuple[str, ...]], tuple[bytes, ...]]:
    """``handler`` (STAT, LIST or UIDL), answering the usual case from the answers shared by
    the sessions on the snapshot first: no argument, nothing deleted, the answer made (by
    Session._shared_answer).  Made here, not by a call in the handler: one Python call less
    on a command nearly every session sends."""

    def answer(session: Session, args: tuple[str, ...]) -> tuple[bytes, ...]:
        if not args and not session.deleted and session.state is _TRANSACTION:
            shared = session._answers.get(key)
            if shared is not None:
                return shared
        return handler(session, args)

    return answer


#: What computes each answer of Session._shared_answer.
_ANSWER_MAKERS: dict[str, Callable[[Session], tuple[bytes, ...]]] = {
    "STAT": Session._stat_answer,
    "LIST": Session._list_answer,
    "UIDL": Session._uidl_answer,
}


# Every handler's reply is bytes: answer_line hashes its first buffer (the status line).
_HANDLERS: dict[str, Callable[[Session, tuple[str, ...]], tuple[bytes, ...]]] = {
    "USER": Session._cmd_user,
    "PASS": Session._cmd_pass,
    "APOP": Session._cmd_apop,
    "AUTH": Session._cmd_auth,
    "STLS": Session._cmd_stls,
    "UTF8": Session._cmd_utf8,
    "LANG": Session._cmd_lang,
    "CAPA": Session._cmd_capa,
    "QUIT": Session._cmd_quit,
    "STAT": _shared_first("STAT", Session._cmd_stat),
    "LIST": _shared_first("LIST", Session._cmd_list),
    "UIDL": _shared_first("UIDL", Session._cmd_uidl),
    "RETR": Session._cmd_retr,
    "TOP": Session._cmd_top,
    "DELE": Session._cmd_dele,
    "RSET": Session._cmd_rset,
    "NOOP": Session._cmd_noop,
    "LAST": Session._cmd_obsolete,
    "RPOP": Session._cmd_obsolete,
}

#: The name of every command the core knows (faults match on these).
COMMAND_NAMES = frozenset(_HANDLERS)

#: The commands of :meth:`Session.answer_line`: all but STLS, whose reply must be followed by
#: the TLS handshake (an action the fast lane cannot return).
_QUICK = {name.encode(): name for name in _HANDLERS if name != "STLS"}
#: The usual lines with no argument (``b"STAT\\r\\n"``...), parsed once.
_PLAIN_LINES: dict[bytes, tuple[str, tuple[str, ...], tuple[str, ...]]] = {
    name.encode() + end: (name, (), ()) for name in _QUICK.values() for end in (b"\r\n", b"\n")
}
#: Lines of the fast lane already parsed, to their command and arguments: clients send the
#: same few lines again and again (``RETR 1``, ``USER alice``...).  Only lines valid under any
#: settings (shorter than 255 octets) and holding no secret (no PASS, APOP, AUTH) are kept,
#: at most 4,096 of them.
_PARSED_LINES = dict(_PLAIN_LINES)


def _remember_line(data: bytes, name: str, args: tuple[str, ...]) -> None:
    if len(_PARSED_LINES) > 4096:  # a client sending ever new lines: start again
        _PARSED_LINES.clear()
        _PARSED_LINES.update(_PLAIN_LINES)
    _PARSED_LINES[data] = (name, args, args)  # args as logged: never a secret here


def _b64(text: str) -> bytes | None:
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, UnicodeEncodeError, ValueError):
        return None


def _mask(name: str, args: tuple[str, ...]) -> tuple[str, ...]:
    if name == "PASS" and args:
        return ("***",)
    if name == "APOP" and len(args) == 2:
        return (args[0], "***")
    if name == "AUTH" and len(args) >= 2:
        return (args[0], "***")
    return args


_SECRET_COMMANDS = frozenset({"PASS", "APOP", "AUTH"})
