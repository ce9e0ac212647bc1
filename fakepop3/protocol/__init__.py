"""The POP3 session as a state machine, with no I/O (sans-IO, in the spirit of h11).

Bytes from the client go in through :meth:`Session.receive_data`; each call of
:meth:`Session.next_actions` handles one complete command line and returns what
the transport must do: :class:`Send` bytes, :class:`Pause`, :class:`StartTLS`
or :class:`Close`.  The transport (``fakepop3.server``) only moves bytes.

This is the import path; the modules behind it are private.  The rules of the core (the
command table, the dispatch, the one execute path) are at the top of ``_state.py``.
"""

from ._actions import (
    Action,
    Close,
    CommandFault,
    FaultHook,
    Pause,
    Send,
    StartTLS,
    Stream,
    Throttle,
)
from ._session import Session

# check_disabled and check_mechanisms: for the options schema (fakepop3.options), not public.
from ._settings import Settings
from ._settings import check_disabled as check_disabled
from ._settings import check_mechanisms as check_mechanisms
from ._state import CAPABILITIES, COMMAND_NAMES, COMMANDS, MAX_LINE, MAX_SASL_LINE, Command, State

__all__ = [
    "CAPABILITIES",
    "COMMANDS",
    "COMMAND_NAMES",
    "MAX_LINE",
    "MAX_SASL_LINE",
    "Action",
    "Close",
    "Command",
    "CommandFault",
    "FaultHook",
    "Pause",
    "Send",
    "Session",
    "Settings",
    "StartTLS",
    "State",
    "Stream",
    "Throttle",
]
