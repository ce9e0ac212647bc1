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

import hashlib
import os
import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from .._cache import BoundedCache
from ._actions import Action, Send, Stream

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
            text = f"{settings.greeting} " if settings.greeting else ""
            self.greeting_head = f"+OK {text}{self.stamp_head}".encode()
            self.greeting_tail = f"{self.stamp_tail}\r\n".encode()
        else:
            self.greeting_head = self.ok(settings.greeting)
            self.greeting_tail = b""
        self._persona_texts(settings)

    def _persona_texts(self, settings: Settings) -> None:
        """The replies a persona may change, made once (its texts, else fakepop3's own)."""
        persona = settings.persona
        error = persona.error if persona is not None else (lambda key: None)
        reply = persona.reply if persona is not None else (lambda key: None)

        def err(key: str, default: str, code: str | None = None) -> bytes:
            text = error(key)
            return self.err(default, code) if text is None else self.raw_err(text)

        def ok(key: str, default: bytes) -> bytes:
            text = reply(key)
            return default if text is None else self.ok(text)

        auth_code = "AUTH" if settings.enabled("AUTH-RESP-CODE") else None
        self.auth_failed = err("wrong_password", "Authentication failed.", auth_code)
        text = error("unknown_user")
        self.unknown_user = None if text is None else self.raw_err(text)
        text = error("sasl_failed")
        self.sasl_failed = None if text is None else self.raw_err(text)
        self.in_use = err("mailbox_locked", "Mailbox is locked by another POP3 session.", "IN-USE")
        self.login_delay = err(
            "login_too_soon",
            f"Minimum time between logins is {settings.login_delay} seconds.",
            "LOGIN-DELAY",
        )
        self.no_user = err("no_user", "No username given; send USER first.")
        self.basic_auth_refused = (
            None
            if persona is None or persona.basic_auth
            else err(
                "basic_auth_disabled",
                "Basic authentication is disabled for this account; use OAuth.",
                auth_code,
            )
        )
        self.tls_refusal = err(
            "tls_required",
            "Plaintext authentication disallowed on non-secure (SSL/TLS) connections; "
            "use STLS first.",
            "AUTH",
        )
        #: RFC 6856 s2.1 and s5: the answer to RETR or TOP of a message with UTF-8 headers
        #: before the client sent UTF8 (None: UTF8 is not offered, so RFC 6856 does not apply).
        self.utf8_refused = (
            self.err("This message has UTF-8 headers: send UTF8 first (RFC 6856 s2.1).", "UTF8")
            if settings.enabled("UTF8")
            else None
        )
        self.unknown_command = error("unknown_command")
        self.wrong_state = error("wrong_state")
        self.user_ok = (ok("user", OK_REPLY[0]),)
        self.logged_in = ok("logged_in", LOGGED_IN)
        self.logging_out = (ok("quit", LOGGING_OUT[0]),)
        status = persona.capa_status if persona is not None else None
        self.capa_status = self.ok("Capability list follows" if status is None else status)
        #: The persona's CAPA lines before and after login (None: computed from the settings).
        self.capa_lines: tuple[tuple[str, ...], tuple[str, ...]] | None = None
        if persona is not None and (
            persona.capa_before is not None or persona.capa_after is not None
        ):
            before = persona.capa_before if persona.capa_before is not None else persona.capa_after
            after = persona.capa_after if persona.capa_after is not None else persona.capa_before
            assert before is not None and after is not None
            self.capa_lines = (before, after)
        self.recent_prefix = persona.recent_prefix if persona is not None else None
        self.uid_of = _uid_formatter(persona.uidl) if persona is not None and persona.uidl else None

    def raw_err(self, text: str) -> bytes:
        """``-ERR text`` as given (a persona's text: its response code is part of it)."""
        return f"-ERR {text.translate(_CONTROLS)}\r\n".encode("utf-8", "replace")

    def ok(self, text: str = "") -> bytes:
        return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"

    def err(self, text: str, code: str | None = None) -> bytes:
        if code and self.codes:
            text = f"[{code}] {text}"
        text = text.translate(_CONTROLS)
        return f"-ERR {text}\r\n".encode("utf-8", "replace")


def _uid_formatter(template: str) -> Callable[[str], str]:
    """The UIDL of a message from its store UID, by a persona's template (made once per UID)."""
    made: dict[str, str] = {}

    def uid_of(uid: str) -> str:
        out = made.get(uid)
        if out is None:
            digest = hashlib.md5(uid.encode("utf-8")).hexdigest()
            out = template.format(uid=uid, hash=digest, num=int(digest[:7], 16), validity=1)
            out = out[:70]
            if len(made) < 65536:
                made[uid] = out
        return out

    return uid_of


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
            head = action.buffers[0]
            first = bytes(head)[:600] if isinstance(head, Stream) else bytes(head[:600])
            return first.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    return "(no reply: connection closed)"
