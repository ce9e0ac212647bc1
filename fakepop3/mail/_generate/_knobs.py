"""The generator's knobs: their defaults and the conversions they need.

Rules a maintainer must keep:

* Defaults never depend on the current time or the machine (a fixed date range),
  so a seed alone fixes the output.
* A default here is part of the output of every call that does not give the
  knob: changing one changes generated mail (the pinned digests catch it).
"""

from __future__ import annotations

import datetime as _dt

__all__ = [
    "DEFAULT_END",
    "DEFAULT_NON_ASCII_LOCALES",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
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
