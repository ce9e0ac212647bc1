"""The states of a POP3 session and the command table: the rules of the core, as data.

Theory of operation
===================

A :class:`~fakepop3.protocol.Session` is a state machine with no I/O.  The transport feeds it
bytes (``receive_data``) and asks what to do (``next_actions``), or hands it a packet that holds
one whole command line (``answer_line``, the fast lane).  A session is in one of four states
(RFC 1939 s3): AUTHORIZATION after the greeting, TRANSACTION after a login, UPDATE while QUIT
commits the deletions, CLOSED at the end.

Everything that decides *whether* a command may run lives in :data:`COMMANDS`, below: the
states in which it is allowed, how many arguments it takes and what the missing one is called,
the capability that switches it off, whether ``require_tls`` refuses it before TLS, and the RFC
section it comes from.  The handlers (``_commands.py``) hold what a command *does* once it may
run; they never check the state, the arity, the capability or TLS again.

The rules a maintainer must keep:

Rule 1: the table is the only place a precondition is written.  A new command is a row here and
        a function in ``_commands.HANDLERS``; a new precondition is a column here, compiled in
        ``_dispatch.py``.  A handler that starts with ``if session.state ...`` is a bug.

Rule 2: the dispatch is compiled, not decided per command (h11's "pick the reader when the state
        changes").  ``_dispatch.Dispatch`` turns the table and one ``Settings`` into a dict per
        (state, TLS or not): command name -> ``(handler, min args, max args)``.  Whatever the
        state decides is already in that entry: a command of the wrong state is an entry whose
        handler answers the state error; a login command refused before TLS is an entry whose
        handler answers the refusal.  A session picks its dict in ``Session._refresh``, which
        runs after every change of the state, of TLS, of a SASL exchange, of STLS and of the
        input buffer (and nowhere else is the dispatch or the fast lane's gate written).

Rule 3: the order of the checks is what a client sees, and it is this, for every command:

        1. a name with no entry (unknown, or its capability switched off): ``-ERR Unknown
           command.`` (in TRANSACTION ``-ERR Unknown command: NAME``), counted as a bad command;
        2. STLS only: no certificate, or TLS already on: ``-ERR STLS is not available ...`` /
           ``-ERR TLS is already active.``, in any state (RFC 2595 s4);
        3. the state: ``-ERR NAME is only valid after login (TRANSACTION state).`` or ``... before
           login (AUTHORIZATION state).``;
        4. the bare form: AUTH with no argument lists the mechanisms (RFC 1734 behaviour that
           clients still use), whatever the arity and TLS rules say;
        5. the arity: ``-ERR NAME needs WHAT.`` below ``min_args``, ``-ERR Too many arguments for
           NAME.`` above ``max_args``;
        6. ``require_tls`` before TLS: ``-ERR [AUTH] Plaintext authentication disallowed ...``;
        7. the handler (whose own checks are the command's semantics: PASS asks for USER before
           it asks for a password, APOP checks its digest, RETR its message number ...).

        ``tests/test_command_table.py`` pins the reply of every command in every state with zero
        to three arguments, recorded before this table existed: change the order and it fails.

Rule 4: one execute path.  Every command line, from the fast lane or the general path, is
        parsed by ``_parse.parse`` (which also masks its secrets for the history), run by
        ``_fastlane.answer_line`` (the general path passes it each line it takes from its
        buffer, with the dispatch of the state) and recorded through ``History.add_command``,
        the history's one entry point.  Only a fault that replaces a reply takes another way
        (``Session._fault``: ``_commands.run``, then the fault's record).  The fast lane may
        skip work (a cache of parsed lines, no actions list), never do it another way.
        ``tests/test_fast_lane.py`` and ``tests/test_stateful.py`` check, by property tests,
        that both paths give the same bytes, state and history, and that every session's
        dispatch and fast-lane gate match its state.

Rule 5: a handler returns a tuple of bytes whose first item is the status line (the history
        records it) and makes one reply.  After it changes the state (login, QUIT), a SASL
        exchange or STLS, it calls ``Session._refresh``, so the dispatch follows.

Rule 6: no I/O here: this package imports no asyncio, ssl, socket or pytest, not even through
        ``fakepop3.history`` (``tests/test_protocol.py`` checks the imports).

The speed tricks of the core (each one-line comment points to bench/README.md, "Speed notes")
are measured in machine instructions per benchmark session with ``bench/instructions.py``.
"""

from __future__ import annotations

import enum
from typing import NamedTuple

__all__ = ["CAPABILITIES", "COMMANDS", "MAX_LINE", "MAX_SASL_LINE", "Command", "State"]

#: Capability names that can be switched off with ``Settings.disabled``.
CAPABILITIES = frozenset(
    {
        "TOP",
        "UIDL",
        "USER",
        "SASL",
        "APOP",
        "STLS",
        "RESP-CODES",
        "AUTH-RESP-CODE",
        "PIPELINING",
        "IMPLEMENTATION",
        "UTF8",
        "LANG",
        "CAPA",
    }
)

