"""Fault injection: make the server misbehave the way real servers do.

Every server has a :class:`Faults` (``server.faults``).  Add rules to it, in
Python or as plain dicts, before or while the server runs::

    server.faults.on("RETR", nth=2).error("Try later", code="SYS/TEMP")
    server.faults.on("RETR", args="3").disconnect(after_bytes=100)
    server.faults.on("LIST").malformed("wrong-size")
    server.faults.on_connect(nth=1).refuse()
    server.faults.vanish(2, user="alice")
    ...
    server.faults.assert_all_fired()

A rule is a *match* (which commands or connections it applies to) and an
*action* (what happens instead of the normal reply).  The first rule that
matches and is due fires; the others do not.  Each fired fault is recorded in
the history beside the command it hit (``CommandRecord.fault``), and each rule
counts how often it fired (:attr:`FaultRule.fired`).

Matching
--------
``on(command, *, args=None, nth=None, times=None, user=None, probability=None)``

- ``command``: a POP3 command name (case-insensitive) or ``"*"`` for any command.
  SASL continuation lines are part of their ``AUTH`` and are never matched.
- ``args``: only this exact argument list (a string is split on spaces: ``args="2"``
  matches ``RETR 2``).
- ``user``: only commands of this user (before login: the name given to USER or
  APOP, or the pending USER name for PASS).
- ``nth``: only the n-th matching command (1-based).  Occurrences are counted *per
  rule*, over every session of the server since the rule was added, among the
  commands that match its command, ``args`` and ``user``.
- ``times``: fire at most this many times.  With ``nth``, the rule fires on
  occurrences ``nth`` to ``nth + times - 1``; ``nth`` alone means ``times=1``;
  neither means every time.
- ``probability``: fire with this chance (0 < p <= 1) when otherwise due, drawn from
  the seeded ``random.Random`` of the :class:`Faults` (``Faults(seed=0)`` by default,
  so a run is reproducible).

Command actions
---------------
- ``error(text, code=None)``: reply ``-ERR [code] text``; the command does not run
  (a DELE marks nothing, a QUIT deletes nothing).
- ``delay(seconds)``: run the command, wait, then reply.
- ``disconnect()``: close the connection before the reply; the command does not run.
  ``disconnect(after_bytes=n)``: run the command, send its first ``n`` octets, close.
  A QUIT cut this way *has* deleted its messages: the client cannot tell.
- ``truncate()``: run the command, send the reply without its last line end (a
  multi-line reply without its terminating ``.`` line), close.
- ``malformed(kind)``: run the command, then spoil its reply: ``"no-status"`` (the
  ``+OK``/``-ERR`` indicator removed), ``"bare-lf"`` (LF line ends instead of CRLF),
  ``"long-line"`` (status line padded to ``length`` octets, default 4096: over the
  RFC 1939 limit of 512 and poplib's 2048), ``"wrong-size"`` (LIST, STAT and RETR
  octet counts off by ``delta``, default 100).
- ``reply(data)``: send these bytes instead of the reply; the command does not run.

A dropped connection never runs UPDATE, so nothing is deleted unless QUIT ran.

Connect actions (``on_connect(*, nth=None, times=None, probability=None)``)
-----------------------------------------------------------------------------
``refuse()`` (close before the greeting), ``delay(seconds)`` (greeting late),
``error(text, code=None)`` (``-ERR`` greeting, then close) and
``throttle(bytes_per_second)`` (the whole session drips out at that rate).

Mailbox faults
--------------
- ``vanish(message, *, user=None, ...)``: message number ``message`` is gone from the
  maildrop after LIST: RETR, TOP, DELE, ``LIST n`` and ``UIDL n`` of it get
  ``-ERR No such message.`` (the store itself keeps the message).
- ``size_mismatch(message, *, delta=100, user=None, ...)``: LIST (and STAT) report the
  message's size off by ``delta`` octets; RETR sends the real message.

Dict form
---------
:meth:`Faults.from_config` and :meth:`Faults.add_from_dict` take the same rules as
dicts (for the pytest marker and the standalone server's TOML config).  Keys:

- ``on``: ``"command"`` (the default), ``"connect"`` or ``"mailbox"`` (the default
  when ``action`` is ``"vanish"`` or ``"size_mismatch"``).
- ``action`` (required): for commands ``error``, ``delay``, ``disconnect``,
  ``truncate``, ``malformed``, ``reply``; for connect ``refuse``, ``delay``, ``error``,
  ``throttle``; for the mailbox ``vanish``, ``size_mismatch``.
- matching: ``command`` (required for command rules), ``args``, ``user`` (command and
  mailbox rules), ``nth``, ``times``, ``probability`` (all rules); ``message``
  (required for mailbox rules).
- action parameters: ``text`` and ``code`` (error), ``seconds`` (delay),
  ``after_bytes`` (disconnect), ``kind``, ``length``, ``delta`` (malformed),
  ``data`` (reply; a string is sent UTF-8 encoded), ``bytes_per_second`` (throttle),
  ``delta`` (size_mismatch).

Example::

    Faults.from_config([
        {"command": "RETR", "nth": 2, "action": "error", "text": "Try later", "code": "SYS/TEMP"},
        {"on": "connect", "nth": 1, "action": "delay", "seconds": 2.5},
        {"action": "vanish", "message": 3, "user": "alice"},
    ])

An unknown key, action or value raises :class:`FaultConfigError` naming the
entry, the problem and what is allowed.
"""

