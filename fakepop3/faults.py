"""Fault injection: make the server misbehave the way real servers do."""

from __future__ import annotations

from .protocol import Action, CommandFault, Session

__all__ = ["Faults"]


class Faults:
    """The faults configured on one server (none by default)."""

    def on_connect(self, session: Session, greeting: bytes) -> list[Action] | None:
        return None

    def on_command(
        self, session: Session, command: str, args: tuple[str, ...]
    ) -> CommandFault | None:
        return None
