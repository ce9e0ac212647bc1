"""What a fired fault does: the effects, each turning the real reply into transport actions.

Rules a maintainer must keep:

- An effect is immutable (a frozen dataclass) and holds checked values only (the builders
  check them, in ``_checks``).  ``runs_command`` says whether the core runs the command
  before the effect sees its reply; when it is False the effect gets an empty reply.
- ``describe()`` is the text recorded in the history (``CommandRecord.fault``) and shown by
  ``assert_all_fired``: the tests pin it.
- Effects return only the public action types of :mod:`fakepop3.protocol` and read only the
  session's public attributes (``messages``, ``deleted``).
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import history as _history
from ..protocol import Action, Close, Pause, Send, Session, Throttle

Reply = tuple[bytes | memoryview, ...]

#: The kinds of ``malformed`` (see :class:`_Malformed`).
MALFORMED_KINDS: tuple[str, ...] = ("no-status", "bare-lf", "long-line", "wrong-size")
#: The commands whose replies carry octet counts (``malformed("wrong-size")``).
_SIZED = frozenset({"LIST", "STAT", "RETR"})


class _Effect:
    """One action of a rule; ``apply`` turns the real reply into the actions to carry out."""

    runs_command = True

    def describe(self) -> str:
        raise NotImplementedError

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        raise NotImplementedError


@dataclass(frozen=True)
class _Answer(_Effect):
    """Send ``data`` instead of running the command (then close, with ``close``).

    Made by :func:`_error`, :func:`_replace` and :func:`_vanished`, which say what it is.
    """

    data: bytes
    what: str
    close: bool = False
    runs_command = False

    def describe(self) -> str:
        return self.what

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        if self.close:
            return [Send((self.data,)), Close(_history.SERVER)]
        return [Send((self.data,))]


def _error(line: bytes, *, close: bool = False) -> _Answer:
    """A ``-ERR`` line (a checked ``_status_line``) instead of the reply or the greeting."""
    return _Answer(line, "error " + line.rstrip(b"\r\n").decode(), close)


def _replace(data: bytes) -> _Answer:
    """Any bytes instead of the reply."""
    shown = data if len(data) <= 60 else data[:57] + b"..."
    return _Answer(data, f"reply {shown!r}")


def _vanished(message: int) -> _Answer:
    """The ``-ERR`` a command on a message that is gone gets."""
    return _Answer(b"-ERR No such message.\r\n", f"message {message} vanished")


@dataclass(frozen=True)
class _Close(_Effect):
    """Close the connection, sending nothing: a refused connection, a disconnect before the
    reply."""

    what: str
    runs_command = False

    def describe(self) -> str:
        return self.what

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Close(_history.SERVER)]


_REFUSE = _Close("refuse the connection")
_DISCONNECT = _Close("disconnect before the reply")


@dataclass(frozen=True)
class _Delay(_Effect):
    seconds: float

    def describe(self) -> str:
        return f"delay {self.seconds:g}s"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Pause(self.seconds), Send(reply)]


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
class _SizeMismatch(_Effect):
    message: int
    delta: int

    def describe(self) -> str:
        return f"size of message {self.message} reported {self.delta:+d} octets off"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(_shift_sizes(reply, command, self.delta, self.message, session))]


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
