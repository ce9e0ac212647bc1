"""The generator's knobs: their defaults, and :func:`check_knobs`, the one place they are checked.

The knobs are ``seed, locale, start, end, min_size, max_size, html, attachments,
threads, non_ascii, dot_lines, non_ascii_locales, hook, cache_size`` (their
meaning: ``generate_messages``' docstring).  ``MessageGenerator.__init__`` calls
:func:`check_knobs`; so may any surface that takes knobs (the options schema,
the pytest marker, TOML, the CLI) to give the same one-line error for the same
bad value.

Rules a maintainer must keep:

* Every knob is checked here and nowhere else, and the messages stay as they
  are: users and tests match on them.
* :func:`check_knobs` takes the knobs as keyword arguments with the same
  defaults as ``generate_messages``, ``generate_message`` and
  ``MessageGenerator`` (a test compares the four signatures), and returns them
  normalised.  Its one side effect is Faker's: a locale that Faker's files do
  not show is loaded, so that an unknown locale fails here with Faker's error.
* Defaults never depend on the current time or the machine (a fixed date range),
  so a seed alone fixes the output; changing a default changes the output of
  every call that does not give the knob (the pinned digests catch it).
"""

from __future__ import annotations

import datetime as _dt
from collections.abc import Sequence
from typing import TYPE_CHECKING, TypedDict

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
    "to_epoch",
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


#: The shares: each the probability that a message has the feature.
_SHARES = ("html", "attachments", "threads", "non_ascii", "dot_lines")


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
    non_ascii_locales: Sequence[str] = DEFAULT_NON_ASCII_LOCALES,
    hook: MessageHook | None = None,
    cache_size: int = 256,
) -> Knobs:
    """Check the generator's knobs; return them normalised (an unknown name is a ``TypeError``).

    :raises ValueError: a knob's value is out of range (the message names the knob).
    :raises AttributeError: a locale Faker does not have (Faker's own error).
    """
    seed = int(seed)
    locales = (locale,) if isinstance(locale, str) else tuple(locale)
    if not locales:
        raise ValueError("locale: give at least one Faker locale")
    fallback = tuple(non_ascii_locales) or ("de_DE",)
    first, last = to_epoch(start), to_epoch(end)
    if last <= first:
        raise ValueError(f"end ({end!r}) must be after start ({start!r})")
    if min_size < MIN_SIZE_FLOOR:
        raise ValueError(f"min_size must be at least {MIN_SIZE_FLOOR} octets, got {min_size}")
    if max_size < min_size:
        raise ValueError(f"max_size ({max_size}) must not be below min_size ({min_size})")
    shares = dict(zip(_SHARES, (html, attachments, threads, non_ascii, dot_lines), strict=True))
    for name, share in shares.items():
        if not 0.0 <= share <= 1.0:
            raise ValueError(f"{name} is a share between 0 and 1, got {share!r}")
    # Locales are loaded when a message first needs one; an unknown one fails now.
    for code in dict.fromkeys((*locales, *fallback)):
        if not faker_has_locale(code):
            locale_data(code)
    return Knobs(
        seed=seed,
        locale=locales,
        start=first,
        end=last,
        min_size=int(min_size),
        max_size=int(max_size),
        html=float(html),
        attachments=float(attachments),
        threads=float(threads),
        non_ascii=float(non_ascii),
        dot_lines=float(dot_lines),
        non_ascii_locales=fallback,
        hook=hook,
        cache_size=cache_size,
    )
