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

import math
import random
import re
from dataclasses import dataclass
from typing import ClassVar

from .. import history as _history
from ..protocol import Action, Close, Pause, Send, Session, Throttle
from ._hold import Gate

Reply = tuple[bytes | memoryview, ...]

#: The kinds of ``malformed`` (see :class:`_Malformed`).
MALFORMED_KINDS: tuple[str, ...] = ("no-status", "bare-lf", "long-line", "wrong-size")
#: The distributions of a delay's jitter (see :class:`_Delay`).
JITTER_DISTRIBUTIONS: tuple[str, ...] = ("uniform", "lognormal")
#: The commands whose replies carry octet counts (``malformed("wrong-size")``).
_SIZED = frozenset({"LIST", "STAT", "RETR"})


class _Effect:
    """One action of a rule; ``apply`` turns the real reply into the actions to carry out."""

    runs_command = True

    def describe(self) -> str:
        raise NotImplementedError

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        raise NotImplementedError

    def draw(self, rng: random.Random) -> _Effect:
        """The effect of one firing: itself, or (a jittered delay) one with its value drawn
        from the seeded ``rng`` of the rules (called under their lock)."""
        return self

    def prepare(self, session: Session, user: str | None) -> None:
        """Called when the rule fires, before the command runs (a delivery adds mail here)."""


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
    """Wait ``seconds``, then reply.  With ``jitter``, each firing waits a drawn time instead:
    ``uniform``, from ``seconds - jitter`` (at least 0) to ``seconds + jitter``; ``lognormal``,
    ``seconds * exp(jitter * Z)`` with Z a standard normal (its median is ``seconds``)."""

    seconds: float
    jitter: float = 0.0
    distribution: str = "uniform"
    #: The time drawn for one firing (None: the rule itself, not a firing).
    drawn: float | None = None

    def describe(self) -> str:
        if not self.jitter:
            return f"delay {self.seconds:g}s"
        spread = f"{self.distribution} jitter {self.jitter:g}"
        if self.drawn is None:
            return f"delay {self.seconds:g}s ({spread})"
        return f"delay {self.drawn:.6f}s (drawn: {self.seconds:g}s, {spread})"

    @classmethod
    def checked(cls, seconds: object, jitter: object, distribution: object) -> _Delay:
        """A delay of checked values (the builders' ``delay``)."""
        from ._checks import _jitter, _one_of, _seconds

        kind = _one_of("distribution", distribution, JITTER_DISTRIBUTIONS)
        return cls(_seconds("seconds", seconds), _jitter(jitter), kind)

    def draw(self, rng: random.Random) -> _Effect:
        if not self.jitter:
            return self
        if self.distribution == "uniform":
            value = rng.uniform(self.seconds - self.jitter, self.seconds + self.jitter)
        else:  # lognormal
            value = self.seconds * math.exp(rng.gauss(0.0, self.jitter))
        return _Delay(self.seconds, self.jitter, self.distribution, max(0.0, value))

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Pause(self.seconds if self.drawn is None else self.drawn), Send(reply)]


@dataclass(frozen=True)
class _EndsExchange(_Effect):
    """Before the reply (the command does not run), or after ``after_bytes`` octets of it, end
    the exchange with :meth:`_end`; :attr:`_before` and :attr:`_after` describe the two cases."""

    after_bytes: int | None = None
    _before: ClassVar[str]
    _after: ClassVar[str]  # with {n}, the octets sent

    @property
    def runs_command(self) -> bool:  # type: ignore[override]
        return self.after_bytes is not None

    def _end(self) -> Action:
        raise NotImplementedError

    def describe(self) -> str:
        if self.after_bytes is None:
            return self._before
        return self._after.format(n=self.after_bytes)

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        if self.after_bytes is None:
            return [self._end()]
        return [Send(_cut(reply, self.after_bytes)), self._end()]


@dataclass(frozen=True)
class _Reset(_EndsExchange):
    """End the connection with a TCP reset (RST): before the reply (the command does not run),
    or after ``after_bytes`` octets of it."""

    _before = "reset the connection (RST)"
    _after = "reset the connection (RST) after {n} octets of the reply"

    def _end(self) -> Action:
        return Close(_history.SERVER, reset=True)


