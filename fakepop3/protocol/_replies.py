"""Reply building and the status lines made once."""

from __future__ import annotations

import os
import time
from collections.abc import MutableMapping, Sequence
from collections.abc import Set as AbstractSet
from types import MappingProxyType
from typing import TYPE_CHECKING

from ._actions import Action, Send
from ._state import State

if TYPE_CHECKING:
    from ._settings import Settings


_CONTROLS = {c: "?" for c in (*range(0x20), 0x7F) if c != 0x09}


class _Reply:
    """Builds reply lines; strips response codes when RESP-CODES is switched off."""

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
        from ._session import _COMMAND_CAPABILITY, _HANDLERS, _QUICK  # a cycle, for now

        #: Commands that do not exist with these settings (their capability is switched off).
        self.disabled_commands = frozenset(
            name
            for name, cap in _COMMAND_CAPABILITY.items()
            if not settings.enabled(cap) or (cap == "SASL" and not settings.mechanisms)
        )
        #: The handlers of Session.answer_line: its commands, less those switched off.
        self.quick_handlers = {
            name: _HANDLERS[name] for name in _QUICK.values() if name not in self.disabled_commands
        }

    def ok(self, text: str = "") -> bytes:
        return f"+OK {text}\r\n".encode() if text else b"+OK\r\n"

    def err(self, text: str, code: str | None = None) -> bytes:
        if code and self.codes:
            text = f"[{code}] {text}"
        # Errors echo pieces of the client's line: a bare CR (or another control) must not
        # reach the wire inside a reply line.
        text = text.translate(_CONTROLS)
        return f"-ERR {text}\r\n".encode("utf-8", "replace")


def _lines(status: bytes, lines: Sequence[str]) -> tuple[bytes, ...]:
    body = "".join(f"{line}\r\n" for line in lines).encode("utf-8", "replace")
    return (status, body, b".\r\n")


# Module constants: reading an attribute of an Enum class costs ~600 machine instructions in
# Python 3.11 (EnumType has a __getattr__), a module global next to nothing.
_AUTHORIZATION = State.AUTHORIZATION
_TRANSACTION = State.TRANSACTION
_UPDATE = State.UPDATE
_CLOSED = State.CLOSED
_now = time.time
# Replies that never change, made once.
_OK_REPLY = (b"+OK\r\n",)
_LOGGED_IN = b"+OK Logged in.\r\n"
_LOGGING_OUT = (b"+OK Logging out.\r\n",)
#: Status lines of replies that are made once and sent many times (these constants, the
#: answers shared by the sessions on a snapshot), as the history records them: decoded once.
_BASE_STATUS = {reply: reply[:-2].decode() for reply in (_OK_REPLY[0], _LOGGED_IN, _LOGGING_OUT[0])}
_CONSTANT_STATUS = dict(_BASE_STATUS)


#: RETR status lines by message size, made (and their text decoded) once.
_RETR_STATUS: dict[int, bytes] = {}


def _retr_status(size: int) -> bytes:
    if len(_RETR_STATUS) > 4096:
        _RETR_STATUS.clear()
    line = _RETR_STATUS[size] = b"+OK %d octets\r\n" % size
    _remember_status(line)
    return line


def _remember_status(status_line: bytes) -> None:
    if len(_CONSTANT_STATUS) > 4096:  # maildrops that change for ever: start again
        _CONSTANT_STATUS.clear()
        _CONSTANT_STATUS.update(_BASE_STATUS)
    _CONSTANT_STATUS[status_line] = status_line[:-2].decode("utf-8", "replace")


#: Makes a named tuple (a :class:`Send`) from a tuple of its fields, skipping the named
#: tuple's Python-level ``__new__``.
_new_tuple = tuple.__new__


_NONE_DELETED: AbstractSet[int] = frozenset()
_NO_ANSWERS: MutableMapping[str, tuple[bytes, ...]] = MappingProxyType({})  # type: ignore[assignment]


def _status_line(first: bytes | memoryview) -> str:
    """The status line of a reply, for the history (handlers put it in the first buffer)."""
    if type(first) is bytes:
        known = _CONSTANT_STATUS.get(first)  # most replies: no endswith() call
        if known is not None:
            return known
        if first.endswith(b"\r\n") and first.count(b"\n") == 1:
            return first[:-2].decode("utf-8", "replace")
    return bytes(first[:600]).split(b"\r\n", 1)[0].decode("utf-8", "replace")


def _status_of(actions: list[Action]) -> str:
    for action in actions:
        if isinstance(action, Send) and action.buffers:
            first = bytes(action.buffers[0][:600])
            return first.split(b"\n", 1)[0].rstrip(b"\r").decode("utf-8", "replace")
    return "(no reply: connection closed)"
