"""What the core asks the transport to do (the actions), and the fault hook it calls.

Rules: an action is a small immutable value; the transport performs the actions of one
command in order, and a :class:`Close` comes last.  A :class:`FaultHook` is called only while
its ``armed`` is true, before each command and at the greeting.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, NamedTuple, Protocol

if TYPE_CHECKING:
    from ._session import Session


# --- actions for the transport -----------------------------------------------------------
class Send(NamedTuple):
    """Write these buffers, in order (a RETR reply is status line, message, ``.`` line).

    A named tuple: one is made per reply (cheaper than a dataclass: bench/README.md, "Speed
    notes").
    """

    buffers: tuple[bytes | memoryview, ...]
    """The bytes to write, in order."""

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
