"""The session states and the limits of a command line."""

from __future__ import annotations

import enum

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
    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"
    CLOSED = "CLOSED"
