"""The per-state dispatch, compiled from the command table for one ``Settings``.

``Dispatch(settings, replies)`` runs once per ``Settings`` (in its ``__post_init__``).  For each
state a command can be read in (AUTHORIZATION, TRANSACTION) and for TLS off and on, it makes a
dict: command name -> entry ``(handler, min args, max args)``.  ``Session._refresh`` picks the
dict of the session's state when that changes (``Dispatch.pick`` says which); a command is then one dict lookup, one arity
comparison and one call.  Rules:

- A name with no entry is unknown: it was never in the table, or its capability is switched
  off (SASL also when no mechanism is configured).
- Everything else the table says is resolved here, in the order of rule 3 of ``_state.py``:
  STLS without a certificate or on TLS, and a command of another state, get an entry whose
  handler answers that error for any arguments; a login command refused before TLS gets an
  entry whose handler answers the refusal, after the arity check.
- The fast lane's dict is the same less the commands that start TLS (their reply must be
  followed by the handshake, an action the fast lane cannot return).
- Error replies made here are made once, with the reply builder of these settings.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from ._commands import HANDLERS, PERSONA_HANDLERS, Handler, Reply
from ._state import ANY, AUTHORIZATION, COMMANDS, TRANSACTION, Command, State

if TYPE_CHECKING:
    from ._replies import Replies
    from ._session import Session
    from ._settings import Settings

__all__ = ["Dispatch", "Entry", "Pair", "Tables", "switched_off"]

Entry = tuple[Handler, int, int]
#: (all the commands, the fast lane's commands) of one state, TLS off or on.
Pair = tuple[dict[str, Entry], dict[str, Entry]]


def switched_off(settings: Settings) -> frozenset[str]:
    """The commands that do not exist with these settings (their capability is off)."""
    return frozenset(
        command.name
        for command in COMMANDS.values()
        if command.capability is not None
        and (
            not settings.enabled(command.capability)
            or (command.capability == "SASL" and not settings.mechanisms)
        )
    )


def _answer(reply: bytes) -> Handler:
    """A handler that answers ``reply`` whatever the arguments."""
    answer = (reply,)

    def constant(session: Session, args: tuple[str, ...]) -> Reply:
        return answer

    return constant


def _state_error(command: Command) -> str:
    if command.states == {TRANSACTION}:
        return f"{command.name} is only valid after login (TRANSACTION state)."
    return f"{command.name} is only valid before login (AUTHORIZATION state)."


class Tables:
    """The dispatch of the two states that read commands, for TLS off or on."""

    __slots__ = ("authorization", "transaction")

    def __init__(self, authorization: Pair, transaction: Pair) -> None:
        self.authorization = authorization
        self.transaction = transaction


class Dispatch:
    """The command table compiled for one ``Settings``: ``plain`` (TLS off) and ``on_tls``.

    Plain attributes, read by ``Session._refresh`` (an attribute read of a slot is cheaper
    than an index by a bool, or a dict keyed by a State: ``Enum.__hash__`` is Python code).
    """

    __slots__ = ("on_tls", "plain")

    def __init__(self, settings: Settings, replies: Replies) -> None:
        off = switched_off(settings)
        commands = [c for c in COMMANDS.values() if c.name not in off]

        def tables(tls: bool) -> Tables:
            return Tables(
                _compile(commands, AUTHORIZATION, tls, settings, replies),
                _compile(commands, TRANSACTION, tls, settings, replies),
            )

        self.plain = tables(False)
        self.on_tls = tables(True)

    def pick(self, state: State, tls: bool) -> Pair:
        """The dispatch of ``state`` (AUTHORIZATION or TRANSACTION), TLS on or off."""
        tables = self.on_tls if tls else self.plain
        return tables.transaction if state is TRANSACTION else tables.authorization


def _compile(
    commands: list[Command], state: State, tls: bool, settings: Settings, replies: Replies
) -> Pair:
    entries = {
        c.name: _forgetting_user(_entry(c, state, tls, settings, replies), c, state)
        for c in commands
    }
    lane = {c.name: entries[c.name] for c in commands if not c.starts_tls}
    return entries, lane


def _entry(
    command: Command, state: State, tls: bool, settings: Settings, replies: Replies
) -> Entry:
    if command.starts_tls:
        if not settings.tls_available:
            text = f"{command.name} is not available: this server has no TLS certificate."
            return (_answer(replies.err(text)), 0, ANY)
        if tls:
            # RFC 2595 s4: the server MAY answer -ERR when TLS is already active.
            return (_answer(replies.err("TLS is already active.")), 0, ANY)
    if state not in command.states:
        wrong_state = replies.wrong_state
        error = (
            replies.err(_state_error(command))
            if wrong_state is None
            else replies.raw_err(wrong_state)
        )
        return (_answer(error), 0, ANY)
    handler = _persona_handler(command, settings, replies) or HANDLERS[command.name]
    if command.refused_before_tls and settings.require_tls and not tls:
        handler = _answer(replies.tls_refusal)
    return (handler, command.min_args, command.max_args)


def _persona_handler(command: Command, settings: Settings, replies: Replies) -> Handler | None:
    """The handler a persona puts in place of the usual one, or None (see PERSONA_HANDLERS)."""
    persona = settings.persona
    if persona is None:
        return None
    name = command.name
    if name in ("RETR", "QUIT") and persona.pop_once:
        return PERSONA_HANDLERS[name]
    if name == "UIDL" and replies.uid_of is not None:
        return PERSONA_HANDLERS[name]
    if replies.basic_auth_refused is not None:
        if name == "PASS":
            return PERSONA_HANDLERS[name]
        if name == "APOP":
            return _answer(replies.basic_auth_refused)
    return None


def _forgetting_user(entry: Entry, command: Command, state: State) -> Entry:
    """``entry``, its handler made to forget a pending USER first when the command is one of
    AUTHORIZATION other than USER and PASS (RFC 1939 s7: PASS only right after USER).  Made
    when the dispatch is compiled, so that no command after login, and neither USER nor
    PASS, pays for it."""
    if state is not AUTHORIZATION or command.name in ("USER", "PASS"):
        return entry
    handler, low, high = entry

    def forgets_user(session: Session, args: tuple[str, ...]) -> Reply:
        session._pending_user = None
        return handler(session, args)

    forgets_user.__wrapped__ = handler  # type: ignore[attr-defined]
    return (forgets_user, low, high)
