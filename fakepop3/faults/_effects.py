"""What a fired fault does: the effects, each turning the real reply into transport actions.

An effect is immutable (a frozen dataclass); ``runs_command`` says whether the core runs the
command before the effect sees its reply.  Effects return only the public action types of
:mod:`fakepop3.protocol` and read only the session's public attributes.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

from .. import history as _history
from ..protocol import Action, Close, Pause, Send, Session, Throttle

Reply = tuple[bytes | memoryview, ...]


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
