"""What the core asks the transport to do (the actions), and the fault hook it calls.

Rules: an action is a small immutable value; the transport performs the actions of one
command in order, and a :class:`Close` comes last.  A :class:`FaultHook` is called only while
its ``armed`` is true, before each command and at the greeting.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from ._session import Session


# --- actions for the transport -----------------------------------------------------------
class Stream:
    """A reply's last buffer, made a chunk at a time while the transport sends it: the
    LIST or UIDL of a large maildrop, so that the whole reply never exists at once.

    Iterating it makes its chunks (bytes; the last is the terminating ``.`` line), anew each
    time: ``make`` is a pure function of the session's snapshot and deletion marks when the
    command ran.  ``bytes(stream)`` joins them; ``len(stream)`` is their total size (made by
    iterating once).  The transport pulls chunks as the client reads (flow control); a fault
    sees the reply whole (:func:`whole`).
    """

    __slots__ = ("_make", "_size")

    def __init__(self, make: Callable[[], Iterator[bytes]]) -> None:
        self._make = make
        self._size: int | None = None

    def __iter__(self) -> Iterator[bytes]:
        return self._make()

    def __len__(self) -> int:
        if self._size is None:
            self._size = sum(map(len, self._make()))
        return self._size

    def __bytes__(self) -> bytes:
        return b"".join(self._make())

    def __repr__(self) -> str:
        return "<Stream of a reply body>"


Buffer = bytes | memoryview | Stream
"""One buffer of a reply: bytes, or a :class:`Stream` (only ever the last one)."""


def whole(buffers: tuple[Buffer, ...]) -> tuple[bytes | memoryview, ...]:
    """``buffers`` with a :class:`Stream` made whole, in the usual multi-line shape (status,
    body, ``.`` line): what a fault rewrites."""
    if not buffers or type(buffers[-1]) is not Stream:
        return buffers  # type: ignore[return-value]  # no Stream in it
    data = bytes(buffers[-1])
    return (*buffers[:-1], data[:-3], data[-3:])  # type: ignore[arg-type]


class Send(NamedTuple):
    """Write these buffers, in order (a RETR reply is status line, message, ``.`` line).

    A named tuple: one is made per reply (cheaper than a dataclass: bench/README.md, "Speed
    notes").
    """

    buffers: tuple[Buffer, ...]
    """The bytes to write, in order (the last may be a :class:`Stream`)."""

    @property
    def size(self) -> int:
        """How many bytes the buffers hold."""
        return sum(len(b) for b in self.buffers)


@dataclass(frozen=True)
class Pause:
    """Wait this many seconds before the next action (fault injection).

    ``gate``: wait instead until ``await gate.wait()`` returns (a held command's reply).
    """

    seconds: float
    """How long to wait."""
    gate: Gate | None = None


@dataclass(frozen=True)
class Throttle:
    """From now on, send at most this many bytes per second (fault injection)."""

    bytes_per_second: float
    """The rate limit."""


@dataclass(frozen=True)
class StartTLS:
    """Start the TLS handshake now (after the ``+OK`` to STLS was sent)."""


@dataclass(frozen=True)
class Close:
    """Close the connection after the previous actions; ``reason`` as recorded in the history.

    ``reset``: end it with a TCP reset (RST, ``SO_LINGER`` 0) instead of a FIN (a fault).
    """

    reason: str
    """Why: ``"quit"``, ``"timeout"``, ``"server"`` ... (a `SessionRecord.end_reason`)."""
    reset: bool = False


Action = Send | Pause | Throttle | StartTLS | Close
"""One thing the core asks the transport to do: :class:`Send`, :class:`Pause`, :class:`Throttle`,
:class:`StartTLS` or :class:`Close` (what :meth:`Session.next_actions` returns)."""


class Gate(Protocol):
    """What a :class:`Pause` may wait on instead of a time (``fakepop3.faults.Gate``)."""

    async def wait(self) -> None: ...


class CommandFault(Protocol):
    """What a fault hook returns for a command it hits (see ``fakepop3.faults``)."""

    description: str
    runs_command: bool

    def actions(self, reply: tuple[bytes | memoryview, ...]) -> list[Action]:
        """The actions that replace sending ``reply`` (empty when the command did not run)."""
        ...


class FaultHook(Protocol):
    """What the core calls to inject faults (:class:`Faults` is one; see :class:`Session`)."""

    #: False while the hook has nothing to do: the session then does not call it (a plain
    #: attribute, read before every command).
    armed: bool

    def on_connect(self, session: Session, greeting: bytes) -> list[Action] | None:
        """The actions that replace sending ``greeting``, or None to send it."""
        ...

    def on_command(
        self, session: Session, command: str, args: tuple[str, ...]
    ) -> CommandFault | None:
        """The fault that answers this command instead of the core, or None."""
        ...
