"""The object the protocol core calls: :class:`FaultsHook`, a :class:`fakepop3.protocol.FaultHook`.

Every :class:`~fakepop3.faults.Faults` has one, ``faults.hook``; a server passes it to each
session it makes (``Session(store, faults=a_faults)`` takes it too).  The user builds rules
on the ``Faults``; the core only ever sees this object.

Rules a maintainer must keep:

- ``armed`` is a plain attribute, read by the core before every command and greeting: no
  property, no lookup.  Only the owning ``Faults`` writes it, under its lock, whenever a
  rule is added or removed (True while it has at least one rule).
- The hook reads only public names of the session (``user``, ``pending_user``,
  ``messages``, ``deleted``) and returns only the public action types of
  :mod:`fakepop3.protocol`.  What it needs beyond them goes into the session's public API.
- Choosing and counting rules happen in the ``Faults`` (under its lock), through the
  ``fire`` callable it hands the hook; the hook only turns a fired rule into actions.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from ..protocol import Action, Session
from ._effects import Reply, _Effect

if TYPE_CHECKING:
    from ._rules import FaultRule

#: ``fire(kind, command, args, user)``: the rule that fires for this command or connection
#: (counted as fired) and the effect of this firing (a jittered delay's drawn), or None.
Fire = Callable[[str, str, tuple[str, ...], "str | None"], "tuple[FaultRule, _Effect] | None"]


class FaultsHook:
    """The fault hook of one :class:`~fakepop3.faults.Faults` (``faults.hook``)."""

    __slots__ = ("_fire", "armed")

    def __init__(self, fire: Fire) -> None:
        self._fire = fire
        #: False while there is no rule: the session then skips the hook.
        self.armed = False

    def on_connect(self, session: Session, greeting: bytes) -> list[Action] | None:
        """Called by the session before it greets: the actions instead of ``greeting``, or None."""
        fired = self._fire("connect", "", (), None)
        if fired is None:
            return None
        return fired[1].apply((greeting,), "", session)

    def on_command(self, session: Session, command: str, args: tuple[str, ...]) -> _Hit | None:
        """Called by the session before each command; the fault to apply, or None."""
        user = _user_of(session, command, args)
        fired = self._fire("command", command, args, user)
        if fired is None:
            return None
        rule, effect = fired
        effect.prepare(session, user)
        return _Hit(rule.describe(effect), effect.runs_command, effect, command, session)

    def __repr__(self) -> str:
        return f"<FaultsHook armed={self.armed}>"


@dataclass
class _Hit:
    """A fault that fired on one command: a :class:`fakepop3.protocol.CommandFault`."""

    description: str
    runs_command: bool
    effect: _Effect
    command: str
    session: Session

    def actions(self, reply: Reply) -> list[Action]:
        return self.effect.apply(reply, self.command, self.session)


def _user_of(session: Session, command: str, args: tuple[str, ...]) -> str | None:
    """The user a command is for: the logged-in user, else the name USER or APOP gives, or
    (for PASS) the name USER gave."""
    if session.user is not None:
        return session.user
    if command in ("USER", "APOP") and args:
        return args[0]
    if command == "PASS":
        return session.pending_user
    return None
