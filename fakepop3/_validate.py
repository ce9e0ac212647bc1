"""The checks of option values, written once for every surface.

Each check is a function ``check(value, name) -> normalised value``.  ``name`` is
how the option is spelled where the value came from (``port`` in Python,
``--port`` on the command line, ``config FILE: port`` in a TOML file,
``FAKEPOP3_PORT`` in the environment), so the same bad value gives the same
one-line message on every surface, modulo that spelling.

Rules a maintainer must keep:

* A check raises :class:`OptionError` only, with one line of the form
  ``"{name} must be <what is allowed>, not {value!r}"`` that says how to fix it.
* A check never reads a file, the network or the environment: it is pure, and
  cheap enough to run on every ``POP3Server(...)``.
* Text surfaces (CLI, environment) turn text into a value with a ``parse_*``
  function first; when the text does not parse, the check is given the text
  itself, so that the message is the check's own.
* This module imports nothing from fakepop3 (it is the bottom layer): a check
  against a list of names (capabilities, SASL mechanisms) is made by
  :func:`names_in` where the list lives.
"""

from __future__ import annotations

import datetime as _dt
import functools
import math
from collections.abc import Callable, Collection, Iterable, Mapping
from typing import Any, TypeVar

__all__ = [
    "OptionError",
    "boolean",
    "count",
    "duration",
    "expire",
    "host",
    "instant",
    "locales",
    "names_in",
    "non_negative",
    "one_line",
    "optional",
    "persona",
    "persona_names",
    "port",
    "positive",
    "share",
    "token",
    "user_name",
    "whole",
]

T = TypeVar("T")


class OptionError(ValueError):
    """A bad option value; its message is one line meant for the user."""


def _has_bad_chars(text: str) -> bool:
    return "\r" in text or "\n" in text or "\0" in text


def _is_int(value: object) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: object) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def optional(check: Callable[[Any, str], T]) -> Callable[[Any, str], T | None]:
    """``check``, letting ``None`` through (the option is off)."""

    def check_or_none(value: Any, name: str) -> T | None:
        return None if value is None else check(value, name)

    check_or_none.__name__ = f"optional_{check.__name__}"
    check_or_none.__doc__ = f"None, or {check.__doc__}"
    return check_or_none


def port(value: Any, name: str) -> int:
    """An integer from 0 to 65535 (0 picks a free port)."""
    if not _is_int(value) or not 0 <= value <= 65535:
        raise OptionError(
            f"{name} must be an integer from 0 to 65535 (0 picks a free port), not {value!r}"
        )
    return int(value)


def count(minimum: int) -> Callable[[Any, str], int]:
    """A check for a whole number of at least ``minimum`` (``True`` is not a number)."""

    def check(value: Any, name: str) -> int:
        if not _is_int(value) or value < minimum:
            raise OptionError(f"{name} must be at least {minimum} (a whole number), not {value!r}")
        return int(value)

    check.__name__ = "non_negative" if minimum == 0 else f"at_least_{minimum}"
    check.__doc__ = f"A whole number, at least {minimum}."
    return check


non_negative = count(0)
positive = count(1)


def whole(value: Any, name: str) -> int:
    """A whole number (a seed)."""
    if not _is_int(value):
        raise OptionError(f"{name} must be a whole number, not {value!r}")
    return int(value)


def duration(value: Any, name: str) -> float:
    """A positive, finite number of seconds."""
    if not _is_number(value) or not math.isfinite(value) or value <= 0:
        raise OptionError(f"{name} must be a positive number of seconds, not {value!r}")
    return value  # type: ignore[no-any-return]


def boolean(value: Any, name: str) -> bool:
    """True or false."""
    if not isinstance(value, bool):
        raise OptionError(f"{name} must be true or false, not {value!r}")
    return value


def host(value: Any, name: str) -> str:
    """A host name or address, without CR, LF or NUL (it goes into the greeting)."""
    if not isinstance(value, str) or _has_bad_chars(value):
        raise OptionError(f"{name} must be a host name without CR, LF or NUL, not {value!r}")
    return value


def one_line(value: Any, name: str) -> str:
    """Text for one reply line: non-empty, at most 200 characters, no CR, LF or NUL."""
    if not isinstance(value, str) or not value.strip() or len(value) > 200 or _has_bad_chars(value):
        raise OptionError(
            f"{name} must be one line of text (1 to 200 characters, no CR, LF or NUL), "
            f"not {value!r}"
        )
    return value


def token(value: Any, name: str) -> str:
    """A secret for an ``Authorization: Bearer`` header: printable ASCII, no spaces."""
    if not isinstance(value, str) or not value or not all("!" <= c <= "~" for c in value):
        shown = f"{len(value)} characters" if isinstance(value, str) else type(value).__name__
        raise OptionError(  # the value is a secret: not shown
            f"{name} must be a token of printable ASCII characters without spaces "
            f"(got {shown}, with a space or another character not allowed)"
        )
    return value


def is_loopback(host: str) -> bool:
    """Is ``host`` an address of this machine only (``localhost``, 127.0.0.0/8, ``::1``)?
    Anything else (``0.0.0.0``, ``""``, a name) may be reachable from other machines."""
    import ipaddress

    try:
        return host == "localhost" or ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


