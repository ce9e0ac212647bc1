"""The session of a linted server (``lint=True``): it notes what the history cannot see.

The history keeps no raw command line, so four of the lint's rules need facts only the input
buffer has: a line ended by LF alone, a line over 255 octets, a line that came before the reply
to the one before it (pipelining), and a line that breaks RFC 1939 s3's syntax (what strict
syntax refuses, noted also when ``lenient_syntax`` lets the server accept it).  A :class:`LintedSession` is a :class:`Session` that notes
them per line as it buffers it, and hands a line's facts to the history
(``History.note_line``) just before it runs that line, so that the linter finds them beside
the line's record.  Rules a maintainer must keep:

- Only a linted server makes one (:func:`open_linted`, its session factory); :class:`Session` itself never
  notes anything, so the sessions of other servers pay nothing for the lint.
- It answers exactly as a :class:`Session` does (the lint only records); it takes no fast
  lane (every line goes through :meth:`receive_data`, where the facts are seen), which gives
  the same replies (rule 1 of ``_fastlane.py``).
- Its notes are one entry per buffered line, in step with ``Session._lines``.
"""

from __future__ import annotations

from typing import Any

from ..history import LineFacts
from ._actions import Action
from ._parse import parse
from ._session import Session
from ._state import CLOSED, MAX_SASL_LINE

__all__ = ["LintedSession", "linted", "open_linted"]

#: RFC 2449 s4: the longest command line, its CRLF included.
_LONGEST = 255
_PIPELINED: tuple[str, int | str] = ("pipelined", 0)
_BARE_LF: tuple[str, int | str] = ("bare-lf", 0)


class _Notes:
    """A linted session's notes: the facts of each buffered line, and of the line being cut."""

    __slots__ = ("arrived", "dropped", "lines")

    def __init__(self) -> None:
        self.lines: list[LineFacts] = []  # one per line in Session._lines, in order
        self.dropped = 0  # octets so far of an overlong line being discarded
        self.arrived = 0  # lines the last receive_data buffered


class LintedSession(Session):
    """A :class:`Session` that notes each command line's facts for the lint (module docs)."""

    __slots__ = ()
    linting = True
    _notes: _Notes

    def _refresh(self) -> None:
        super()._refresh()
        self._lane = None  # every line through receive_data, where its facts are seen

    def receive_data(self, data: bytes) -> None:
        if self.state is not CLOSED:
            self._note(data)
        super().receive_data(data)

    def _note(self, data: bytes) -> None:
        """The facts of each line ``data`` completes (as ``Session.receive_data`` splits it)."""
        notes = self._notes
        waiting = len(self._lines)  # lines not answered yet: a line after them is pipelined
        before = len(notes.lines)
        if self._discarding:
            end = data.find(b"\n")
            if end < 0:
                notes.dropped += len(data)
                notes.arrived = 0
                return
            facts: list[tuple[str, int | str]] = [("long-line", notes.dropped + end + 1)]
            if end > 0 and data[end - 1] != 13:
                facts.append(_BARE_LF)
            if waiting:
                facts.append(_PIPELINED)
            notes.lines.append(tuple(facts))
            waiting += 1
            data = data[end + 1 :]
        *complete, tail = (self._partial + data).split(b"\n")
        command = self._sasl is None  # a SASL response may be longer (RFC 5034 s4)
        for line in complete:
            facts = []
            if waiting:
                facts.append(_PIPELINED)
            if not line.endswith(b"\r"):
                facts.append(_BARE_LF)
            if command and len(line) + 1 > _LONGEST:
                facts.append(("long-line", len(line) + 1))
            if command:
                # What strict syntax says of the line, whichever syntax the server answers by.
                parsed = parse(line[:-1] if line.endswith(b"\r") else line)
                if isinstance(parsed, str):
                    facts.append(("malformed", parsed))
            notes.lines.append(tuple(facts))
            waiting += 1
        limit = self.settings.max_line if command else max(self.settings.max_line, MAX_SASL_LINE)
        if len(tail) >= limit:
            notes.dropped = len(tail)
        notes.arrived = len(notes.lines) - before

    def note_busy(self) -> None:
        """Called by the transport when bytes came while it was still answering: the lines
        they completed came before the reply to the previous one."""
        notes = self._notes
        lines = notes.lines
        for i in range(len(lines) - notes.arrived, len(lines)):
            if _PIPELINED not in lines[i]:
                lines[i] = (_PIPELINED, *lines[i])

    def _next_actions(self) -> list[Action] | None:
        lines = self._notes.lines
        if self.state is CLOSED or not self._lines or not lines:
            return super()._next_actions()
        facts = lines.pop(0)
        if not facts:
            return super()._next_actions()
        history = self.history
        history.note_line(self.id, facts)  # for the record of this line
        try:
            return super()._next_actions()
        finally:
            history.note_line(self.id, ())  # a line that made no record leaves nothing behind

    def _close(self) -> None:
        super()._close()
        self._notes.lines.clear()

    def _after(self, actions: list[Action]) -> list[Action]:
        actions = super()._after(actions)
        if not self._lines:  # the lines pipelined after STLS were discarded
            self._notes.lines.clear()
        return actions


def linted(session: Session) -> LintedSession:
    """``session`` (just opened, nothing buffered) as a :class:`LintedSession`."""
    session.__class__ = LintedSession
    assert isinstance(session, LintedSession)
    session._notes = _Notes()
    session._refresh()
    return session


def open_linted(*args: Any) -> LintedSession:
    """``Session.open(*args)`` as a :class:`LintedSession`: a linted server's session factory."""
    return linted(Session.open(*args))
