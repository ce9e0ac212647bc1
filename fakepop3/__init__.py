"""fakepop3: a fake POP3 server for tests.

The public API is the names in ``__all__``, imported from here (``from fakepop3 import
POP3Server``); the modules behind them are private, and the docs use no other import path.
The names load on first use (PEP 562): ``import fakepop3`` — which pytest does for every
project that has fakepop3 installed, through the plugin — costs next to nothing, and
``import fakepop3.protocol`` brings in the sans-IO core alone, with no asyncio, ssl or socket.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from .faults import FaultConfigError, FaultRule, Faults
    from .history import CommandRecord, History, SessionRecord
    from .mail import (
        Attachment,
        Attachments,
        GeneratedMail,
        HookContext,
        MailLoadError,
        MessageGenerator,
        build_message,
        detect_format,
        generate_messages,
        load_messages,
    )
    from .protocol import (
        Action,
        Close,
        FaultHook,
        Pause,
        Send,
        Session,
        Settings,
        StartTLS,
        State,
        Throttle,
    )
    from .server import POP3Server, ServerError, uvloop_factory
    from .smtp import SMTPIntake
    from .store import Mailbox, MailStore, Message, UnknownUserError
    from .tls import TLSCertificates

#: Where each public name lives (the module imported on its first use).
_HOMES: dict[str, str] = {
    # the server and its parts
    "POP3Server": "server",
    "ServerError": "server",
    "uvloop_factory": "server",
    "SMTPIntake": "smtp",
    "TLSCertificates": "tls",
    # users and mail
    "MailStore": "store",
    "Mailbox": "store",
    "Message": "store",
    "UnknownUserError": "store",
    "build_message": "mail",
    "Attachment": "mail",
    "Attachments": "mail",
    "generate_messages": "mail",
    "GeneratedMail": "mail",
    "MessageGenerator": "mail",
    "HookContext": "mail",
    "load_messages": "mail",
    "detect_format": "mail",
    "MailLoadError": "mail",
    # what the server records
    "History": "history",
    "CommandRecord": "history",
    "SessionRecord": "history",
    # faults
    "Faults": "faults",
    "FaultRule": "faults",
    "FaultConfigError": "faults",
    # the sans-IO core and its actions
    "Session": "protocol",
    "Settings": "protocol",
    "State": "protocol",
    "FaultHook": "protocol",
    "Action": "protocol",
    "Send": "protocol",
    "Pause": "protocol",
    "Throttle": "protocol",
    "StartTLS": "protocol",
    "Close": "protocol",
}

# The mail package gives Mailbox its generate/load/add_message (the store does not import it);
# importing it is cheap: its own names load on first use too.
from . import mail as _mail  # noqa: E402, F401

__all__ = [
    "Action",
    "Attachment",
    "Attachments",
    "Close",
    "CommandRecord",
    "FaultConfigError",
    "FaultHook",
    "FaultRule",
    "Faults",
    "GeneratedMail",
    "History",
    "HookContext",
    "MailLoadError",
    "MailStore",
    "Mailbox",
    "Message",
    "MessageGenerator",
    "POP3Server",
    "Pause",
    "SMTPIntake",
    "Send",
    "ServerError",
    "Session",
    "SessionRecord",
    "Settings",
    "StartTLS",
    "State",
    "TLSCertificates",
    "Throttle",
    "UnknownUserError",
    "build_message",
    "detect_format",
    "generate_messages",
    "load_messages",
    "uvloop_factory",
]

__version__ = "0.1.0"


def __getattr__(name: str) -> Any:
    home = _HOMES.get(name)
    if home is None:
        raise AttributeError(f"module 'fakepop3' has no attribute {name!r}")
    value = getattr(importlib.import_module(f".{home}", __name__), name)
    globals()[name] = value  # the next read is a plain module attribute
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *__all__})
