"""Resets and snapshots of a running server: what a test case starts from.

A *baseline* is the users (with their passwords and tokens), the maildrops, the fault rules and
the run-time settings (``server/_runtime.py``) at one moment.  :meth:`POP3Server.reset` goes back to the server's baseline, which is, in this
order of precedence:

* the last :meth:`POP3Server.snapshot` call (the standalone server takes one once its mail is
  loaded, so a reset there goes back to the content at start);
* else the moment the first client connected (POP3, or SMTP to the server's own intake), or
  the first change came through the control API, whichever was first: mail a test added inside
  ``with POP3Server() as server:`` before its client connected is part of it, which is what
  every example expects, and mail the client under test sent over SMTP is not;
* else the content at :meth:`POP3Server.start` (a reset before any of those).

A reset also ends every open session at once (see :func:`end_sessions`), so that the next test
case never meets the previous one's session: its maildrop lock is released, it is never told
that its deletions succeeded, and none of its commands reach the new case's history.

Rules a maintainer must keep: everything here runs on the server's loop (``POP3Server`` hands
the work over when it is called from another thread), and never awaits.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from .. import history as _history
from ..faults import FaultRule, Faults
from ..store import StoreSnapshot
from . import _runtime
from ._transport import _READING

if TYPE_CHECKING:
    from ._pop3server import POP3Server

__all__ = ["RESET_LINE", "Baseline", "end_sessions", "restore", "take"]

#: What a session that is waiting for a command reads when a reset ends it (RFC 2449's
#: SYS/TEMP: a transient problem of the server, not of the client's request).
RESET_LINE = b"-ERR [SYS/TEMP] The server was reset for the next test; this session is over.\r\n"


@dataclass(frozen=True)
class Baseline:
    """The users and maildrops (a :class:`StoreSnapshot`) and the fault rules at one moment."""

    store: StoreSnapshot
    faults: tuple[FaultRule, ...] | None  # None: the server's faults are not a Faults
    settings: dict[str, Any]  # the run-time options (server/_runtime.py)


def take(server: POP3Server) -> Baseline:
    """The server's users, maildrops and fault rules now."""
    faults = server.faults
    rules = tuple(faults.rules) if isinstance(faults, Faults) else None
    return Baseline(server.store.snapshot(), rules, _runtime.current(server))


def restore(server: POP3Server, baseline: Baseline) -> None:
    """Put the users, maildrops, fault rules and run-time settings of ``baseline`` back, each
    rule's counts (and the faults' random generator) started again."""
    server.store.restore(baseline.store)
    now = _runtime.current(server)
    changed = {k: value for k, value in baseline.settings.items() if now[k] != value}
    if changed:
        _runtime.configure(server, changed)
    faults = server.faults
    if isinstance(faults, Faults):
        faults.restart(baseline.faults)


def end_sessions(server: POP3Server) -> int:
    """End every open session now, recorded as ended by ``reset``; returns how many.

    A session waiting for a command (nothing of a reply still unsent) reads :data:`RESET_LINE`
    first; one in the middle of a reply is cut.  Either way it never gets another reply, so a
    QUIT sent after the reset is never answered ``+OK``.  The session's end is recorded at once
    (and its maildrop lock released), before the reset clears the history.
    """
    connections = list(server._connections)
    for conn in connections:
        transport = conn.transport
        idle = conn.mode == _READING and (
            transport is None or not transport.get_write_buffer_size()
        )
        conn._abort(RESET_LINE if idle else None, _history.RESET)
        if conn.session is not None:
            conn.session.connection_lost(_history.RESET)
        server._connections.discard(conn)
    return len(connections)
