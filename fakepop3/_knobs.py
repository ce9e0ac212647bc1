"""The mail generator's knobs, declared once: name, type, default, check, help.

``generate_messages``, ``generate_message``, ``MessageGenerator`` and
``fakepop3.mail._generate.check_knobs`` take these keywords with these defaults (a test
compares their signatures with :data:`KNOBS`); the options schema
(:mod:`fakepop3.options`) makes its generator options from them and adds only where
each can be given (the marker's ``generate=``, TOML's ``[generate_options]``, the CLI).

Rules a maintainer must keep:

* A knob is added here, and only here, then to the generator's signatures (the test
  says which one is missing it).
* Each knob's check is one function of :mod:`fakepop3._validate` (or, for a check only
  a knob has, one here), run with the knob's spelling on the surface its value came
  from, so a bad value reads the same everywhere.  Checks that involve two knobs
  (``end`` after ``start``, ``max_size`` not below ``min_size``) and the loading of a
  Faker locale are the generator's own (``check_knobs``): they need the whole set.
* This module imports nothing but :mod:`fakepop3._validate`: the options schema and the
  pytest plugin read it without loading Faker or the mail package.
* Defaults never depend on the current time or the machine (a fixed date range), so a
  seed alone fixes the output; changing a default changes the generated mail of every
  call that does not give the knob (the pinned digests catch it).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from . import _validate as v
from ._validate import OptionError

__all__ = [
    "DEFAULT_END",
    "DEFAULT_NON_ASCII_LOCALES",
    "DEFAULT_START",
    "KNOBS",
    "MIN_SIZE_FLOOR",
    "Knob",
]

#: Default start of the date range (inclusive), a fixed instant so output never
#: depends on the current time.
DEFAULT_START = _dt.datetime(2021, 1, 1, tzinfo=_dt.timezone.utc)
#: Default end of the date range (exclusive).
DEFAULT_END = _dt.datetime(2025, 1, 1, tzinfo=_dt.timezone.utc)
#: Smallest allowed ``min_size``: the generator can always shrink a message to
#: fit a target of at least this many octets.
MIN_SIZE_FLOOR = 1024

#: Locales used for messages picked as non-ASCII when the chosen locale is not
#: already one of them.
DEFAULT_NON_ASCII_LOCALES: tuple[str, ...] = (
    "de_DE",
    "fr_FR",
    "es_ES",
    "pl_PL",
    "cs_CZ",
    "ru_RU",
    "el_GR",
    "ja_JP",
    "zh_CN",
)


@dataclass(frozen=True)
class Knob:
    """One knob of the generator."""

    name: str
    type: str
    default: Any
    check: Callable[[Any, str], Any]
    help: str


def _min_size(value: Any, name: str) -> int:
    """A number of octets, at least :data:`MIN_SIZE_FLOOR` (a float is cut to a whole one)."""
    if (
        isinstance(value, bool)
        or not isinstance(value, (int, float))
        or not value >= MIN_SIZE_FLOOR
    ):
        raise OptionError(f"{name} must be at least {MIN_SIZE_FLOOR} octets, got {value!r}")
    return int(value)


def _max_size(value: Any, name: str) -> int:
    """A number of octets (a float is cut to a whole one); ``check_knobs`` compares it with
    ``min_size``."""
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not value >= 1:
        raise OptionError(f"{name} must be a number of octets, at least 1, not {value!r}")
    return int(value)


def _locales(value: Any, name: str) -> tuple[str, ...]:
    """One Faker locale or several, as a tuple."""
    if not isinstance(value, str) and isinstance(value, (list, tuple)) and not value:
        raise OptionError(f"{name}: give at least one Faker locale")
    locales = v.locales(value, name)
    return (locales,) if isinstance(locales, str) else locales


def _fallback_locales(value: Any, name: str) -> tuple[str, ...]:
    """Faker locales for the non-ASCII messages; none given means ``("de_DE",)``."""
    if not isinstance(value, str) and not value:
        return ("de_DE",)
    return _locales(value, name)


def _hook(value: Any, name: str) -> Any:
    """A callable, or None."""
    if value is not None and not callable(value):
        raise OptionError(f"{name} must be callable or None, not {value!r}")
    return value


#: The knobs, in the order of ``generate_messages``' keywords.
KNOBS: tuple[Knob, ...] = (
    Knob("seed", "int", 0, v.whole, "seed of the generated mail (same seed, same mail)"),
    Knob("locale", "str | Sequence[str]", "en_US", _locales,
         "Faker locale(s) of the generated mail, comma-separated"),
    Knob("start", "datetime | date | float", DEFAULT_START, v.instant,
         "start of the date range"),
    Knob("end", "datetime | date | float", DEFAULT_END, v.instant,
         "end of the date range (exclusive)"),
    Knob("min_size", "int", 2_000, _min_size, "smallest message, in octets"),
    Knob("max_size", "int", 20_000, _max_size, "largest message, in octets"),
    Knob("html", "float", 0.5, v.share, "share of messages with an HTML part"),
    Knob("attachments", "float", 0.3, v.share, "share with an attachment"),
    Knob("threads", "float", 0.3, v.share, "share that reply to an earlier message"),
    Knob("non_ascii", "float", 0.2, v.share, "share with non-ASCII headers and text"),
    Knob("dot_lines", "float", 0.25, v.share, "share with lines that start with a dot"),
    Knob("broken", "float", 0.0, v.share, "share replaced by deliberately malformed mail "
         "(fakepop3.mail.BROKEN_KINDS, one picked per message)"),
    Knob("non_ascii_locales", "Sequence[str]", DEFAULT_NON_ASCII_LOCALES, _fallback_locales,
         "locales of the non-ASCII messages"),
    Knob("hook", "Callable | None", None, _hook, "called to edit each message"),
    Knob("cache_size", "int", 256, v.whole, "built messages kept in memory (0 or less: none)"),
)  # fmt: skip
