"""Reply building, the replies made once, and the status lines the history records.

A reply is a tuple of bytes whose first item is the status line (``+OK ...`` or ``-ERR ...``
with its CRLF); a multi-line reply is (status line, body, ``.`` line).  Rules:

- An error echoes pieces of the client's line: :meth:`Replies.err` replaces every control
  character but TAB, so no bare CR reaches the wire inside a reply line.
- The history is given a reply's first buffer (its status line, in bytes) and decodes it only
  when read; a fault's reply is given as text (:func:`status_of`).
- The caches here are per process and bounded (``fakepop3._cache.BoundedCache``).
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

from .._cache import BoundedCache
from ._actions import Action, Send

if TYPE_CHECKING:
    from ._settings import Settings

__all__ = [
    "LOGGED_IN",
    "LOGGING_OUT",
    "OK_REPLY",
    "RETR_STATUS",
    "Replies",
    "known_retr_status",
    "lines",
    "retr_status",
    "status_of",
]

_CONTROLS = {c: "?" for c in (*range(0x20), 0x7F) if c != 0x09}


class Replies:
    """The reply builder of one ``Settings``: strips response codes when RESP-CODES is off."""

    def __init__(self, settings: Settings) -> None:
        self.codes = settings.enabled("RESP-CODES")
        # RFC 1939 s7: the APOP timestamp "MUST be different each time the POP3 server issues
        # a banner greeting": <pid.session-id.start-time@host>, unique in this process (the
        # session id) and across restarts (the time this server's settings were compiled).
        self.stamp_head = f"<{os.getpid()}."
        self.stamp_tail = f".{time.time_ns()}@{settings.hostname}>"
        if settings.enabled("APOP"):
            self.greeting_head = f"+OK {settings.greeting} {self.stamp_head}".encode()
            self.greeting_tail = f"{self.stamp_tail}\r\n".encode()
        else:
            self.greeting_head = self.ok(settings.greeting)
            self.greeting_tail = b""

    def ok(self, text: str = "") -> bytes:
        return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"

    def err(self, text: str, code: str | None = None) -> bytes:
        if code and self.codes:
            text = f"[{code}] {text}"
        text = text.translate(_CONTROLS)
        return f"-ERR {text}\r\n".encode("utf-8", "replace")


def lines(status: bytes, items: Sequence[str]) -> tuple[bytes, ...]:
    """A multi-line reply: the status line, one CRLF line per item, the ``.`` line."""
    body = "".join(f"{line}\r\n" for line in items).encode("utf-8", "replace")
    return (status, body, b".\r\n")


# Replies that never change, made once.
OK_REPLY = (b"+OK\r\n",)
LOGGED_IN = b"+OK Logged in.\r\n"
LOGGING_OUT = (b"+OK Logging out.\r\n",)
#: RETR status lines by message size, made once.
RETR_STATUS: BoundedCache[int, bytes] = BoundedCache(4096)
#: ``RETR_STATUS.get``, bound once (see fakepop3/_cache.py).
known_retr_status = RETR_STATUS.get


def retr_status(size: int) -> bytes:
    """The status line of RETR for a message of ``size`` octets (RFC 1939 s5: "+OK n octets")."""
    return RETR_STATUS.put(size, b"+OK %d octets\r\n" % size)


def status_of(actions: list[Action]) -> str:
    """The status line of the first reply among ``actions`` (a fault's), for the history."""
    for action in actions:
        if isinstance(action, Send) and action.buffers:
            first = bytes(action.buffers[0][:600])
            return first.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    return "(no reply: connection closed)"