from __future__ import annotations

import itertools
import random
import re
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any, Literal, overload

from . import history as _history
from .protocol import _HANDLERS, Action, Close, CommandFault, Pause, Send, Session, Throttle

__all__ = [
    "MALFORMED_KINDS",
    "FaultConfigError",
    "FaultRule",
    "Faults",
    "OnCommand",
    "OnConnect",
]

Reply = tuple[bytes | memoryview, ...]
MalformedKind = Literal["no-status", "bare-lf", "long-line", "wrong-size"]

#: The kinds of :meth:`OnCommand.malformed`.
MALFORMED_KINDS: tuple[str, ...] = ("no-status", "bare-lf", "long-line", "wrong-size")
#: The command names a rule can match (besides ``"*"``).
COMMANDS = frozenset(_HANDLERS)
_SIZED = frozenset({"LIST", "STAT", "RETR"})
_MESSAGE_COMMANDS = frozenset({"RETR", "TOP", "DELE", "LIST", "UIDL"})
_MAX_STATUS = 512  # RFC 2449 s4: a response's first line is at most 512 octets with CRLF
# RFC 2449 s3: resp-level = 1*rchar; rchar = %x21-2E / %x30-5C / %x5E-7F
_RESP_LEVEL = r"[\x21-\x2E\x30-\x5C\x5E-\x7E]+"
_RESP_CODE = re.compile(rf"{_RESP_LEVEL}(?:/{_RESP_LEVEL})*")


class FaultConfigError(ValueError):
    """A fault rule (given as a dict, or through the Python API) is not valid."""