MAX_LINE = 255
"""RFC 2449 s4: "command lines ... MUST NOT exceed 255 octets, including the terminating CRLF"."""

MAX_SASL_LINE = 64 * 1024
"""A SASL response line is not a command line: OAuth tokens sent as continuations exceed 255 octets."""


class State(enum.Enum):
    """The state of a POP3 session (RFC 1939 s3)."""

    AUTHORIZATION = "AUTHORIZATION"
    """From the greeting until a login succeeds: USER/PASS, APOP, AUTH, STLS, CAPA."""
    TRANSACTION = "TRANSACTION"
    """Logged in, the maildrop locked: STAT, LIST, RETR, DELE, RSET ..."""
    UPDATE = "UPDATE"
    """After QUIT in TRANSACTION: the deletions are committed, then the connection closes."""
    CLOSED = "CLOSED"
    """The session is over."""


# Module constants: an attribute of an Enum class is slow to read (bench/README.md, "Speed notes").
AUTHORIZATION = State.AUTHORIZATION
TRANSACTION = State.TRANSACTION
UPDATE = State.UPDATE
CLOSED = State.CLOSED

#: More arguments than any command line can hold (LAST and RPOP take whatever comes).
ANY = 1 << 30


class Command(NamedTuple):
    """One row of the command table (see the rules above)."""

    name: str
    #: The states in which the command runs; in any other it answers the state error.
    states: frozenset[State]
    min_args: int
    max_args: int
    #: What the missing argument is called: ``-ERR NAME needs WHAT.`` below ``min_args``.
    needs: str
    #: The capability that must be on for the command to exist (RFC 2449 s6), or None.
    capability: str | None
    #: Refused in AUTHORIZATION before TLS when ``Settings.require_tls`` is set.
    refused_before_tls: bool
    rfc: str
    #: With no argument it is another command, answered past the state check only (AUTH).
    bare: bool = False
    #: STLS: answers "not available" without a certificate and "already active" on TLS, before
    #: the state is checked.
    starts_tls: bool = False


_AUTH = frozenset({AUTHORIZATION})
_TRANS = frozenset({TRANSACTION})
_BOTH = frozenset({AUTHORIZATION, TRANSACTION})

# fmt: off
#: The command table: every command the core knows, in the order CAPA and the docs list them.
COMMANDS: dict[str, Command] = {c.name: c for c in (
    #       name    states  args     the missing argument       capability  before TLS  RFC
    Command("USER", _AUTH,  1, 1,    "a user name",             "USER",     True,  "RFC 1939 s7"),
    # PASS alone: its handler asks for USER first, then for the password (RFC 1939 s7); a
    # password keeps its spaces, so the parser gives PASS at most one argument.
    Command("PASS", _AUTH,  0, 1,    "a password",              "USER",     True,  "RFC 1939 s7"),
    Command("APOP", _AUTH,  2, 2,    "a user name and a digest", "APOP",    True,  "RFC 1939 s7"),
    Command("AUTH", _AUTH,  1, 2,    "a mechanism name",        "SASL",     True,  "RFC 5034 s4",
            bare=True),
    Command("STLS", _AUTH,  0, 0,    "",                        "STLS",     False, "RFC 2595 s4",
            starts_tls=True),
    Command("UTF8", _AUTH,  0, 0,    "",                        "UTF8",     False, "RFC 6856 s2"),
    Command("LANG", _BOTH,  0, 1,    "",                        "LANG",     False, "RFC 6856 s3"),
    Command("CAPA", _BOTH,  0, 0,    "",                        "CAPA",     False, "RFC 2449 s5"),
    Command("QUIT", _BOTH,  0, 0,    "",                        None,       False, "RFC 1939 s4, s6"),
    Command("STAT", _TRANS, 0, 0,    "",                        None,       False, "RFC 1939 s5"),
    Command("LIST", _TRANS, 0, 1,    "",                        None,       False, "RFC 1939 s5"),
    Command("UIDL", _TRANS, 0, 1,    "",                        "UIDL",     False, "RFC 1939 s7"),
    Command("RETR", _TRANS, 1, 1,    "a message number",        None,       False, "RFC 1939 s5"),
    Command("TOP",  _TRANS, 2, 2,    "a message number and a number of lines",
                                                                "TOP",      False, "RFC 1939 s7"),
    Command("DELE", _TRANS, 1, 1,    "a message number",        None,       False, "RFC 1939 s5"),
    Command("RSET", _TRANS, 0, 0,    "",                        None,       False, "RFC 1939 s5"),
    Command("NOOP", _TRANS, 0, 0,    "",                        None,       False, "RFC 1939 s5"),
    # Gone from RFC 1939 (LAST: RFC 1460, RPOP: RFC 1081), still sent (fetchmail sends LAST):
    # a plain -ERR in any state, whatever follows.
    Command("LAST", _BOTH,  0, ANY,  "",                        None,       False, "RFC 1460"),
    Command("RPOP", _BOTH,  0, ANY,  "",                        None,       False, "RFC 1081"),
)}
# fmt: on

#: The name of every command the core knows (faults match on these).
COMMAND_NAMES = frozenset(COMMANDS)
