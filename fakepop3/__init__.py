"""fakepop3: a fake POP3 server for tests.

The public API is re-exported here; see the README for a tour.
"""

from . import mail  # noqa: F401  (importing it gives Mailbox its generate, load, add_message)
from .faults import FaultConfigError, FaultRule, Faults
from .history import CommandRecord, History, SessionRecord
from .protocol import Session, Settings, State
from .server import POP3Server, ServerError
from .smtp import SMTPIntake
from .store import Mailbox, MailStore, Message, UnknownUserError
from .tls import TLSCertificates

__all__ = [
    "CommandRecord",
    "FaultConfigError",
    "FaultRule",
    "Faults",
    "History",
    "MailStore",
    "Mailbox",
    "Message",
    "POP3Server",
    "SMTPIntake",
    "ServerError",
    "Session",
    "SessionRecord",
    "Settings",
    "State",
    "TLSCertificates",
    "UnknownUserError",
]

__version__ = "0.1.0"
