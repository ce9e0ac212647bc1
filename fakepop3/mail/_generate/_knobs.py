"""The generator's knobs checked as a whole: :func:`check_knobs`.

The knobs themselves (name, type, default, check, help) are declared once in
:mod:`fakepop3._knobs`; their meaning is in ``generate_messages``' docstring.
``MessageGenerator.__init__`` calls :func:`check_knobs`, which runs each knob's own check
(the same function the options schema runs for the marker and TOML) and then what needs
the whole set.

Rules a maintainer must keep:

* A knob's own check lives in its declaration (``fakepop3._knobs.KNOBS``), never here:
  this module checks only what involves two knobs (``end`` after ``start``,
  ``max_size`` not below ``min_size``) and loads the locales.
* :func:`check_knobs` takes the knobs as keyword arguments with the defaults of
  :data:`~fakepop3._knobs.KNOBS`, as ``generate_messages``, ``generate_message`` and
  ``MessageGenerator`` do (a test compares the signatures), and returns them
  normalised.  Its one side effect is Faker's: a locale that Faker's files do not show
  is loaded, so that an unknown locale fails here with Faker's error.
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any, TypedDict, cast

from ..._knobs import (
    DEFAULT_END,
    DEFAULT_NON_ASCII_LOCALES,
    DEFAULT_START,
    KNOBS,
    MIN_SIZE_FLOOR,
)
from ._locale import faker_has_locale, locale_data

if TYPE_CHECKING:
    from ._hook import MessageHook

__all__ = [
    "DEFAULT_END",
    "DEFAULT_NON_ASCII_LOCALES",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
    "Knobs",
    "check_knobs",
    "knob_values",
    "to_epoch",
]


def knob_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """The knobs among ``values`` (a function's ``locals()``), by :data:`KNOBS`: how the
    generator's entry points pass on the knobs their signatures take, without listing them
    again."""
    return {knob.name: values[knob.name] for knob in KNOBS if knob.name in values}


def to_epoch(value: _dt.datetime | _dt.date | float) -> int:
    """Seconds since the epoch (UTC) of a datetime (naive means UTC), a date or a number."""
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp())
    if isinstance(value, _dt.date):
        return int(
            _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp()
        )
    return int(value)


class Knobs(TypedDict):
    """The knobs as :func:`check_knobs` returns them: checked and normalised."""

    seed: int
    locale: tuple[str, ...]
    """One or more Faker locales."""
    start: int
    """Epoch seconds (UTC)."""
    end: int
    """Epoch seconds (UTC), after ``start``."""
    min_size: int
    max_size: int
    html: float
    attachments: float
    threads: float
    non_ascii: float
    dot_lines: float
    broken: float
    non_ascii_locales: tuple[str, ...]
    """Never empty: ``("de_DE",)`` when none were given."""
    hook: MessageHook | None
    cache_size: int
    """Not checked: 0 or less keeps no message."""


def check_knobs(
    *,
    seed: int = 0,
    locale: str | Sequence[str] = "en_US",
    start: _dt.datetime | _dt.date | float = DEFAULT_START,
    end: _dt.datetime | _dt.date | float = DEFAULT_END,
    min_size: int = 2_000,
    max_size: int = 20_000,
    html: float = 0.5,
    attachments: float = 0.3,
    threads: float = 0.3,
    non_ascii: float = 0.2,
    dot_lines: float = 0.25,
    broken: float = 0.0,
    non_ascii_locales: Sequence[str] = DEFAULT_NON_ASCII_LOCALES,
    hook: MessageHook | None = None,
    cache_size: int = 256,
) -> Knobs:
    """Check the generator's knobs; return them normalised (an unknown name is a ``TypeError``).

    :raises ValueError: a knob's value is out of range (the message names the knob).
    :raises AttributeError: a locale Faker does not have (Faker's own error).
    """
    given = locals()
    knobs: dict[str, Any] = {knob.name: knob.check(given[knob.name], knob.name) for knob in KNOBS}
    first, last = to_epoch(knobs["start"]), to_epoch(knobs["end"])
    if last <= first:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    if knobs["max_size"] < knobs["min_size"]:
        raise ValueError(f"max_size ({max_size}) must not be below min_size ({min_size})")
    knobs["start"], knobs["end"] = first, last
    # Locales are loaded when a message first needs one; an unknown one fails now.
    for code in dict.fromkeys((*knobs["locale"], *knobs["non_ascii_locales"])):
        if not faker_has_locale(code):
            locale_data(code)
    return cast(Knobs, knobs)
