"""The POP3 session as a state machine, with no I/O (sans-IO, in the spirit of h11).

Bytes from the client go in through :meth:`Session.receive_data`; each call of
:meth:`Session.next_actions` handles one complete command line and returns what
the transport must do: :class:`Send` bytes, :class:`Pause`, :class:`StartTLS`
or :class:`Close`.  The transport (``fakepop3.server``) only moves bytes.

The modules behind this one are private; this is the import path.
"""

from ._actions import Action, Close, CommandFault, FaultHook, Pause, Send, StartTLS, Throttle
from ._session import _HANDLERS as _HANDLERS  # faults.py reads it until it is migrated
from ._session import COMMAND_NAMES, Session
from ._settings import Settings
from ._state import CAPABILITIES, MAX_LINE, MAX_SASL_LINE, State

__all__ = [
    "CAPABILITIES",
    "COMMAND_NAMES",
    "MAX_LINE",
    "MAX_SASL_LINE",
    "Action",
    "Close",
    "CommandFault",
    "FaultHook",
    "Pause",
    "Send",
    "Session",
    "Settings",
    "StartTLS",
    "State",
    "Throttle",
]