def user_name(value: Any, name: str) -> str:
    """A non-empty user name with no spaces at its ends and no CR, LF or NUL."""
    if not isinstance(value, str) or not value or value != value.strip() or _has_bad_chars(value):
        raise OptionError(
            f"{name} must be a user name with no spaces at its ends and no CR, LF or NUL, "
            f"not {value!r}"
        )
    return value


def share(value: Any, name: str) -> float:
    """A share between 0 and 1 (the generator's ``html=`` and the like)."""
    if not _is_number(value) or not 0.0 <= value <= 1.0:
        raise OptionError(f"{name} is a share between 0 and 1, got {value!r}")
    return float(value)


def expire(value: Any, name: str) -> int | str:
    """A number of days (0 or more), or ``"NEVER"``."""
    if isinstance(value, str) and value.upper() == "NEVER":
        return value
    if not _is_int(value) or value < 0:
        raise OptionError(
            f"{name} must be a number of days or 'NEVER' (days: 0 or more), not {value!r}"
        )
    return int(value)


def _names(value: Any, name: str, what: str) -> list[str]:
    if isinstance(value, str):
        value = [part.strip() for part in value.split(",") if part.strip()]
    if not isinstance(value, Iterable) or isinstance(value, Mapping):
        raise OptionError(f"{name} must be a list of {what}, not {value!r}")
    items = list(value)
    if not all(isinstance(item, str) for item in items):
        raise OptionError(f"{name} must be a list of {what}, not {value!r}")
    return items


def locales(value: Any, name: str) -> str | tuple[str, ...]:
    """A Faker locale, or several (a list, or comma-separated text); one is a str."""
    items = _names(value, name, "Faker locales")
    if not items or not all(items):
        raise OptionError(f"{name} must be at least one Faker locale, e.g. en_US, not {value!r}")
    return items[0] if len(items) == 1 else tuple(items)


def names_in(
    known: Collection[str], what: str, unknown: str, *, sort_known: bool = False
) -> Callable[[Any, str], tuple[str, ...]]:
    """A check for a list of names out of ``known`` (any case; comma-separated text too).

    ``what`` names the list (``"capability names"``), ``unknown`` one bad entry
    (``"capability to disable"``): ``unknown capability to disable: X; known: ...``.
    """
    shown = ", ".join(sorted(known) if sort_known else known)

    def check(value: Any, name: str) -> tuple[str, ...]:
        # The usual values, on every server (nothing switched off; every mechanism): no look.
        if value is known or (not value and isinstance(value, (tuple, frozenset))):
            return tuple(value)
        items = [item.upper() for item in _names(value, name, what)]
        bad = [item for item in items if item not in known]
        if bad:
            listed = sorted(set(bad)) if sort_known else bad
            raise OptionError(f"unknown {unknown}: {', '.join(listed)}; known: {shown}")
        return tuple(items)

    check.__name__ = what.replace(" ", "_")
    check.__doc__ = f"A list of {what}, e.g. {next(iter(sorted(known)), '')!r}."
    return check


def instant(value: Any, name: str) -> Any:
    """A datetime, a date, or epoch seconds (finite)."""
    if isinstance(value, (_dt.datetime, _dt.date)):
        return value
    if _is_number(value) and math.isfinite(value):
        return value
    raise OptionError(f"{name} must be a datetime, a date or epoch seconds, not {value!r}")


def parse_int(raw: str) -> int | str:
    """``"12"`` -> 12; anything else stays text (and the check refuses it)."""
    try:
        return int(raw.strip(), 10)
    except ValueError:
        return raw


def parse_number(raw: str) -> float | str:
    """``"1.5"`` -> 1.5, ``"2"`` -> 2; anything else stays text."""
    as_int = parse_int(raw)
    if isinstance(as_int, int):
        return as_int
    try:
        return float(raw)
    except ValueError:
        return raw


def parse_bool(raw: str) -> bool | str:
    """``1/true/yes/on`` -> True, ``0/false/no/off`` -> False (environment variables)."""
    low = raw.strip().lower()
    if low in ("1", "true", "yes", "on"):
        return True
    if low in ("0", "false", "no", "off"):
        return False
    return raw


@functools.cache
def persona_names() -> tuple[str, ...]:
    """The personas shipped in ``fakepop3/personas/`` (their TOML files' names), sorted.

    Package data, listed without importing the package (this module imports nothing from
    fakepop3).
    """
    from importlib.resources import files

    folder = files("fakepop3") / "personas"
    return tuple(sorted(p.name[:-5] for p in folder.iterdir() if p.name.endswith(".toml")))


def persona(value: Any, name: str) -> str:
    """The name of a shipped persona (``gmail``, ``dovecot`` ...)."""
    known = persona_names()
    if not isinstance(value, str) or value not in known:
        import difflib

        close = difflib.get_close_matches(str(value), known, n=1)
        hint = f" (did you mean {close[0]!r}?)" if close else ""
        raise OptionError(
            f"{name} must be the name of a shipped persona, not {value!r}{hint}; known: "
            f"{', '.join(known)} (or give your own file with persona_file)"
        )
    return value
