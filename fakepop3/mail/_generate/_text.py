"""Text: filler lines of an exact length, dates, and header values (encoded words, folding).

Rules a maintainer must keep:

* Draw order is part of the output: :meth:`Filler.block` and :meth:`Filler.line`
  draw a fixed sequence for their arguments; the header functions take their
  random numbers from the ``rolls`` the builder gives them, two per encoded
  phrase, never from elsewhere.  Never reorder, add or drop a draw.
* The filler's pool is made once at a fixed seed from en_US lorem words: it is
  part of the output.  Its lines are ASCII and never start with ``.``, so
  quoted-printable and 8bit leave them unchanged and padding is exact.
* Header values are ASCII; encoded words are at most 75 characters and lines
  at most 78 octets (RFC 2047, RFC 5322).
* Dates are formatted here, not by the platform: no C locale, no ``time`` module.
"""

from __future__ import annotations

import base64
import bisect
import datetime as _dt
import random
import re
from collections.abc import Iterator
from functools import lru_cache

from ._locale import locale_data

__all__ = [
    "CRLF",
    "Filler",
    "display_name",
    "filler",
    "format_date",
    "subject_value",
]

CRLF = "\r\n"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
# RFC 2047 "Q" encoding in a phrase (display names): only these stay literal.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 atext plus space: a display name made only of these needs no quotes.
_ATEXT_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")


# --- filler: ASCII lines of an exact length


class Filler:
    """ASCII lorem lines of an exact length (unchanged by QP and 8bit).

    A pool of lines is built once at a fixed seed; padding is a run of pool lines
    from a random start plus up to three lines of exactly the width needed.
    """

    POOL_LINES = 2048
    PER_WIDTH = 8

    def __init__(self) -> None:
        words = sorted(
            {w.lower() for w in locale_data("en_US").words if w.isalpha() and w.isascii()}
        )
        self.words = words
        self.by_len: dict[int, list[str]] = {}
        for w in words:
            self.by_len.setdefault(len(w), []).append(w)
        for n in range(1, 13):
            self.by_len.setdefault(n, ["x" * n])
        rng = random.Random(0)
        lines = [self._make_line(rng, 40 + int(rng.random() * 33)) for _ in range(self.POOL_LINES)]
        self.text = "".join(line + CRLF for line in lines)
        self.cum = [0]
        for line in lines:
            self.cum.append(self.cum[-1] + len(line) + 2)
        self.exact = [
            [self._make_line(rng, width) for _ in range(self.PER_WIDTH)] for width in range(75)
        ]

    def _make_line(self, rng: random.Random, width: int) -> str:
        """A line of exactly ``width`` characters (no line end)."""
        if width <= 0:
            return ""
        out: list[str] = []
        used = 0
        words = self.words
        while True:
            sep = 1 if out else 0
            gap = width - used - sep  # room for the next word
            if gap <= 12:
                if gap >= 1:
                    out.append(rng.choice(self.by_len[gap]))
                elif gap == 0:
                    out[-1] += "."
                break
            w = words[int(rng.random() * len(words))]
            if len(w) > gap:
                w = rng.choice(self.by_len[12])
            out.append(w)
            used += sep + len(w)
        text = " ".join(out)
        return text[0].upper() + text[1:]

    def line(self, rng: random.Random, width: int) -> str:
        """A line of exactly ``width`` (0-74) characters, from the pool."""
        return self.exact[width][int(rng.random() * self.PER_WIDTH)]

    def block(self, rng: random.Random, octets: int) -> str:
        """CRLF-ended lines totalling exactly ``octets`` (``octets`` must not be 1)."""
        if octets <= 0:
            return ""
        out: list[str] = []
        left = octets
        cum = self.cum
        n = len(cum) - 1
        while left > 176:
            i = int(rng.random() * n)
            j = bisect.bisect_right(cum, cum[i] + left - 100, i) - 1
            out.append(self.text[cum[i] : cum[j]])
            left -= cum[j] - cum[i]
        while left > 76:
            out.append(self.line(rng, 60) + CRLF)
            left -= 62
        out.append(self.line(rng, left - 2) + CRLF)
        return "".join(out)


_FILLER: Filler | None = None


def filler() -> Filler:
    global _FILLER
    if _FILLER is None:
        _FILLER = Filler()
    return _FILLER


# --- dates

_EPOCH = _dt.datetime(1970, 1, 1)


