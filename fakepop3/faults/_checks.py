"""Checking the values of fault rules: one function per kind of value, one message each.

Rules a maintainer must keep:

- Every value a user gives a rule (through the Python API or the dict form, which goes
  through the Python API) is checked here and nowhere else; a builder calls these and uses
  what they return (a checked, normalised value).
- A bad value raises :class:`FaultConfigError` whose one-line text names the parameter,
  repeats the value and says what is allowed.  The tests pin these texts: change one only on
  purpose.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import TypeGuard

from ..protocol import COMMAND_NAMES

#: The command names a rule can match (besides ``"*"``).
COMMANDS = COMMAND_NAMES
_MAX_STATUS = 512  # RFC 2449 s4: a response's first line is at most 512 octets with CRLF
# RFC 2449 s3: resp-level = 1*rchar; rchar = %x21-2E / %x30-5C / %x5E-7F
_RESP_LEVEL = r"[\x21-\x2E\x30-\x5C\x5E-\x7E]+"
_RESP_CODE = re.compile(rf"{_RESP_LEVEL}(?:/{_RESP_LEVEL})*")


class FaultConfigError(ValueError):
    """A fault rule (given as a dict, or through the Python API) is not valid."""


def _is_int(value: object) -> TypeGuard[int]:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> TypeGuard[int | float]:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --- numbers ---------------------------------------------------------------------------------
def _positive_int(name: str, value: object, *, low: int = 1) -> int:
    """An integer of at least ``low`` (a message number, an octet count, ``nth``...)."""
    if not _is_int(value) or value < low:
        raise FaultConfigError(f"{name} must be an integer of at least {low}, not {value!r}")
    return value


def _optional_int(name: str, value: object) -> int | None:
    """None, or an integer of at least 1 (``nth``, ``times``)."""
    return None if value is None else _positive_int(name, value)


def _delta(value: object) -> int:
    """How far an octet count is off: any integer but 0."""
    if not _is_int(value) or value == 0:
        raise FaultConfigError(f"delta must be a non-zero integer, not {value!r}")
    return value


def _seconds(name: str, value: object) -> float:
    """A duration: a number of seconds, 0 or more."""
    if not _is_number(value) or not value >= 0:
        raise FaultConfigError(f"{name} must be a number of seconds (0 or more), not {value!r}")
    return float(value)


def _jitter(value: object) -> float:
    """A delay's jitter: a number, 0 or more (seconds for uniform, sigma for lognormal)."""
    if not _is_number(value) or not 0 <= value < float("inf"):
        raise FaultConfigError(f"jitter must be a finite number, 0 or more, not {value!r}")
    return float(value)


def _rate(name: str, value: object) -> float:
    """A rate above 0 (``bytes_per_second``)."""
    if not _is_number(value) or not value > 0:
        raise FaultConfigError(f"{name} must be a positive number, not {value!r}")
    return float(value)


def _probability(value: object) -> float | None:
    """None, or a chance above 0 and at most 1."""
    if value is None:
        return None
    if not _is_number(value) or not 0 < value <= 1:
        raise FaultConfigError(f"probability must be a number above 0 and at most 1, not {value!r}")
    return float(value)


# --- names and text --------------------------------------------------------------------------
def _one_of(what: str, value: object, allowed: Sequence[str]) -> str:
    """One of the names ``allowed`` (an action, a malformed kind)."""
    if not isinstance(value, str) or value not in allowed:
        raise FaultConfigError(f"unknown {what} {value!r}; use one of {', '.join(allowed)}")
    return value


def _command_name(value: object) -> str:
    """A POP3 command the core knows (any case), upper-cased, or ``"*"``."""
    if not isinstance(value, str):
        raise FaultConfigError(f"command must be a POP3 command name or '*', not {value!r}")
    name = value.strip().upper()
    if name != "*" and name not in COMMANDS:
        raise FaultConfigError(
            f"unknown POP3 command {value!r}: a rule for it would never fire; "
            f"use one of {', '.join(sorted(COMMANDS))} or '*' for any command"
        )
    return name


def _args(value: object) -> tuple[str, ...] | None:
    """None, or a command's arguments: a string split on spaces, or a list of strings."""
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise FaultConfigError(f"args must be a string such as '2' or a list of strings, not {value!r}")


def _user(value: object) -> str | None:
    """None, or a user name."""
    if value is None or isinstance(value, str):
        return value
    raise FaultConfigError(f"user must be a user name (a string), not {value!r}")


def _text(name: str, value: object) -> str:
    """One line of text (no CR, LF or NUL)."""
    if not isinstance(value, str):
        raise FaultConfigError(f"{name} must be a string, not {value!r}")
    if any(c in value for c in "\r\n\0"):
        raise FaultConfigError(
            f"{name} must be one line (no CR, LF or NUL): {value!r}; "
            "to send any bytes use reply(data)"
        )
    return value


def _state_name(name: str, value: object) -> str | None:
    """None, or the name of a server state (a non-empty string)."""
    if value is None or (isinstance(value, str) and value and value.strip() == value):
        return value
    raise FaultConfigError(
        f"{name} must be a state name (a non-empty string) or None, not {value!r}"
    )


def _capability(value: object) -> str:
    """A CAPA capability name (``STLS``, ``UIDL``, ``SASL``...), upper-cased."""
    if not isinstance(value, str) or not re.fullmatch(r"[A-Za-z0-9-]+", value):
        raise FaultConfigError(
            f"capability must be a CAPA capability name such as 'STLS', not {value!r}"
        )
    return value.upper()


def _data(value: object) -> bytes:
    """Any bytes to send (a str is UTF-8 encoded)."""
    if isinstance(value, str):
        return value.encode("utf-8")
    if not isinstance(value, (bytes, bytearray)):
        raise FaultConfigError(f"data must be bytes or str, not {value!r}")
    return bytes(value)


def _status_line(text: str, code: str | None) -> bytes:
    """The ``-ERR [code] text`` line, CRLF included, within RFC 2449's 512 octets."""
    text = _text("text", text)
    if code is not None:
        if not isinstance(code, str):
            raise FaultConfigError(f"code must be a string such as 'SYS/TEMP', not {code!r}")
        bare = code[1:-1] if code.startswith("[") and code.endswith("]") else code
        if not _RESP_CODE.fullmatch(bare):
            raise FaultConfigError(
                f"code {code!r} is not an RFC 2449 response code: use printable ASCII levels "
                "separated by '/', such as 'SYS/TEMP', 'IN-USE', 'LOGIN-DELAY' or 'AUTH'"
            )
        text = f"[{bare}] {text}"
    line = f"-ERR {text}\r\n".encode()
    if len(line) > _MAX_STATUS:
        raise FaultConfigError(
            f"the -ERR line would be {len(line)} octets, over the 512 RFC 2449 allows; "
            "for an overlong line on purpose use malformed('long-line')"
        )
    return line