# --- checking arguments ----------------------------------------------------------------------
def _positive_int(name: str, value: object, *, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise FaultConfigError(f"{name} must be an integer of at least {low}, not {value!r}")
    return value


def _optional_int(name: str, value: object, *, low: int = 1) -> int | None:
    return None if value is None else _positive_int(name, value, low=low)


def _seconds(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise FaultConfigError(f"{name} must be a number of seconds (0 or more), not {value!r}")
    return float(value)


def _probability(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise FaultConfigError(f"probability must be a number above 0 and at most 1, not {value!r}")
    return float(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise FaultConfigError(f"{name} must be a string, not {value!r}")
    if any(c in value for c in "\r\n\0"):
        raise FaultConfigError(
            f"{name} must be one line (no CR, LF or NUL): {value!r}; "
            "to send any bytes use reply(data)"
        )
    return value


def _command_name(value: object) -> str:
    if not isinstance(value, str):
        raise FaultConfigError(f"command must be a POP3 command name or '*', not {value!r}")
    name = value.strip().upper()
    if name != "*" and name not in COMMANDS:
        raise FaultConfigError(
            f"unknown POP3 command {value!r}: a rule for it would never fire; "
            f"use one of {', '.join(sorted(COMMANDS))} or '*' for any command"
        )
    return name


def _args(value: object) -> tuple[str, ...] | None:
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise FaultConfigError(f"args must be a string such as '2' or a list of strings, not {value!r}")


def _user(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise FaultConfigError(f"user must be a user name (a string), not {value!r}")


def _delta(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value == 0:
        raise FaultConfigError(f"delta must be a non-zero integer, not {value!r}")
    return value


def _status_line(text: str, code: str | None) -> bytes:
    text = _text("text", text)
    if code is not None:
        if not isinstance(code, str):
            raise FaultConfigError(f"code must be a string such as 'SYS/TEMP', not {code!r}")
        bare = code[1:-1] if code.startswith("[") and code.endswith("]") else code
        if not _RESP_CODE.fullmatch(bare):
            raise FaultConfigError(
                f"code {code!r} is not an RFC 2449 response code: use printable ASCII levels "
                "separated by '/', such as 'SYS/TEMP', 'IN-USE', 'LOGIN-DELAY' or 'AUTH'"
            )
        text = f"[{bare}] {text}"
    line = f"-ERR {text}\r\n".encode()
    if len(line) > _MAX_STATUS:
        raise FaultConfigError(
            f"the -ERR line would be {len(line)} octets, over the 512 RFC 2449 allows; "
            "for an overlong line on purpose use malformed('long-line')"
        )
    return line


# --- what a fired fault does -----------------------------------------------------------------
class _Effect:
    """One action of a rule; ``apply`` turns the real reply into the actions to carry out."""

    runs_command = True

    def describe(self) -> str:
        raise NotImplementedError

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Error(_Effect):
    line: bytes
    close: bool = False  # a -ERR greeting is followed by a close
    runs_command = False

    def describe(self) -> str:
        return "error " + self.line.rstrip(b"\r\n").decode()

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        actions: list[Action] = [Send((self.line,))]
        if self.close:
            actions.append(Close(_history.SERVER))
        return actions


@dataclass(frozen=True)
class _Delay(_Effect):
    seconds: float

    def describe(self) -> str:
        return f"delay {self.seconds:g}s"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Pause(self.seconds), Send(reply)]


@dataclass(frozen=True)
class _Disconnect(_Effect):
    runs_command = False

    def describe(self) -> str:
        return "disconnect before the reply"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Close(_history.SERVER)]


@dataclass(frozen=True)
class _Cut(_Effect):
    after_bytes: int

    def describe(self) -> str:
        return f"disconnect after {self.after_bytes} octets of the reply"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(_cut(reply, self.after_bytes)), Close(_history.SERVER)]


@dataclass(frozen=True)
class _Truncate(_Effect):
    def describe(self) -> str:
        return "truncate the reply (no final line end), then disconnect"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        size = sum(len(b) for b in reply)
        if len(reply) > 1 and bytes(reply[-1]) == b".\r\n":
            cut = size - 3  # the terminating "." line
        else:
            cut = max(0, size - 2)  # a single line loses its CRLF
        return [Send(_cut(reply, cut)), Close(_history.SERVER)]


@dataclass(frozen=True)
class _Malformed(_Effect):
    kind: str
    length: int = 4096
    delta: int = 100

    def describe(self) -> str:
        extra = {"long-line": f" ({self.length} octets)", "wrong-size": f" ({self.delta:+d})"}
        return f"malformed reply: {self.kind}{extra.get(self.kind, '')}"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        if not reply:
            return [Send(reply)]
        if self.kind == "wrong-size":
            return [Send(_shift_sizes(reply, command, self.delta, None, session))]
        if self.kind == "bare-lf":
            return [Send(tuple(bytes(b).replace(b"\r\n", b"\n") for b in reply))]
        first = bytes(reply[0])
        status, sep, rest = first.partition(b"\r\n")
        if self.kind == "no-status":
            status = re.sub(rb"^(\+OK|-ERR) ?", b"", status)
        else:  # long-line
            pad = self.length - len(status) - 2
            if pad > 0:
                status += b" " + b"x" * (pad - 1)
        return [Send((status + sep + rest, *reply[1:]))]


@dataclass(frozen=True)
class _Replace(_Effect):
    data: bytes
    runs_command = False

    def describe(self) -> str:
        shown = self.data if len(self.data) <= 60 else self.data[:57] + b"..."
        return f"reply {shown!r}"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send((self.data,))]


@dataclass(frozen=True)
class _Vanish(_Effect):
    message: int
    runs_command = False

    def describe(self) -> str:
        return f"message {self.message} vanished"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send((b"-ERR No such message.\r\n",))]


@dataclass(frozen=True)
class _SizeMismatch(_Effect):
    message: int
    delta: int

    def describe(self) -> str:
        return f"size of message {self.message} reported {self.delta:+d} octets off"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(_shift_sizes(reply, command, self.delta, self.message, session))]