@dataclass(frozen=True)
class _Hang(_EndsExchange):
    """Send nothing (or the first ``after_bytes`` octets of the reply) and keep the connection
    open for ever: until the client hangs up, the server stops or its idle timeout ends it."""

    _before = "hang: no reply, the connection kept open"
    _after = "hang after {n} octets of the reply, the connection kept open"

    def _end(self) -> Action:
        return Pause(math.inf)


@dataclass(frozen=True)
class _Slice(_Effect):
    """Write the reply in segments of ``size`` octets, ``seconds`` apart."""

    size: int
    seconds: float

    def describe(self) -> str:
        return f"slice the reply into {self.size}-octet segments, {self.seconds:g}s apart"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        data = memoryview(b"".join(reply))
        actions: list[Action] = []
        for start in range(0, len(data), self.size):
            if actions:
                actions.append(Pause(self.seconds))
            actions.append(Send((data[start : start + self.size],)))
        return actions


@dataclass(frozen=True)
class _SlowClose(_Effect):
    """QUIT answered (its deletions done), the close (the server's FIN) ``seconds`` late."""

    seconds: float

    def describe(self) -> str:
        return f"slow close: the FIN {self.seconds:g}s after the reply"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(reply), Pause(self.seconds)]  # the session adds the Close after QUIT


@dataclass(frozen=True)
class _Hold(_Effect):
    """Run the command, keep its reply at ``gate`` until the test releases it."""

    gate: Gate

    def describe(self) -> str:
        return "hold the reply until released"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Pause(math.inf, self.gate), Send(reply)]


@dataclass(frozen=True)
class _Switch(_Effect):
    """Enter the named state ``to`` (None: none); the command is served as usual."""

    to: str | None

    def describe(self) -> str:
        return f"enter state {self.to!r}" if self.to is not None else "leave every state"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(reply)]


@dataclass(frozen=True)
class _Deliver(_Effect):
    """Put ``message`` in the maildrop of the command's user just before the command runs
    (on PASS: the message is there for the login that opens the maildrop)."""

    message: bytes

    def describe(self) -> str:
        return f"deliver a message of {len(self.message)} octets first"

    def prepare(self, session: Session, user: str | None) -> None:
        if user is not None and user in session.store.users:
            session.store.mailbox(user).add(self.message)

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(reply)]


@dataclass(frozen=True)
class _DeliverLater(_Effect):
    """A timed rule's effect (``Faults.deliver_after``): ``message`` put in the maildrop of the
    rule's user ``seconds`` after the server starts (or the rule is added, or a reset).  It
    never answers a command: the server's loop timer delivers it (``Faults._fire_timed``)."""

    message: bytes
    seconds: float

    def describe(self) -> str:
        return f"deliver a message of {len(self.message)} octets after {self.seconds:g}s"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send(reply)]  # pragma: no cover - a timed rule matches no command


@dataclass(frozen=True)
class _Inject(_Effect):
    """Run the command, send its reply and ``data`` after it in the same write (after the
    ``+OK`` to STLS: in the clear, before the TLS handshake)."""

    data: bytes

    def describe(self) -> str:
        shown = self.data if len(self.data) <= 60 else self.data[:57] + b"..."
        return f"inject {shown!r} after the reply"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        return [Send((*reply, self.data))]


@dataclass(frozen=True)
class _Hide(_Effect):
    """Run CAPA, leave ``capability``'s line out of its reply (``STLS``: STLS stripping)."""

    capability: str

    def describe(self) -> str:
        return f"hide {self.capability} from the CAPA reply"

    def apply(self, reply: Reply, command: str, session: Session) -> list[Action]:
        if len(reply) < 2 or not bytes(reply[0]).startswith(b"+OK"):
            return [Send(reply)]
        name = self.capability.encode("ascii").upper()
        lines = bytes(reply[1]).split(b"\r\n")
        kept = [line for line in lines if line.split(b" ", 1)[0].upper() != name]
        return [Send((reply[0], b"\r\n".join(kept), *reply[2:]))]


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
