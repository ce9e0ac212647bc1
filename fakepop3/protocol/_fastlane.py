"""The fast lane: one packet that is one whole command line, answered at once.

Most packets a POP3 client sends are one command line, answered by one reply.  The transport
hands each such packet to :meth:`Session.answer_line` (this module's :func:`answer_line`),
which answers it without the input buffer, the actions list or the fault hook, or returns None
having consumed nothing, and the transport then feeds the packet to ``receive_data`` as usual.
Rules:

1. The fast lane gives exactly what ``receive_data`` then ``next_actions`` would: the same
   reply bytes, state and history.  It is the same code: the general path runs each line it
   takes from its buffer through :func:`answer_line` too (rule 4 of ``_state.py``); the lane
   only skips work.  ``tests/test_fast_lane.py`` and ``tests/test_stateful.py`` check it
   against the general path, by property tests.
2. It is open only when nothing is buffered, no SASL exchange or STLS is under way and the
   session is not closed: then ``Session._lane`` is the fast lane's dispatch of the state, and
   None otherwise.  Only ``Session._refresh`` writes it (rule 2 of ``_state.py``).
3. It stands aside (returns None) while a fault hook is armed, for a packet that is not exactly
   one line under the limit, for a line that is not a command line (a bad command: the general
   path counts it), for an unknown or switched-off command, and for STLS (whose reply must be
   followed by the TLS handshake).
4. :data:`PARSED_LINES` remembers what packets parse to: clients send the same few lines again
   and again (``STAT``, ``RETR 1``, ``USER alice``).  It keeps only lines valid under any
   settings (shorter than 255 octets), of a known command with a number of arguments its row
   of the table allows, holding no secret (no PASS, APOP, AUTH), parsed under strict syntax
   (a well-formed line parses the same under lenient syntax, not the other way); it is bounded
   (``fakepop3._cache.BoundedCache``).
5. A parsed line carries whether its number of arguments is within the command's arity in the
   table: every entry of a dispatch allows at least that (those that answer an error whatever
   the arguments allow any number), so such a line needs no arity check; any other goes to
   ``_commands.run``, which checks the entry's exact arity.
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from .._cache import BoundedCache
from ._actions import Buffer
from ._commands import run
from ._parse import SECRET_COMMANDS, parse
from ._state import COMMANDS, MAX_LINE

if TYPE_CHECKING:
    from ._dispatch import Entry
    from ._session import Session

__all__ = ["PARSED_LINES", "answer_line"]

#: A parsed line: command, arguments, arguments as the history records them, and whether
#: their number is within the command's arity in the table (``_state.COMMANDS``).
Line = tuple[str, tuple[str, ...], tuple[str, ...], bool]


#: The numbers of arguments the table allows each command.
_ARITY = {c.name: range(c.min_args, c.max_args + 1) for c in COMMANDS.values()}
_NO_ARITY = range(0)


#: Packets already parsed: clients send the same few lines again and again (see rule 4).
PARSED_LINES: BoundedCache[bytes, Line] = BoundedCache(
    4096,
    base={
        n.encode() + end: (n, (), (), 0 in _ARITY[n]) for n in COMMANDS for end in (b"\r\n", b"\n")
    },
)
# The cache's get, bound once: a method call on a dict subclass is not specialized (CPython
# 3.11 to 3.13 check the exact type); see fakepop3/_cache.py.
_parsed_line = PARSED_LINES.get
_now = time.time


def answer_line(
    session: Session, data: bytes, commands: dict[str, Entry] | None = None
) -> tuple[Buffer, ...] | None:
    """The fast lane: answer ``data`` at once if it is exactly one plain command line.

    The same as ``receive_data(data)`` then ``next_actions()`` (the same reply, state and
    history), for the usual case only: nothing is buffered, ``data`` is one complete line
    under the limit, no fault rule is armed, and the command answers with one reply and goes
    on (or, for QUIT, closes: the transport closes the connection after the reply when
    ``state`` is ``CLOSED``).  Anything else returns None having consumed nothing; pass it to
    :meth:`receive_data` as usual.

    ``commands``: the general path runs each line it takes from its buffer through this same
    code, with the dispatch of the state (rule 4 of ``_state.py``); the transport never
    passes it.
    """
    if commands is None:
        commands = session._lane
        if commands is None:  # input buffered, SASL or STLS under way, or closed
            return None
        faults = session.faults
        if faults is not None and faults.armed:
            return None
    parsed = _parsed_line(data)
    if parsed is None:
        end = len(data) - 1
        if end < 1 or end >= session.settings.max_line or data.find(b"\n") != end:
            return None
        lenient = session.settings.lenient_syntax
        line = parse(data[: end - 1] if data[end - 1] == 13 else data[:end], lenient)
        if isinstance(line, str):
            return None  # a bad command: the general path answers (and counts) it
        name, args, logged = line
        fits = len(args) in _ARITY.get(name, _NO_ARITY)
        parsed = (name, args, logged, fits)
        # Lenient syntax parses some malformed lines: only a strict parse is shared (rule 4).
        if end < MAX_LINE and fits and name not in SECRET_COMMANDS and not lenient:
            PARSED_LINES.put(data, parsed)
    name, args, logged, fits = parsed
    entry = commands.get(name)
    if entry is None:  # unknown, switched off, or (in the fast lane) STLS
        return None
    # The arity the table allows holds in every entry (those that answer an error for any
    # arguments allow more): the exact check, _commands.run, only when it does not hold.
    # One comparison less per command (bench/README.md, "Speed notes").
    if fits:
        reply = entry[0](session, args)
    else:
        reply = run(session, entry, name, args)
    history = session.history
    if history.enabled:
        # The history's one entry point; the status line is decoded when the history is read.
        history.add_command(
            (
                session.id,
                session.client,
                session.user,
                name,
                logged,
                reply[0],
                session.tls,
                _now(),
                None,
            )
        )
    return reply
