"""Checking the values of fault rules: one function per kind of value, one message each.

Both the Python API (the builders) and the dict form call these; a bad value raises
:class:`FaultConfigError` whose text names the parameter, the value and what is allowed.
"""

from __future__ import annotations

import re

from ..protocol import COMMAND_NAMES

#: The command names a rule can match (besides ``"*"``).
COMMANDS = COMMAND_NAMES
_MAX_STATUS = 512  # RFC 2449 s4: a response's first line is at most 512 octets with CRLF
# RFC 2449 s3: resp-level = 1*rchar; rchar = %x21-2E / %x30-5C / %x5E-7F
_RESP_LEVEL = r"[\x21-\x2E\x30-\x5C\x5E-\x7E]+"
_RESP_CODE = re.compile(rf"{_RESP_LEVEL}(?:/{_RESP_LEVEL})*")


class FaultConfigError(ValueError):
    """A fault rule (given as a dict, or through the Python API) is not valid."""


# --- checking arguments ----------------------------------------------------------------------
def _positive_int(name: str, value: object, *, low: int = 1) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value < low:
        raise FaultConfigError(f"{name} must be an integer of at least {low}, not {value!r}")
    return value


def _optional_int(name: str, value: object, *, low: int = 1) -> int | None:
    return None if value is None else _positive_int(name, value, low=low)


def _seconds(name: str, value: object) -> float:
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not value >= 0:
        raise FaultConfigError(f"{name} must be a number of seconds (0 or more), not {value!r}")
    return float(value)


def _probability(value: object) -> float | None:
    if value is None:
        return None
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 < value <= 1:
        raise FaultConfigError(f"probability must be a number above 0 and at most 1, not {value!r}")
    return float(value)


def _text(name: str, value: object) -> str:
    if not isinstance(value, str):
        raise FaultConfigError(f"{name} must be a string, not {value!r}")
    if any(c in value for c in "\r\n\0"):
        raise FaultConfigError(
            f"{name} must be one line (no CR, LF or NUL): {value!r}; "
            "to send any bytes use reply(data)"
        )
    return value


def _command_name(value: object) -> str:
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
    if value is None:
        return None
    if isinstance(value, str):
        return tuple(value.split())
    if isinstance(value, (list, tuple)) and all(isinstance(a, str) for a in value):
        return tuple(value)
    raise FaultConfigError(f"args must be a string such as '2' or a list of strings, not {value!r}")


def _user(value: object) -> str | None:
    if value is None or isinstance(value, str):
        return value
    raise FaultConfigError(f"user must be a user name (a string), not {value!r}")


def _delta(value: object) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or value == 0:
        raise FaultConfigError(f"delta must be a non-zero integer, not {value!r}")
    return value


def _status_line(text: str, code: str | None) -> bytes:
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