@dataclass(frozen=True)
class _Refuse(_Effect):
    runs_command = False

    def describe(self) -> str:
        return "refuse the connection"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Close(_history.SERVER)]


@dataclass(frozen=True)
class _Throttle(_Effect):
    bytes_per_second: float

    def describe(self) -> str:
        return f"throttle to {self.bytes_per_second:g} bytes/s"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Throttle(self.bytes_per_second), Send(reply)]


def _cut(reply: Reply, limit: int) -> Reply:
    """The first ``limit`` octets of ``reply``, as buffers."""
    out: list[bytes | memoryview] = []
    left = limit
    for buf in reply:
        if left <= 0:
            break
        view = memoryview(buf)
        out.append(view[:left] if len(view) > left else buf)
        left -= len(view)
    return tuple(out)


def _shift_sizes(
    reply: Reply, command: str, delta: int, message: int | None, session: Session
) -> Reply:
    """Move the octet counts in a LIST, STAT or RETR reply by ``delta`` (only ``message``'s)."""
    status = bytes(reply[0])
    if not status.startswith(b"+OK"):
        return reply

    def shift(match: re.Match[bytes]) -> bytes:
        # group 1: what comes before the count (a message number in LIST); group 2: the count
        if message is not None and command == "LIST" and int(match.group(1)) != message:
            return match.group(0)
        return match.group(1) + str(max(0, int(match.group(2)) + delta)).encode()

    if command == "LIST" and len(reply) > 1:
        body = re.sub(rb"(?m)^(\d+ )(\d+)(?=\r?$)", shift, bytes(reply[1]))
        return (status, body, *reply[2:])
    if command == "LIST":
        pattern = rb"(?<=^\+OK )(\d+ )(\d+)"
    elif command == "STAT":
        if message is not None and (
            message in session.deleted or not 1 <= message <= len(session.messages)
        ):
            return reply
        pattern = rb"(?<=^\+OK )(\d+ )(\d+)"
    elif command == "RETR" and message is None:
        pattern = rb"^(\+OK )(\d+)"
    else:
        return reply
    return (re.sub(pattern, shift, status, count=1), *reply[1:])


@dataclass
class _Hit:
    """A fault that fired on one command: what :class:`~fakepop3.protocol.Session` gets."""

    description: str
    runs_command: bool
    effect: _Effect
    command: str
    session: Session

    def actions(self, reply: Reply) -> list[Action]:
        return self.effect.apply(reply, self.command, self.session)


# --- rules -----------------------------------------------------------------------------------
class FaultRule:
    """One fault rule: what it matches, what it does, and how often it fired.

    Rules are made by :meth:`Faults.on`, :meth:`Faults.on_connect`,
    :meth:`Faults.vanish`, :meth:`Faults.size_mismatch` and the dict form.
    """

    def __init__(
        self,
        faults: Faults,
        *,
        kind: Literal["command", "connect"],
        effect: _Effect,
        commands: frozenset[str] | None = None,
        args: tuple[str, ...] | None = None,
        message: int | None = None,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
        label: str = "",
    ) -> None:
        self.faults = faults
        self.kind = kind
        self.effect = effect
        self.commands = commands
        self.args = args
        self.message = message
        self.user = user
        self.nth = nth
        self.times = times
        self.probability = probability
        self.label = label
        self.id = 0
        #: How many times this rule fired.
        self.fired = 0
        #: How many commands (or connections) matched it, fired or not.
        self.seen = 0

    @property
    def limit(self) -> int | None:
        """The most times this rule will fire (None: no limit)."""
        if self.times is not None:
            return self.times
        return 1 if self.nth is not None else None

    @property
    def exhausted(self) -> bool:
        """True once the rule fired as often as it may."""
        limit = self.limit
        return limit is not None and self.fired >= limit

    @property
    def description(self) -> str:
        """What the rule does and when, e.g. ``error -ERR Try later [rule 1: on RETR nth=2]``."""
        return f"{self.effect.describe()} [rule {self.id}: {self.label}]"

    def remove(self) -> None:
        """Take this rule off its :class:`Faults` (it stops firing at once)."""
        self.faults.remove(self)

    def __repr__(self) -> str:
        return f"<FaultRule {self.description}, fired {self.fired} time(s)>"

    # --- used by Faults, under its lock ----------------------------------------------------
    def _matches(self, command: str, args: tuple[str, ...], user: str | None) -> bool:
        if self.commands is not None and command not in self.commands:
            return False
        if self.args is not None and args != self.args:
            return False
        if self.message is not None:
            if not args or not args[0].isascii() or not args[0].isdigit():
                return False
            if int(args[0]) != self.message:
                return False
        return self.user is None or user == self.user

    def _due(self, rng: random.Random) -> bool:
        if self.nth is not None and self.seen < self.nth:
            return False
        if self.exhausted:
            return False
        return self.probability is None or rng.random() < self.probability


