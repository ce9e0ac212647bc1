"""What the protocol core gets from the faults: the hit on one command, the user it is for."""

from __future__ import annotations

from dataclasses import dataclass

from ..protocol import Action, Session
from ._effects import Reply, _Effect


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


def _user_of(session: Session, command: str, args: tuple[str, ...]) -> str | None:
    if session.user is not None:
        return session.user
    if command in ("USER", "APOP") and args:
        return args[0]
    if command == "PASS":
        return session.pending_user
    return None