@lru_cache(maxsize=4096)
def _format_day(day: int) -> str:
    """``Mon, 05 Jan 2024`` for a day number since 1970-01-01."""
    d = _EPOCH + _dt.timedelta(days=day)
    return f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d}"


def format_date(epoch: int, tz_minutes: int) -> str:
    """RFC 5322 date-time, independent of the C locale and of the platform's time functions."""
    day, secs = divmod(epoch + 60 * tz_minutes, 86_400)  # the local wall clock
    hh, mm = divmod(abs(tz_minutes), 60)
    return (
        f"{_format_day(day)} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d} "
        f"{'+' if tz_minutes >= 0 else '-'}{hh:02d}{mm:02d}"
    )


# --- header values

#: Q-encoded form of each character, per (charset, in a phrase).
_Q_CACHE: dict[tuple[str, bool], dict[str, str]] = {}


def _q_char(ch: str, charset: str, phrase: bool) -> str:
    if ch == " ":
        return "_"
    return "".join(
        chr(b) if b in _Q_SAFE or (not phrase and 32 < b < 127 and b not in b"=?_") else f"={b:02X}"
        for b in ch.encode(charset)
    )


def _encoded_words(text: str, rolls: Iterator[float], *, phrase: bool) -> str:
    """RFC 2047 encoded words for ``text`` (each at most 75 characters), folded.

    ``rolls`` gives the two random numbers that pick the charset and B or Q.
    """
    legacy = next(rolls) < 0.3
    return _encode_words(text, legacy, next(rolls) < 0.5, phrase)


@lru_cache(maxsize=8192)
def _encode_words(text: str, legacy: bool, use_b: bool, phrase: bool) -> str:
    charset = "utf-8"
    if legacy:
        for cand in ("iso-8859-1", "iso-8859-2", "koi8-r", "iso-8859-7"):
            try:
                text.encode(cand)
            except UnicodeEncodeError:
                continue
            charset = cand
            break
    prefix = f"=?{charset}?{'b' if use_b else 'q'}?"
    room = 75 - len(prefix) - 2
    words: list[str] = []
    if use_b:
        # Greedy runs of whole characters of at most raw_room octets (a UTF-8
        # character never starts with a continuation byte 0b10xxxxxx).
        raw_room = room // 4 * 3
        data = text.encode(charset)
        utf8 = charset == "utf-8"
        pos, end_all = 0, len(data)
        while pos < end_all:
            end = min(pos + raw_room, end_all)
            while utf8 and end < end_all and data[end] & 0xC0 == 0x80:
                end -= 1
            words.append(base64.b64encode(data[pos:end]).decode("ascii"))
            pos = end
        return (CRLF + " ").join(prefix + w + "?=" for w in words)
    table = _Q_CACHE.get((charset, phrase))
    if table is None:
        table = _Q_CACHE.setdefault((charset, phrase), {})
    chunk: list[str] = []
    chunk_len = 0
    for ch in text:
        e = table.get(ch)
        if e is None:
            e = table[ch] = _q_char(ch, charset, phrase)
        if chunk_len + len(e) > room and chunk:
            words.append("".join(chunk))
            chunk, chunk_len = [], 0
        chunk.append(e)
        chunk_len += len(e)
    if chunk:
        words.append("".join(chunk))
    return (CRLF + " ").join(prefix + w + "?=" for w in words)


def _fold_plain(text: str, first: int) -> str:
    """Fold an ASCII unstructured value at spaces so lines stay within 78 octets."""
    words = text.split(" ")
    lines: list[str] = []
    cur = ""
    limit = 78 - first
    for w in words:
        if cur and len(cur) + 1 + len(w) > limit:
            lines.append(cur)
            cur = w
            limit = 77
        else:
            cur = f"{cur} {w}" if cur else w
    lines.append(cur)
    return (CRLF + " ").join(lines)


def display_name(name: str, rolls: Iterator[float]) -> str:
    if not name:
        return ""
    if not name.isascii():
        return _encoded_words(name, rolls, phrase=True)
    if _ATEXT_RE.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def subject_value(subject: str, rolls: Iterator[float]) -> str:
    if subject.isascii():
        return _fold_plain(subject, len("Subject: "))
    # Keep an ASCII reply prefix readable, as mail clients do.
    head = ""
    for pre in ("Re: ", "Fwd: "):
        while subject.startswith(pre):
            head += pre
            subject = subject[len(pre) :]
    return head + _encoded_words(subject, rolls, phrase=False)