def _label(
    what: str,
    *,
    args: tuple[str, ...] | None = None,
    user: str | None = None,
    nth: int | None = None,
    times: int | None = None,
    probability: float | None = None,
) -> str:
    parts = [what]
    if args is not None:
        parts.append(f"args={' '.join(args)!r}")
    if user is not None:
        parts.append(f"user={user!r}")
    if nth is not None:
        parts.append(f"nth={nth}")
    if times is not None:
        parts.append(f"times={times}")
    if probability is not None:
        parts.append(f"probability={probability:g}")
    return " ".join(parts)


class OnCommand:
    """The match part of a command rule; call one of its actions to add the rule.

    Made by :meth:`Faults.on`.  Each action adds the rule and returns it.
    """

    def __init__(
        self,
        faults: Faults,
        command: str,
        *,
        args: str | tuple[str, ...] | list[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        user: str | None = None,
        probability: float | None = None,
    ) -> None:
        self._faults = faults
        self.command = _command_name(command)
        self.args = _args(args)
        self.nth = _optional_int("nth", nth)
        self.times = _optional_int("times", times)
        self.user = _user(user)
        self.probability = _probability(probability)

    def _add(self, effect: _Effect) -> FaultRule:
        label = _label(
            f"on {self.command}",
            args=self.args,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
        )
        rule = FaultRule(
            self._faults,
            kind="command",
            effect=effect,
            commands=None if self.command == "*" else frozenset({self.command}),
            args=self.args,
            user=self.user,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
            label=label,
        )
        return self._faults.add(rule)

    def error(
        self, text: str = "Fault injected by fakepop3.", code: str | None = None
    ) -> FaultRule:
        """Reply ``-ERR [code] text`` instead of running the command.

        ``code`` is an RFC 2449 response code without brackets: ``"SYS/TEMP"``,
        ``"SYS/PERM"``, ``"IN-USE"``, ``"LOGIN-DELAY"``, ``"AUTH"``...
        """
        return self._add(_Error(_status_line(text, code)))

    def delay(self, seconds: float) -> FaultRule:
        """Run the command, then wait ``seconds`` before replying."""
        return self._add(_Delay(_seconds("seconds", seconds)))

    def disconnect(self, after_bytes: int | None = None) -> FaultRule:
        """Close the connection before the reply (the command does not run).

        With ``after_bytes``, the command runs and the first ``after_bytes``
        octets of its reply are sent before the close.
        """
        if after_bytes is None:
            return self._add(_Disconnect())
        return self._add(_Cut(_positive_int("after_bytes", after_bytes, low=0)))

    def truncate(self) -> FaultRule:
        """Send the reply without its last line end (a multi-line reply loses its ``.`` line), close."""
        return self._add(_Truncate())

    def malformed(self, kind: MalformedKind, *, length: int = 4096, delta: int = 100) -> FaultRule:
        """Send a spoiled reply: ``"no-status"``, ``"bare-lf"``, ``"long-line"`` or ``"wrong-size"``.

        ``length`` is the status line's size for ``"long-line"`` (over 512);
        ``delta`` is how far the octet counts are off for ``"wrong-size"``.
        """
        if kind not in MALFORMED_KINDS:
            raise FaultConfigError(
                f"unknown malformed kind {kind!r}; use one of {', '.join(MALFORMED_KINDS)}"
            )
        length = _positive_int("length", length, low=_MAX_STATUS + 1)
        delta = _delta(delta)
        if kind == "wrong-size" and self.command not in _SIZED | {"*"}:
            raise FaultConfigError(
                f"malformed('wrong-size') changes the octet counts of LIST, STAT and RETR; "
                f"{self.command} has none"
            )
        return self._add(_Malformed(kind, length, delta))

    def reply(self, data: bytes | str) -> FaultRule:
        """Send ``data`` (any bytes; a str is UTF-8 encoded) instead of running the command."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        if not isinstance(data, (bytes, bytearray)):
            raise FaultConfigError(f"data must be bytes or str, not {data!r}")
        return self._add(_Replace(bytes(data)))


class OnConnect:
    """The match part of a connect rule; call one of its actions to add the rule.

    Made by ``Faults.on_connect()``.  ``nth`` counts connections to the server
    since the rule was added.
    """

    def __init__(
        self,
        faults: Faults,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> None:
        self._faults = faults
        self.nth = _optional_int("nth", nth)
        self.times = _optional_int("times", times)
        self.probability = _probability(probability)

    def _add(self, effect: _Effect) -> FaultRule:
        label = _label("on connect", nth=self.nth, times=self.times, probability=self.probability)
        rule = FaultRule(
            self._faults,
            kind="connect",
            effect=effect,
            nth=self.nth,
            times=self.times,
            probability=self.probability,
            label=label,
        )
        return self._faults.add(rule)

    def refuse(self) -> FaultRule:
        """Close the connection at once, before any greeting."""
        return self._add(_Refuse())

    def delay(self, seconds: float) -> FaultRule:
        """Send the greeting ``seconds`` late."""
        return self._add(_Delay(_seconds("seconds", seconds)))

    def error(
        self, text: str = "Service not available, try again later.", code: str | None = None
    ) -> FaultRule:
        """Greet with ``-ERR [code] text`` and close."""
        return self._add(_Error(_status_line(text, code), close=True))

    def throttle(self, bytes_per_second: float) -> FaultRule:
        """Send everything in this session (greeting included) at this rate."""
        if (
            not isinstance(bytes_per_second, (int, float))
            or isinstance(bytes_per_second, bool)
            or not bytes_per_second > 0
        ):
            raise FaultConfigError(
                f"bytes_per_second must be a positive number, not {bytes_per_second!r}"
            )
        return self._add(_Throttle(float(bytes_per_second)))


# --- the rule set ----------------------------------------------------------------------------
class Faults:
    """The fault rules of one server (``server.faults``); none by default.  Thread-safe.

    ``seed`` seeds the random generator that rules with a ``probability`` draw
    from (None: seeded from the system).  ``rules`` are dicts as described in
    the module documentation.
    """

    def __init__(self, rules: Iterable[Mapping[str, Any]] = (), *, seed: int | None = 0) -> None:
        self._lock = threading.Lock()
        self._rules: list[FaultRule] = []
        #: False while there is no rule: the session skips the hook (read before every command).
        self.armed = False
        self._ids = itertools.count(1)
        self.random = random.Random(seed)
        for i, entry in enumerate(rules, 1):
            self._add_entry(entry, f"fault #{i}")

    # --- building rules --------------------------------------------------------------------
    def on(
        self,
        command: str,
        *,
        args: str | tuple[str, ...] | list[str] | None = None,
        nth: int | None = None,
        times: int | None = None,
        user: str | None = None,
        probability: float | None = None,
    ) -> OnCommand:
        """Match a command; finish the rule with an action, e.g. ``.error("Try later")``."""
        return OnCommand(
            self, command, args=args, nth=nth, times=times, user=user, probability=probability
        )

    @overload
    def on_connect(
        self,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> OnConnect: ...

    @overload
    def on_connect(self, session: Session, greeting: bytes) -> list[Action] | None: ...

    def on_connect(
        self,
        session: Session | None = None,
        greeting: bytes | None = None,
        *,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> OnConnect | list[Action] | None:
        """``on_connect(nth=..., times=..., probability=...)`` matches new connections.

        Finish the rule with ``.refuse()``, ``.delay(s)``, ``.error(text)`` or
        ``.throttle(bytes_per_second)``.  (Called with a session and its
        greeting, this is the hook the protocol core calls before greeting.)
        """
        if session is None:
            return OnConnect(self, nth=nth, times=times, probability=probability)
        assert greeting is not None
        rule = self._fire("connect", "", (), None)
        if rule is None:
            return None
        return rule.effect.apply((greeting,), "", session)

    def vanish(
        self,
        message: int,
        *,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """Message number ``message`` is gone after LIST: RETR, TOP, DELE, LIST n, UIDL n get -ERR.

        ``nth`` and ``times`` count the commands that name the message.
        """
        message = _positive_int("message", message)
        user = _user(user)
        nth, times = _optional_int("nth", nth), _optional_int("times", times)
        probability = _probability(probability)
        rule = FaultRule(
            self,
            kind="command",
            effect=_Vanish(message),
            commands=_MESSAGE_COMMANDS,
            message=message,
            user=user,
            nth=nth,
            times=times,
            probability=probability,
            label=_label(
                f"vanish message {message}",
                user=user,
                nth=nth,
                times=times,
                probability=probability,
            ),
        )
        return self.add(rule)

    def size_mismatch(
        self,
        message: int,
        *,
        delta: int = 100,
        user: str | None = None,
        nth: int | None = None,
        times: int | None = None,
        probability: float | None = None,
    ) -> FaultRule:
        """LIST and STAT report message ``message`` ``delta`` octets off; RETR sends it whole."""
        message = _positive_int("message", message)
        delta = _delta(delta)
        user = _user(user)
        nth, times = _optional_int("nth", nth), _optional_int("times", times)
        probability = _probability(probability)
        rule = FaultRule(
            self,
            kind="command",
            effect=_SizeMismatch(message, delta),
            commands=frozenset({"LIST", "STAT"}),
            user=user,
            nth=nth,
            times=times,
            probability=probability,
            label=_label(
                f"size mismatch of message {message}",
                user=user,
                nth=nth,
                times=times,
                probability=probability,
            ),
        )
        return self.add(rule)

    # --- the dict form ---------------------------------------------------------------------
    @classmethod
    def from_config(cls, entries: Iterable[Mapping[str, Any]], *, seed: int | None = 0) -> Faults:
        """A :class:`Faults` with these rules, each a dict as described in the module docs."""
        if isinstance(entries, (Mapping, str, bytes)):
            raise FaultConfigError(
                "faults must be given as a list of dicts (one per rule), "
                f"not {type(entries).__name__}"
            )
        return cls(entries, seed=seed)

    def add_from_dict(self, entry: Mapping[str, Any]) -> FaultRule:
        """Add one rule given as a dict (see the module docs); returns it."""
        return self._add_entry(entry, "fault")

    def _add_entry(self, entry: Mapping[str, Any], where: str) -> FaultRule:
        try:
            return _build(self, entry)
        except FaultConfigError as error:
            raise FaultConfigError(f"{where} {_show(entry)}: {error}") from None

    # --- managing rules --------------------------------------------------------------------
    def add(self, rule: FaultRule) -> FaultRule:
        """Add a rule made for this :class:`Faults` (the builders call this); returns it."""
        if rule.faults is not self:
            raise ValueError("this rule belongs to another Faults; build it with this one")
        with self._lock:
            if rule not in self._rules:
                rule.id = next(self._ids)
                self._rules.append(rule)
                self.armed = True
        return rule

    def remove(self, rule: FaultRule) -> None:
        """Take a rule off (no error if it is already gone)."""
        with self._lock:
            if rule in self._rules:
                self._rules.remove(rule)
            self.armed = bool(self._rules)

    def clear(self) -> None:
        """Remove every rule."""
        with self._lock:
            self._rules.clear()
            self.armed = False

    @property
    def rules(self) -> list[FaultRule]:
        """The rules, in the order they are tried."""
        with self._lock:
            return list(self._rules)

    def __iter__(self) -> Iterator[FaultRule]:
        return iter(self.rules)

    def __len__(self) -> int:
        with self._lock:
            return len(self._rules)

    def __bool__(self) -> bool:
        return self.armed

    def __repr__(self) -> str:
        return f"<Faults {len(self)} rule(s)>"

    def unused(self) -> list[FaultRule]:
        """The rules that never fired."""
        return [rule for rule in self.rules if rule.fired == 0]

    def assert_all_fired(self) -> None:
        """Raise ``AssertionError`` listing the rules that never fired, if any."""
        unused = self.unused()
        if not unused:
            return
        lines = "\n".join(
            f"  {rule.description}: matched {rule.seen} time(s), fired 0" for rule in unused
        )
        raise AssertionError(
            f"{len(unused)} fault rule(s) never fired (check the command name, args, user "
            f"and nth; 'matched' counts the commands or connections each one saw):\n{lines}"
        )

    # --- the hook the protocol core calls -------------------------------------------------
    def on_command(
        self, session: Session, command: str, args: tuple[str, ...]
    ) -> CommandFault | None:
        """Called by the session before each command; the fault to apply, or None."""
        rule = self._fire("command", command, args, _user_of(session, command, args))
        if rule is None:
            return None
        return _Hit(rule.description, rule.effect.runs_command, rule.effect, command, session)

    def _fire(
        self, kind: str, command: str, args: tuple[str, ...], user: str | None
    ) -> FaultRule | None:
        with self._lock:
            if not self._rules:
                return None
            matching = [
                r for r in self._rules if r.kind == kind and r._matches(command, args, user)
            ]
            for rule in matching:
                rule.seen += 1
            for rule in matching:
                if rule._due(self.random):
                    rule.fired += 1
                    return rule
        return None


def _user_of(session: Session, command: str, args: tuple[str, ...]) -> str | None:
    if session.user is not None:
        return session.user
    if command in ("USER", "APOP") and args:
        return args[0]
    if command == "PASS":
        return session.pending_user
    return None


# --- parsing the dict form -------------------------------------------------------------------
_MATCH_KEYS = {
    "command": ("command", "args", "user", "nth", "times", "probability"),
    "connect": ("nth", "times", "probability"),
    "mailbox": ("message", "user", "nth", "times", "probability"),
}
_ACTION_KEYS: dict[str, dict[str, tuple[str, ...]]] = {
    "command": {
        "error": ("text", "code"),
        "delay": ("seconds",),
        "disconnect": ("after_bytes",),
        "truncate": (),
        "malformed": ("kind", "length", "delta"),
        "reply": ("data",),
    },
    "connect": {
        "refuse": (),
        "delay": ("seconds",),
        "error": ("text", "code"),
        "throttle": ("bytes_per_second",),
    },
    "mailbox": {"vanish": (), "size_mismatch": ("delta",)},
}
_REQUIRED = {
    ("command", "delay"): ("seconds",),
    ("connect", "delay"): ("seconds",),
    ("command", "malformed"): ("kind",),
    ("command", "reply"): ("data",),
    ("connect", "throttle"): ("bytes_per_second",),
}


def _show(entry: object) -> str:
    text = repr(entry)
    return text if len(text) <= 200 else text[:197] + "..."


def _build(faults: Faults, entry: Mapping[str, Any]) -> FaultRule:
    if not isinstance(entry, Mapping):
        raise FaultConfigError(f"a fault rule must be a dict, not {type(entry).__name__}")
    bad = [k for k in entry if not isinstance(k, str)]
    if bad:
        raise FaultConfigError(f"keys must be strings, not {bad!r}")
    action = entry.get("action")
    every_action = sorted({a for table in _ACTION_KEYS.values() for a in table})
    if action is None:
        raise FaultConfigError(f"'action' is missing; one of {', '.join(every_action)}")
    if not isinstance(action, str) or action not in every_action:
        raise FaultConfigError(f"unknown action {action!r}; use one of {', '.join(every_action)}")
    on = entry.get("on", "mailbox" if action in _ACTION_KEYS["mailbox"] else "command")
    if on not in _ACTION_KEYS:
        raise FaultConfigError(f"unknown 'on' value {on!r}; use 'command', 'connect' or 'mailbox'")
    actions = _ACTION_KEYS[on]
    if action not in actions:
        raise FaultConfigError(
            f"action {action!r} does not apply on {on}; actions on {on}: {', '.join(actions)}"
        )
    allowed = {"on", "action", *_MATCH_KEYS[on], *actions[action]}
    unknown = sorted(set(entry) - allowed)
    if unknown:
        raise FaultConfigError(
            f"unknown key(s) {', '.join(map(repr, unknown))} for action {action!r} on {on}; "
            f"allowed keys: {', '.join(sorted(allowed))}"
        )
    required: tuple[str, ...] = {"command": ("command",), "mailbox": ("message",)}.get(on, ())
    required += _REQUIRED.get((on, action), ())
    missing = [k for k in required if k not in entry]
    if missing:
        raise FaultConfigError(f"{', '.join(map(repr, missing))} is missing for action {action!r}")
    match = {k: entry[k] for k in _MATCH_KEYS[on] if k in entry}
    params = {k: entry[k] for k in actions[action] if k in entry}
    if on == "mailbox":
        message = match.pop("message")
        method: Callable[..., FaultRule] = getattr(faults, action)
        return method(message, **match, **params)
    if on == "connect":
        return getattr(faults.on_connect(**match), action)(**params)  # type: ignore[no-any-return]
    command = match.pop("command")
    return getattr(faults.on(command, **match), action)(**params)  # type: ignore[no-any-return]
