"""Faker-driven generator of realistic RFC 5322 messages.

The messages look like real mail of the kind that breaks parsers: display names
and subjects in many scripts (RFC 2047 encoded words), replies threaded with
``In-Reply-To``/``References``, ``multipart/alternative`` with HTML,
``multipart/related`` inline images, attachments (text, CSV, JSON, calendar,
PDF-like, PNG, JPEG, binary) with real MIME types and file names (some RFC 2231
encoded), legacy charsets (ISO-8859-x, windows-125x, KOI8-R, ISO-2022-JP,
Shift_JIS, GB2312...), the transfer encodings ``7bit``, ``8bit``,
``quoted-printable`` and ``base64``, and body lines that start with ``.`` (so a
POP3 server's byte-stuffing is exercised).

Determinism
    Message *k* is a pure function of the knobs, the seed and *k*: it never
    depends on the current time, on hash randomisation, on how many messages were
    asked for or in which order. There are two streams per message: its size,
    and everything else (its plan -- parent, date, locale, sender, subject,
    Message-ID -- then its content). Each has a 64-bit key, a BLAKE2 digest of
    ``(seed, purpose)`` made once per generator; message *k*'s stream is seeded
    with the SplitMix64 output for ``key + (k + 1) * golden`` (integer
    arithmetic only, so :meth:`GeneratedMail.size` costs well under a
    microsecond). Floating point is used only for IEEE-exact operations (no
    ``log``/``exp``), so output is byte-identical on every machine for a given
    fakepop3, Faker and Python minor version.

Exact sizes without generating
    Every message is padded to an exact size drawn from ``[min_size, max_size]``
    (a cheap function of ``(seed, k)``), so :meth:`GeneratedMail.size` and
    :meth:`GeneratedMail.total_size` answer ``STAT`` for a 100,000-message
    mailbox without building a single message (unless a ``hook`` is given, since
    a hook may change the bytes). :meth:`GeneratedMail.sizes` computes all of
    them in one pass. Faker is not even imported until a message, a subject or a
    Message-ID is needed, so a first ``STAT`` stays cheap in a fresh process.

Speed
    Bytes are assembled directly from templates (no :class:`email.message.EmailMessage`)
    and rendered into one list of chunks joined once. Each locale's Faker data
    (person, internet, lorem and company providers only) is loaded when a
    message first needs it and kept for the process, with pools made from it at
    a fixed seed: 1,024 lorem sentences and 512 people (display name and
    address: a mailbox's regular correspondents). Messages draw from those pools
    with their own :class:`random.Random`, never through a shared Faker, so
    generators in different threads do not disturb each other; only a hook's
    ``ctx.faker`` is a (full, shared, locked) Faker. :class:`GeneratedMail`
    builds a message only when it is indexed.

Every message uses CRLF line ends, ends with CRLF and parses with
``email.parser.BytesParser(policy=email.policy.default)`` without defects.
"""

from __future__ import annotations

import base64
import binascii
import bisect
import datetime as _dt
import hashlib
import html as _html
import json
import random
import re
import struct
import threading
import zlib
from collections import OrderedDict
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from functools import lru_cache
from importlib.util import find_spec
from itertools import cycle
from pathlib import Path
from typing import TYPE_CHECKING, Any, NamedTuple, overload

if TYPE_CHECKING:  # Faker is imported on first use: a cold STAT does not need it
    from faker import Faker

__all__ = [
    "DEFAULT_END",
    "DEFAULT_START",
    "MIN_SIZE_FLOOR",
    "GeneratedMail",
    "HookContext",
    "MessageGenerator",
    "MessageHook",
    "generate_message",
    "generate_messages",
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

CRLF = "\r\n"
_DAYS = ("Mon", "Tue", "Wed", "Thu", "Fri", "Sat", "Sun")
_MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_TZ_MINUTES = (0, 0, 60, 120, -300, -240, -420, 330, 540, 480, 600, -180, 180, 345, -210)
_GREETINGS = ("Hi,", "Hello,", "Hi all,", "Dear team,", "Good morning,", "Hi there,", "Hey,")
#: Sign-offs in two spellings one octet apart: how a 1-octet gap is closed.
_SIGNOFFS = (
    ("Thanks", "Thanks!"),
    ("Cheers", "Cheers!"),
    ("Best", "Best,"),
    ("Regards", "Regards,"),
    ("Kind regards", "Kind regards,"),
)
_DOT_LINES = (
    ".",
    "..",
    "...",
    ". .",
    ".hidden files are skipped by default",
    "...and that was the whole story.",
    ".NET 8 is fine for the client.",
    ".\t(a dot and a tab)",
)
_MAILERS = (
    "Mozilla Thunderbird 115.6.0",
    "Microsoft Outlook 16.0",
    "Apple Mail (2.3731.700.6)",
    "Roundcube Webmail/1.6.5",
    "K-9 Mail for Android",
    "Evolution 3.50.2",
    "mutt/2.2.12",
)
_MSGID_HOSTS = (
    "mail.gmail.com",
    "mx.example.net",
    "smtp.example.org",
    "outlook.example.com",
    "mailer.example.co.uk",
    "localhost.localdomain",
)
#: (charset, is stateful 7-bit) candidates for non-ASCII text, tried in this order.
_LEGACY_CHARSETS = (
    "iso-8859-1",
    "iso-8859-15",
    "windows-1252",
    "iso-8859-2",
    "windows-1250",
    "iso-8859-7",
    "koi8-r",
    "windows-1251",
    "iso-2022-jp",
    "shift_jis",
    "euc-jp",
    "gb2312",
    "big5",
)
_SEVEN_BIT_CHARSETS = frozenset({"iso-2022-jp"})
#: At most this many names in a message's headers (From, 1-2 To, 0-3 Cc, Reply-To),
#: plus the subject: each may take two random choices when RFC 2047 encoded.
_MAX_NAMES = 9
# RFC 2047 "Q" encoding in a phrase (display names): only these stay literal.
_Q_SAFE = frozenset(b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789!*+-/")
# RFC 5322 atext plus space: a display name made only of these needs no quotes.
_ATEXT_RE = re.compile(r"[A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+(?: [A-Za-z0-9!#$%&'*+/=?^_`{|}~-]+)*")
_TOKEN_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
_LABEL_RE = re.compile(r"[^a-z0-9]+")
_WRAP_RE = re.compile(r"(.{1,72})(?: |$)")

MessageHook = Callable[["HookContext", bytes], "bytes | str | None"]
"""A hook ``hook(ctx, message) -> bytes | str | None``.

Called with the finished message; return replacement bytes (or ``str``), or
``None`` to keep the message. Use ``ctx.random`` and ``ctx.faker`` (both seeded
for this message) for anything random, so the output stays deterministic.
"""


@dataclass(frozen=True)
class HookContext:
    """What a :data:`MessageHook` gets besides the message bytes."""

    index: int
    """Position *k* of the message in the mailbox (0-based)."""
    seed: int
    """The mailbox seed."""
    message_id: str
    """The ``Message-ID`` of the generated message, with angle brackets."""
    parent: int | None
    """Index of the message this one replies to, or ``None``."""
    random: random.Random
    """A random generator seeded for this message only."""
    faker: Faker
    """A Faker instance seeded for this message only (shared; do not keep it)."""


_MASK64 = (1 << 64) - 1
_GOLDEN = 0x9E3779B97F4A7C15  # SplitMix64's increment
_MIX1 = 0xBF58476D1CE4E5B9
_MIX2 = 0x94D049BB133111EB


def _stream_key(seed: int, purpose: str) -> int:
    """The 64-bit key of one purpose's streams (any int seed), stable across machines."""
    digest = hashlib.blake2b(f"{seed}:{purpose}".encode(), digest_size=8).digest()
    return int.from_bytes(digest, "big")


def _derive(key: int, index: int) -> int:
    """A 64-bit seed for message ``index`` of the stream ``key`` (SplitMix64)."""
    z = (key + (index + 1) * _GOLDEN) & _MASK64
    z = ((z ^ (z >> 30)) * _MIX1) & _MASK64
    z = ((z ^ (z >> 27)) * _MIX2) & _MASK64
    return z ^ (z >> 31)


@lru_cache(maxsize=1 << 16)
def _unidecode(text: str) -> str:
    """ASCII transliteration (Faker's), cached: names and words repeat a lot."""
    from faker.decode import unidecode

    return unidecode(text)


@lru_cache(maxsize=1 << 16)
def _ascii_label(text: str) -> str:
    """``text`` transliterated, lower case, letters and digits only (for addresses)."""
    return _LABEL_RE.sub("", _unidecode(text).lower())


def _json_str(text: str) -> str:
    """A JSON string literal (non-ASCII kept as it is)."""
    return json.dumps(text, ensure_ascii=False)


def _to_epoch(value: _dt.datetime | _dt.date | float) -> int:
    if isinstance(value, _dt.datetime):
        if value.tzinfo is None:
            value = value.replace(tzinfo=_dt.timezone.utc)
        return int(value.timestamp())
    if isinstance(value, _dt.date):
        return int(
            _dt.datetime(value.year, value.month, value.day, tzinfo=_dt.timezone.utc).timestamp()
        )
    return int(value)


_EPOCH = _dt.datetime(1970, 1, 1)


@lru_cache(maxsize=4096)
def _format_day(day: int) -> str:
    """``Mon, 05 Jan 2024`` for a day number since 1970-01-01."""
    d = _EPOCH + _dt.timedelta(days=day)
    return f"{_DAYS[d.weekday()]}, {d.day:02d} {_MONTHS[d.month - 1]} {d.year:04d}"


def _format_date(epoch: int, tz_minutes: int) -> str:
    """RFC 5322 date-time, independent of the C locale and of the platform's time functions."""
    day, secs = divmod(epoch + 60 * tz_minutes, 86_400)  # the local wall clock
    hh, mm = divmod(abs(tz_minutes), 60)
    return (
        f"{_format_day(day)} {secs // 3600:02d}:{secs // 60 % 60:02d}:{secs % 60:02d} "
        f"{'+' if tz_minutes >= 0 else '-'}{hh:02d}{mm:02d}"
    )


# --------------------------------------------------------------------------- locale data


class _Pool:
    """Values with optional weights, sampled with a caller's ``random.Random``."""

    __slots__ = ("cum", "total", "values")

    def __init__(self, data: Any) -> None:
        if isinstance(data, dict):
            self.values: list[str] = [str(v) for v in data]
            total = 0.0
            cum: list[float] = []
            for w in data.values():
                total += float(w)
                cum.append(total)
            self.cum: list[float] | None = cum
            self.total = total
        else:
            self.values = [str(v) for v in data]
            self.cum = None
            self.total = 0.0

    def pick(self, rng: random.Random) -> str:
        if self.cum is None:
            return self.values[int(rng.random() * len(self.values))]
        i = bisect.bisect_right(self.cum, rng.random() * self.total)
        return self.values[min(i, len(self.values) - 1)]


#: The Faker providers the generator draws from (loading only these makes a
#: locale about 3x cheaper to load than all of Faker's providers).
_PROVIDERS = (
    "faker.providers.person",
    "faker.providers.internet",
    "faker.providers.lorem",
    "faker.providers.company",
)


class _Locale:
    """Faker's data for one locale, prepared once for fast sampling."""

    def __init__(self, code: str) -> None:
        from faker import Faker

        self.code = code
        #: Held while this locale's Faker instances are seeded and used: they are
        #: shared by every generator of the process (re-entrant, for hooks).
        self.lock = threading.RLock()
        self.faker = Faker(code, providers=list(_PROVIDERS))
        self._full_faker: Faker | None = None
        person = self.faker.provider("faker.providers.person")
        internet = self.faker.provider("faker.providers.internet")
        formats = getattr(person, "formats", None) or ("{{first_name}} {{last_name}}",)
        self.formats = _Pool(formats)
        self._compiled: dict[str, list[tuple[str, str]]] = {}
        self._tokens: dict[str, _Pool] = {}
        for fmt in self.formats.values:
            for tok in _TOKEN_RE.findall(fmt):
                if tok not in self._tokens:
                    self._tokens[tok] = self._token_pool(person, tok)
        self.free_domains = _Pool(getattr(internet, "free_email_domains", ("example.com",)))
        self.tlds = _Pool(getattr(internet, "tlds", ("com",)))
        words = [w for w in self.faker.get_words_list() if w and "=" not in w]
        self.words = words or ["lorem", "ipsum"]
        self.non_ascii_words = [w for w in self.words if not w.isascii()]
        lorem = self.faker.provider("faker.providers.lorem")
        self.connector = str(getattr(lorem, "word_connector", " "))
        self.stop = str(getattr(lorem, "sentence_punctuation", "."))
        self.spaced = self.connector == " "
        company = self.faker.provider("faker.providers.company")
        phrase_words = getattr(company, "catch_phrase_words", None) or ()
        self.catch_phrase_words: list[list[str]] = [
            [str(w) for w in ws] for ws in phrase_words if ws
        ]
        # Body text is drawn a sentence at a time from a pool made once per
        # locale at a fixed seed (a word at a time cost a third of the build).
        pool_rng = random.Random(0)
        self.sentences = [self._lorem_sentence(pool_rng) for _ in range(self.SENTENCES)]
        # People (display name, address) are drawn from a pool too: a mailbox has
        # its regular correspondents, each with one address.
        self.people: list[tuple[str, str]] = []
        for _ in range(self.PEOPLE):
            name, parts = self.name(pool_rng)
            self.people.append((name, self.address(pool_rng, parts)))
        self.non_ascii_people = [p for p in self.people if not p[0].isascii()] or self.people

    SENTENCES = 1024
    PEOPLE = 512

    def person(self, rng: random.Random, non_ascii: bool = False) -> tuple[str, str]:
        """A display name and its address; one with a non-ASCII name if asked (and any)."""
        pool = self.non_ascii_people if non_ascii else self.people
        return pool[int(rng.random() * len(pool))]

    def address(self, rng: random.Random, parts: list[str]) -> str:
        """An e-mail address made from name parts (ASCII, for any script)."""
        labels = [p for p in map(_ascii_label, parts) if p]
        if not labels:
            labels = ["user"]
        style = int(rng.random() * 5)
        if style == 0 or len(labels) == 1:
            local = ".".join(labels)
        elif style == 1:
            local = labels[0][0] + labels[-1]
        elif style == 2:
            local = f"{labels[0]}{int(rng.random() * 100)}"
        elif style == 3:
            local = f"{labels[-1]}_{labels[0]}"
        else:
            local = labels[0] + "." + labels[-1][0]
        local = local[:40] or "user"
        if rng.random() < 0.5:
            domain = self.free_domains.pick(rng)
        else:
            base = (labels[-1] + "-" + labels[0]) if len(labels) > 1 else labels[0]
            domain = f"{base[:30].strip('-') or 'example'}.{self.tlds.pick(rng)}"
        return f"{local}@{domain}"

    def _lorem_sentence(self, rng: random.Random) -> str:
        """4 to 11 lorem words, capitalised, with the locale's full stop."""
        words = self.words
        ws = [words[int(rng.random() * len(words))] for _ in range(4 + int(rng.random() * 8))]
        text = self.connector.join(ws)
        return text[:1].upper() + text[1:] + self.stop

    def sentence(self, rng: random.Random, nb_words: int) -> str:
        """A lorem sentence of about ``nb_words`` words (as Faker's ``sentence``)."""
        words = self.words
        n = max(1, nb_words * (60 + int(rng.random() * 81)) // 100)
        text = self.connector.join([words[int(rng.random() * len(words))] for _ in range(n)])
        return text[:1].upper() + text[1:] + self.stop

    def catch_phrase(self, rng: random.Random) -> str:
        """A company catch phrase (as Faker's ``catch_phrase``), or a sentence."""
        if not self.catch_phrase_words:
            return self.sentence(rng, 4)
        return " ".join(ws[int(rng.random() * len(ws))] for ws in self.catch_phrase_words)

    def paragraph(self, rng: random.Random, sentences: int) -> list[str]:
        """Lorem sentences of this locale, wrapped to 72 columns."""
        pool = self.sentences
        n = len(pool)
        rnd = rng.random
        picked = [pool[int(rnd() * n)] for _ in range(sentences)]
        if not self.spaced:
            text = self.connector.join(picked)
            out: list[str] = []
            while text:
                cut = 36
                while cut < len(text) and text[cut] == ".":
                    cut += 1  # never start a line with "." (dot_lines does that)
                out.append(text[:cut])
                text = text[cut:]
            return out
        text = " ".join(picked)
        lines = _WRAP_RE.findall(text)  # greedy wrapping at spaces, in C
        if sum(map(len, lines)) + len(lines) - 1 == len(text):
            return lines
        # A word longer than a line: wrap word by word.
        words = text.split(" ")
        lines = []
        cur: list[str] = []
        width = -1
        for w in words:
            if width + 1 + len(w) > 72 and cur:
                lines.append(" ".join(cur))
                cur, width = [], -1
            cur.append(w)
            width += 1 + len(w)
        lines.append(" ".join(cur))
        return lines

    def _token_pool(self, person: Any, token: str) -> _Pool:
        for attr in (token + "s", token + "es"):
            data = getattr(person, attr, None)
            if isinstance(data, (dict, list, tuple)) and data:
                return _Pool(data)
        # No plain data list (a computed token): sample the Faker method once, at
        # a fixed seed, into a pool.
        faker = self.faker if hasattr(self.faker, token) else self.full_faker
        method = getattr(faker, token)
        faker.seed_instance(0)
        return _Pool([str(method()) for _ in range(64)])

    @property
    def full_faker(self) -> Faker:
        """A Faker with all of its providers (for hooks), made on first use."""
        if self._full_faker is None:
            from faker import Faker

            self._full_faker = Faker(self.code)
        return self._full_faker

    def name(self, rng: random.Random) -> tuple[str, list[str]]:
        """A display name and the first/last name parts to build an address from."""
        fmt = self.formats.pick(rng)
        pieces = self._compiled.get(fmt)
        if pieces is None:
            pieces = []
            pos = 0
            for m in _TOKEN_RE.finditer(fmt):
                pieces.append((fmt[pos : m.start()], m.group(1)))
                pos = m.end()
            pieces.append((fmt[pos:], ""))
            self._compiled[fmt] = pieces
        out: list[str] = []
        parts: list[str] = []
        for literal, tok in pieces:
            out.append(literal)
            if tok:
                value = self._tokens[tok].pick(rng)
                out.append(value)
                if "first_name" in tok or "last_name" in tok:
                    parts.append(value)
        return " ".join("".join(out).split()), parts


_LOCALES: dict[str, _Locale] = {}
_LOCALES_LOCK = threading.Lock()


def _locale(code: str) -> _Locale:
    """The locale's data, loaded on first use and kept for the process."""
    loc = _LOCALES.get(code)
    if loc is None:
        with _LOCALES_LOCK:
            loc = _LOCALES.get(code)
            if loc is None:
                loc = _LOCALES[code] = _Locale(code)
    return loc


@lru_cache(maxsize=256)
def _faker_has_locale(code: str) -> bool:
    """Whether Faker ships ``code``, found without importing Faker (which is slow).

    ``False`` means "not seen": the caller then loads the locale at once, so an
    unknown locale still fails with Faker's own error when the generator is made.
    """
    try:
        spec = find_spec("faker")
    except (ImportError, ValueError):
        return False
    if spec is None or not spec.submodule_search_locations:
        return False
    name = code.replace("-", "_")
    for root in spec.submodule_search_locations:
        providers = Path(root, "providers")
        if any(
            (providers / p.rsplit(".", 1)[1] / name / "__init__.py").is_file() for p in _PROVIDERS
        ):
            return True
    return False


class _Filler:
    """ASCII lorem lines of an exact length (unchanged by QP and 8bit).

    A pool of lines is built once at a fixed seed; padding is a run of pool lines
    from a random start plus up to three lines of exactly the width needed.
    """

    POOL_LINES = 2048
    PER_WIDTH = 8

    def __init__(self) -> None:
        words = sorted({w.lower() for w in _locale("en_US").words if w.isalpha() and w.isascii()})
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


_FILLER: _Filler | None = None


def _filler() -> _Filler:
    global _FILLER
    if _FILLER is None:
        _FILLER = _Filler()
    return _FILLER


# --------------------------------------------------------------------------- header encoding


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


def _display_name(name: str, rolls: Iterator[float]) -> str:
    if not name:
        return ""
    if not name.isascii():
        return _encoded_words(name, rolls, phrase=True)
    if _ATEXT_RE.fullmatch(name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


def _subject_value(subject: str, rolls: Iterator[float]) -> str:
    if subject.isascii():
        return _fold_plain(subject, len("Subject: "))
    # Keep an ASCII reply prefix readable, as mail clients do.
    head = ""
    for pre in ("Re: ", "Fwd: "):
        while subject.startswith(pre):
            head += pre
            subject = subject[len(pre) :]
    return head + _encoded_words(subject, rolls, phrase=False)


# --------------------------------------------------------------------------- body parts


@dataclass
class _Part:
    """A leaf MIME part: its header lines and its encoded body (CRLF, ends CRLF).

    ``pad`` is inserted into the body at ``pad_at`` when it is rendered.
    """

    headers: list[str]
    body: bytes
    pad: bytes = b""
    pad_at: int = 0

    def chunks(self, out: list[bytes]) -> None:
        out.append((CRLF.join(self.headers) + CRLF + CRLF).encode("ascii"))
        if self.pad:
            out += (self.body[: self.pad_at], self.pad, self.body[self.pad_at :])
        else:
            out.append(self.body)

    def render(self) -> bytes:
        out: list[bytes] = []
        self.chunks(out)
        return b"".join(out)


@dataclass
class _Multi:
    """A multipart container."""

    subtype: str
    boundary: str
    parts: list[_Part | _Multi]
    extra: list[str] = field(default_factory=list)

    def content_type(self) -> str:
        return f'multipart/{self.subtype};{CRLF} boundary="{self.boundary}"'

    def chunks(self, out: list[bytes]) -> None:
        head = [f"Content-Type: {self.content_type()}", *self.extra]
        out.append((CRLF.join(head) + CRLF + CRLF).encode("ascii"))
        delimiter = f"--{self.boundary}\r\n".encode("ascii")
        for p in self.parts:
            out.append(delimiter)
            p.chunks(out)
        out.append(f"--{self.boundary}--\r\n".encode("ascii"))

    def render(self) -> bytes:
        out: list[bytes] = []
        self.chunks(out)
        return b"".join(out)


def _b64_body(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"".join(enc[i : i + 76] + b"\r\n" for i in range(0, len(enc), 76))


def _b64_len(n: int) -> int:
    enc = (n + 2) // 3 * 4
    return enc + 2 * ((enc + 75) // 76)


def _raw_for_b64(octets: int) -> int:
    """The largest raw size whose base64 body fits in ``octets``."""
    n = max(0, octets * 57 // 78)
    while n > 0 and _b64_len(n) > octets:
        n -= 1
    return n


def _qp(data: bytes) -> bytes:
    """Quoted-printable; no line starts with ``.`` unless the text's own line does.

    (``binascii`` may put a ``.`` first on a line after a soft break; it becomes
    ``=2E``, with the line broken again if that makes it longer than 76.)
    """
    enc = binascii.b2a_qp(data, istext=True)
    if b"=\r\n." not in enc:
        return enc
    out: list[bytes] = []
    soft = False
    for line in enc.split(b"\r\n"):
        while soft and line.startswith(b"."):
            line = b"=2E" + line[1:]
            if len(line) <= 76:
                break
            cut = 75
            if line[cut - 1 : cut] == b"=":
                cut -= 1
            elif line[cut - 2 : cut - 1] == b"=":
                cut -= 2
            out.append(line[:cut] + b"=")
            line = line[cut:]
        out.append(line)
        soft = line.endswith(b"=")
    return b"\r\n".join(out)


def _png(rng: random.Random, octets: int) -> bytes:
    """A valid PNG (noise) of roughly ``octets`` bytes."""

    def chunk(kind: bytes, data: bytes) -> bytes:
        return (
            struct.pack(">I", len(data))
            + kind
            + data
            + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)
        )

    width = 16
    rows = max(1, (octets - 80) // (width * 3 + 1))
    raw = bytearray(rng.randbytes(rows * (width * 3 + 1)))
    raw[:: width * 3 + 1] = bytes(rows)  # filter type 0 first on every row
    ihdr = struct.pack(">IIBBBBB", width, rows, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", ihdr)
        + chunk(b"IDAT", zlib.compress(bytes(raw), 0))
        + chunk(b"IEND", b"")
    )


def _jpeg(rng: random.Random, octets: int) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    body = rng.randbytes(max(0, octets - len(head) - 2)).replace(b"\xff", b"\xfe")
    return head + body + b"\xff\xd9"


def _pdf(rng: random.Random, octets: int) -> bytes:
    head = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n3 0 obj\n<< /Length "
    )
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    n = max(0, octets - len(head) - len(tail) - 20)
    return head + str(n).encode() + b" >>\nstream\n" + rng.randbytes(n) + tail


# --------------------------------------------------------------------------- the generator


class _RawPlan(NamedTuple):
    """Facts drawn from message *k*'s own stream only (its first draws)."""

    size: int
    parent: int | None
    own_date: int
    delay: int
    tz: int
    locale: str
    non_ascii: bool
    message_id: str
    sender_name: str
    sender_addr: str
    subject: str


class _Plan(NamedTuple):
    """The cheap per-message facts other messages refer to."""

    size: int
    parent: int | None
    root: int
    depth: int
    date: int
    tz: int
    locale: str
    non_ascii: bool
    message_id: str
    sender_name: str
    sender_addr: str
    subject: str
    """The subject drawn for this message (a reply uses its thread root's)."""


class MessageGenerator:
    """Builds message *k* of a generated mailbox on demand.

    All knobs are validated once here; see :func:`generate_messages` for their
    meaning. An instance may be shared between threads only if callers hold a
    lock around :meth:`message` (its random generators and caches are its own;
    :class:`GeneratedMail` holds one). :meth:`size` and :meth:`sizes` need none.
    """

    def __init__(
        self,
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
    ) -> None:
        self.seed = int(seed)
        self.locales: tuple[str, ...] = (locale,) if isinstance(locale, str) else tuple(locale)
        if not self.locales:
            raise ValueError("locale: give at least one Faker locale")
        self.non_ascii_locales = tuple(non_ascii_locales) or ("de_DE",)
        self.start = _to_epoch(start)
        self.end = _to_epoch(end)
        if self.end <= self.start:
            raise ValueError(f"end ({end!r}) must be after start ({start!r})")
        if min_size < MIN_SIZE_FLOOR:
            raise ValueError(f"min_size must be at least {MIN_SIZE_FLOOR} octets, got {min_size}")
        if max_size < min_size:
            raise ValueError(f"max_size ({max_size}) must not be below min_size ({min_size})")
        self.min_size = int(min_size)
        self.max_size = int(max_size)
        for name, share in (
            ("html", html),
            ("attachments", attachments),
            ("threads", threads),
            ("non_ascii", non_ascii),
            ("dot_lines", dot_lines),
        ):
            if not 0.0 <= share <= 1.0:
                raise ValueError(f"{name} is a share between 0 and 1, got {share!r}")
        self.html = float(html)
        self.attachments = float(attachments)
        self.threads = float(threads)
        self.non_ascii = float(non_ascii)
        self.dot_lines = float(dot_lines)
        self.hook = hook
        self._plan_rng = random.Random(0)
        self._aux_rng = random.Random(0)
        self._content_rng = random.Random(0)
        self._plans: OrderedDict[int, _Plan] = OrderedDict()
        self._size_key = _stream_key(self.seed, "size")
        # Message k's stream: its plan (the first draws), then its content.
        self._message_key = _stream_key(self.seed, "message")
        # Locales are loaded when a message first needs one; an unknown one fails now.
        for code in dict.fromkeys((*self.locales, *self.non_ascii_locales)):
            if not _faker_has_locale(code):
                _locale(code)

    # -- cheap facts -------------------------------------------------------

    def plan(self, index: int, drawn: _RawPlan | None = None) -> _Plan:
        """Size, parent, date, locale, Message-ID, sender and subject of message ``index``.

        ``drawn`` is message ``index``'s raw plan if the caller has drawn it already.
        """
        cached = self._plans.get(index)
        if cached is not None:
            return cached
        if index < 0:
            raise IndexError(index)
        # Walk up the thread without recursion, then resolve dates downwards.
        chain: list[tuple[int, _RawPlan]] = []
        k: int | None = index
        while k is not None and k not in self._plans:
            if k == index and drawn is not None:
                raw = drawn
            else:
                rng = self._plan_rng
                rng.seed(_derive(self._message_key, k))
                raw = self._raw_plan(k, rng)
            chain.append((k, raw))
            k = raw.parent
        resolved: dict[int, _Plan] = {}
        for k, raw in reversed(chain):
            if raw.parent is None:
                date, root, depth = raw.own_date, k, 0
            else:
                pp = resolved.get(raw.parent) or self._plans[raw.parent]
                date = min(self.end - 1, pp.date + raw.delay)
                root, depth = pp.root, pp.depth + 1
            resolved[k] = _Plan(
                raw.size,
                raw.parent,
                root,
                depth,
                date,
                raw.tz,
                raw.locale,
                raw.non_ascii,
                raw.message_id,
                raw.sender_name,
                raw.sender_addr,
                raw.subject,
            )
        for k, plan in resolved.items():
            self._plans[k] = plan
        while len(self._plans) > 8192:
            self._plans.popitem(last=False)
        return resolved[index]

    def _size(self, index: int) -> int:
        # Its own stream and no Random object: a STAT of a huge mailbox stays cheap.
        u = (_derive(self._size_key, index) >> 11) / 9007199254740992.0  # 2**53
        return self.min_size + int((self.max_size - self.min_size) * (u * u * u))

    def sizes(self, start: int, stop: int) -> list[int]:
        """``[size(k) for k in range(start, stop)]`` in one pass (no hook allowed)."""
        if self.hook is not None:
            raise ValueError("sizes() of a generator with a hook: build the messages")
        lo = self.min_size
        span = self.max_size - lo
        mask, mix1, mix2 = _MASK64, _MIX1, _MIX2
        z = (self._size_key + start * _GOLDEN) & mask
        out: list[int] = []
        append = out.append
        for _ in range(start, stop):
            # _derive(), inlined: the state advances by the golden gamma per message.
            z = (z + _GOLDEN) & mask
            x = ((z ^ (z >> 30)) * mix1) & mask
            x = ((x ^ (x >> 27)) * mix2) & mask
            u = ((x ^ (x >> 31)) >> 11) / 9007199254740992.0
            append(lo + int(span * (u * u * u)))
        return out

    def _raw_plan(self, index: int, rng: random.Random) -> _RawPlan:
        """The first draws of message ``index``'s stream (``rng``, freshly seeded)."""
        size = self._size(index)
        parent: int | None = None
        if index > 0 and rng.random() < self.threads:
            parent = index - 1 - int(rng.random() * min(index, 40))
        non_ascii = rng.random() < self.non_ascii
        code = self.locales[int(rng.random() * len(self.locales))]
        if non_ascii and code not in self.non_ascii_locales:
            code = self.non_ascii_locales[int(rng.random() * len(self.non_ascii_locales))]
        tz = _TZ_MINUTES[int(rng.random() * len(_TZ_MINUTES))]
        delay = 60 + int(rng.random() * 3 * 86_400)
        own_date = self.start + int(rng.random() * (self.end - self.start))
        token = rng.getrandbits(64)
        host = _MSGID_HOSTS[int(rng.random() * len(_MSGID_HOSTS))]
        loc = _locale(code)
        name, addr = loc.person(rng, non_ascii)
        return _RawPlan(
            size,
            parent,
            own_date,
            delay,
            tz,
            code,
            non_ascii,
            f"<{token:016x}.{index}@{host}>",
            name,
            addr,
            self._draw_subject(loc, rng, non_ascii),
        )

    def message_id(self, index: int) -> str:
        """The ``Message-ID`` of message ``index`` (with angle brackets)."""
        return self.plan(index).message_id

    def size(self, index: int) -> int:
        """The exact size in octets (CRLF line ends) of message ``index``.

        Computed without building the message unless a hook is set.
        """
        if self.hook is not None:
            return len(self.message(index))
        return self._size(index)

    def subject(self, index: int) -> str:
        """The subject of message ``index`` (``Re: `` + the thread root's for replies)."""
        plan = self.plan(index)
        if not plan.depth:
            return plan.subject
        return "Re: " + self.plan(plan.root).subject

    @staticmethod
    def _draw_subject(loc: _Locale, rng: random.Random, non_ascii: bool) -> str:
        kind = int(rng.random() * 4)
        if kind == 0:
            text = loc.sentence(rng, 3 + int(rng.random() * 6)).rstrip(".。")
        elif kind == 1:
            text = loc.catch_phrase(rng) if loc.code.startswith("en") else loc.sentence(rng, 4)
            text = text.rstrip(".。")
        elif kind == 2:
            tag = ("TICKET", "JIRA", "ops", "Invoice")[int(rng.random() * 4)]
            text = f"[{tag}-{int(rng.random() * 10_000)}] "
            text += loc.sentence(rng, 4).rstrip(".。")
        else:
            words = loc.words
            n = 2 + int(rng.random() * 4)
            text = " ".join(words[int(rng.random() * len(words))] for _ in range(n))
            text = text[:1].upper() + text[1:]
        text = " ".join(text.split())[:90]
        if non_ascii and text.isascii():
            nw = loc.non_ascii_words
            extra = nw[int(rng.random() * len(nw))] if nw else "€"
            text = f"{text} – {extra}"  # noqa: RUF001 - an en dash on purpose
        return text

    def _references(self, index: int) -> list[str]:
        refs: list[str] = []
        p = self.plan(index).parent
        while p is not None and len(refs) < 12:
            refs.append(self.plan(p).message_id)
            p = self.plan(p).parent
        refs.reverse()
        return refs

    # -- building ----------------------------------------------------------

    def message(self, index: int) -> bytes:
        """Build message ``index`` (CRLF line ends), applying the hook if any."""
        data = self._build(index)
        if self.hook is None:
            return data
        plan = self.plan(index)
        loc = _locale(plan.locale)
        with loc.lock:  # the Faker instance is shared by every generator of the process
            faker = loc.full_faker
            faker.seed_instance(_derive(_stream_key(self.seed, "hook"), index))
            ctx = HookContext(
                index=index,
                seed=self.seed,
                message_id=plan.message_id,
                parent=plan.parent,
                random=random.Random(_derive(_stream_key(self.seed, "hook-random"), index)),
                faker=faker,
            )
            result = self.hook(ctx, data)
        if result is None:
            return data
        if isinstance(result, str):
            result = result.encode("utf-8")
        if not isinstance(result, bytes):
            raise TypeError(
                f"message hook must return bytes, str or None, not {type(result).__name__}"
            )
        return result

    def _build(self, index: int) -> bytes:
        # One stream per message: the plan's draws, then the content's. (Our own
        # Random: a process-wide Faker's would race with other threads.)
        rng = self._content_rng
        rng.seed(_derive(self._message_key, index))
        plan = self.plan(index, self._raw_plan(index, rng))
        subject = self.subject(index)
        refs = self._references(index)
        loc = _locale(plan.locale)

        # -- people
        recipients: list[tuple[str, str]] = []
        if plan.parent is not None:
            pp = self.plan(plan.parent)
            recipients.append((pp.sender_name, pp.sender_addr))
        for _ in range(int(rng.random() * 2) + (0 if recipients else 1)):
            recipients.append(loc.person(rng))
        cc: list[tuple[str, str]] = []
        for _ in range(int(rng.random() * rng.random() * 4)):
            cc.append(loc.person(rng))
        reply_to = None
        if rng.random() < 0.15:
            reply_to = (plan.sender_name, "reply+" + plan.sender_addr)
        mailer = _MAILERS[int(rng.random() * len(_MAILERS))]
        # The header encodings' choices: the same on every shrinking level.
        header_rolls = [rng.random() for _ in range(2 * _MAX_NAMES)]

        # -- content choices
        with_html = rng.random() < self.html
        with_inline = with_html and rng.random() < 0.3
        n_att = (1 + int(rng.random() * rng.random() * 3)) if rng.random() < self.attachments else 0
        # Fewer paragraphs for small messages, so that they rarely need shrinking.
        n_par = 1 + int(rng.random() * 3)
        n_par = max(1, min(n_par, (plan.size - 900) // (1400 if with_html else 700)))
        paragraphs = [loc.paragraph(rng, 2 + int(rng.random() * 4)) for _ in range(n_par)]
        greeting = _GREETINGS[int(rng.random() * len(_GREETINGS))]
        signoff = _SIGNOFFS[int(rng.random() * len(_SIGNOFFS))]
        dot_line = (
            _DOT_LINES[int(rng.random() * len(_DOT_LINES))]
            if rng.random() < self.dot_lines
            else None
        )
        charset_roll = rng.random()
        cte_roll = rng.random()
        html_cte_roll = rng.random()
        boundary_token = rng.getrandbits(48)
        att_seed = rng.getrandbits(64)
        aux = self._aux_rng
        logo = _b64_body(_png(rng, 400)) if with_inline else b""

        # -- degradation levels, applied in turn while the message is too big
        # (The names and the whole subject go last: non_ascii relies on them.)
        for level in range(10):
            if level < 1:
                paras = paragraphs
            elif level < 6:
                paras = paragraphs[:1]
            else:
                paras = [paragraphs[0][:2]] if level < 7 else []
            atts = n_att if level < 2 else 0
            inline_on = with_inline if level < 3 else False
            cc_l = cc if level < 3 else []
            refs_l = refs if level < 3 else refs[-1:]
            rt = reply_to if level < 3 else None
            rcpt = recipients if level < 4 else recipients[:1]
            html_on = with_html if level < 5 else False
            named = level < 8
            head = self._headers(
                plan,
                subject if level < 9 else subject[:20],
                rcpt,
                cc_l,
                rt,
                refs_l,
                mailer,
                named,
                cycle(header_rolls),
            )
            text_part, pad_at = self._text_part(
                paras, greeting, signoff, dot_line, plan, loc, charset_roll, cte_roll
            )
            body_node: _Part | _Multi = text_part
            boundary_n = 0

            def boundary() -> str:
                nonlocal boundary_n
                boundary_n += 1
                return f"=_fp{boundary_token:012x}_{index}_{boundary_n}"

            html_part: _Part | _Multi | None = None
            if html_on:
                cid = f"img{boundary_token:x}.{index}@fakepop3" if inline_on else None
                html_part = self._html_part(
                    paras, greeting, plan, loc, charset_roll, html_cte_roll, cid
                )
                if cid is not None:
                    inline = _Part(
                        [
                            "Content-Type: image/png",
                            "Content-Transfer-Encoding: base64",
                            f"Content-ID: <{cid}>",
                            'Content-Disposition: inline; filename="logo.png"',
                        ],
                        logo,
                    )
                    html_part = _Multi("related", boundary(), [html_part, inline])
                body_node = _Multi("alternative", boundary(), [text_part, html_part])
            top: _Part | _Multi = body_node
            att_parts: list[_Part] = []
            head_bytes = head.encode("ascii")
            chunks = [head_bytes]
            if atts:
                top = _Multi("mixed", boundary(), [body_node])
                top.chunks(chunks)
                base_len = sum(map(len, chunks))
                del chunks[1:]
                avail = plan.size - base_len - 150 * atts
                att_rng = aux
                att_rng.seed(att_seed)
                for i in range(atts):
                    share = avail // (atts - i) if i < atts - 1 else avail
                    share = int(share * (0.4 + 0.5 * att_rng.random()))
                    part = self._attachment(att_rng, share, loc, i)
                    if part is None:
                        continue
                    att_parts.append(part)
                    avail -= len(part.render()) + 50
                top.parts.extend(att_parts)
            top.chunks(chunks)
            gap = plan.size - sum(map(len, chunks)) - len(signoff[0]) - 2
            if gap < 0:
                continue
            signoff_text = signoff[0]
            if gap == 1:
                signoff_text = signoff[1]
                gap = 0
            text_part.pad = (_filler().block(rng, gap) + signoff_text + CRLF).encode("ascii")
            text_part.pad_at = pad_at
            chunks = [head_bytes]
            top.chunks(chunks)
            out = b"".join(chunks)
            assert len(out) == plan.size, (len(out), plan.size)
            return out
        raise AssertionError(
            f"message {index} cannot fit in {plan.size} octets"
        )  # pragma: no cover

    def _headers(
        self,
        plan: _Plan,
        subject: str,
        rcpt: list[tuple[str, str]],
        cc: list[tuple[str, str]],
        reply_to: tuple[str, str] | None,
        refs: list[str],
        mailer: str,
        named: bool,
        rolls: Iterator[float],
    ) -> str:
        def addr(pair: tuple[str, str]) -> str:
            name, address = pair
            dn = _display_name(name, rolls) if named else ""
            return f"{dn} <{address}>" if dn else address

        lines = [
            f"From: {addr((plan.sender_name, plan.sender_addr))}",
            "To: " + ("," + CRLF + "\t").join(addr(r) for r in rcpt),
        ]
        if cc:
            lines.append("Cc: " + ("," + CRLF + "\t").join(addr(r) for r in cc))
        if reply_to is not None:
            lines.append(f"Reply-To: {addr(reply_to)}")
        lines.append(f"Subject: {_subject_value(subject, rolls)}")
        lines.append(f"Date: {_format_date(plan.date, plan.tz)}")
        lines.append(f"Message-ID: {plan.message_id}")
        if refs:
            lines.append(f"In-Reply-To: {refs[-1]}")
            lines.append("References: " + (CRLF + " ").join(refs))
        lines.append(f"X-Mailer: {mailer}")
        lines.append("MIME-Version: 1.0")
        return CRLF.join(lines) + CRLF

    def _text_part(
        self,
        paras: list[list[str]],
        greeting: str,
        signoff: tuple[str, str],
        dot_line: str | None,
        plan: _Plan,
        loc: _Locale,
        charset_roll: float,
        cte_roll: float,
    ) -> tuple[_Part, int]:
        lines = [greeting, ""]
        for p in paras:
            lines.extend(p)
            lines.append("")
        main = CRLF.join(lines) + CRLF
        name_line = (plan.sender_name or "-") + CRLF
        text = main + name_line
        charset, cte = self._charset_cte(text, charset_roll, cte_roll)
        enc_main = main.encode(charset)
        enc_name = name_line.encode(charset)
        if cte == "quoted-printable":
            enc_main, enc_name = _qp(enc_main), _qp(enc_name)
        raw_lines = (dot_line + CRLF).encode("ascii") if dot_line is not None else b""
        body = enc_main + raw_lines + enc_name
        headers = [
            f'Content-Type: text/plain; charset="{charset}"',
            f"Content-Transfer-Encoding: {cte}",
        ]
        return _Part(headers, body), len(enc_main) + len(raw_lines)

    @staticmethod
    def _charset_cte(text: str, charset_roll: float, cte_roll: float) -> tuple[str, str]:
        if text.isascii():
            return "us-ascii" if charset_roll < 0.3 else "utf-8", "7bit"
        charset = "utf-8"
        if charset_roll >= 0.5:
            # The first legacy charset that fits, from a rotating start.
            n = len(_LEGACY_CHARSETS)
            first = int((charset_roll - 0.5) * 2 * n)
            for i in range(n):
                cand = _LEGACY_CHARSETS[(first + i) % n]
                try:
                    text.encode(cand)
                except UnicodeEncodeError:
                    continue
                charset = cand
                break
        if charset in _SEVEN_BIT_CHARSETS:
            return charset, "7bit"
        return charset, "8bit" if cte_roll < 0.5 else "quoted-printable"

    def _html_part(
        self,
        paras: list[list[str]],
        greeting: str,
        plan: _Plan,
        loc: _Locale,
        charset_roll: float,
        cte_roll: float,
        cid: str | None,
    ) -> _Part:
        parts = [
            "<!DOCTYPE html>",
            '<html><head><meta charset="{charset}"><title>Message</title></head>',
            '<body style="font-family: sans-serif">',
            f"<p>{_html.escape(greeting)}</p>",
        ]
        for p in paras:
            parts.append("<p>")
            parts.extend(_html.escape(line) for line in p)
            parts.append("</p>")
        if cid is not None:
            parts.append(f'<p><img src="cid:{cid}" alt="logo" width="16"></p>')
        parts.append(f"<p>&mdash;<br>{_html.escape(plan.sender_name or '-')}</p>")
        parts.append("</body></html>")
        text = CRLF.join(parts) + CRLF
        charset, cte = self._charset_cte(text, charset_roll, cte_roll)
        text = text.replace("{charset}", charset)
        data = text.encode(charset)
        if cte_roll < 0.4:
            cte = "base64"
            body = _b64_body(data)
        elif cte == "quoted-printable" or (cte == "7bit" and cte_roll > 0.8):
            cte = "quoted-printable"
            body = _qp(data)
        else:
            body = data
        return _Part(
            [f'Content-Type: text/html; charset="{charset}"', f"Content-Transfer-Encoding: {cte}"],
            body,
        )

    def _attachment(self, rng: random.Random, share: int, loc: _Locale, i: int) -> _Part | None:
        kind = int(rng.random() * 9)
        words = loc.words
        stem = "-".join(rng.choice(words) for _ in range(1 + int(rng.random() * 2)))
        ascii_stem = _LABEL_RE.sub("-", _unidecode(stem).lower()).strip("-") or f"file{i}"
        budget = share - 200
        if budget < 60:
            return None
        text_payload: str | None = None
        if kind == 0:
            ext, ctype = "txt", "text/plain"
            text_payload = _filler().block(rng, max(2, int(budget * 0.7)))
        elif kind == 1:
            ext, ctype = "csv", "text/csv"
            rows = ["id,name,email,amount,date"]
            people = []
            for _ in range(6):
                nm, address = loc.person(rng)
                people.append(f'"{nm.replace(chr(34), "")}",{address}')
            size = 30
            n = 0
            while size < budget * 0.7:
                n += 1
                bits = rng.getrandbits(40)  # one draw per row: person, amount, date
                cents, bits = bits % 10_000_000, bits // 10_000_000
                row = (
                    f"{n},{people[bits % 6]},{cents // 100}.{cents % 100:02d},"
                    f"20{10 + bits // 6 % 15}-{1 + bits // 90 % 12:02d}-{1 + bits // 1080 % 28:02d}"
                )
                rows.append(row)
                size += len(row.encode()) + 2
            text_payload = CRLF.join(rows) + CRLF
        elif kind == 2:
            ext, ctype = "json", "application/json"
            items = []
            size = 20
            while size < budget * 0.6:
                word = words[int(rng.random() * len(words))]
                bits = rng.getrandbits(21)  # one draw per item: id and flag
                items.append(
                    f'  {{"id": {bits >> 1}, "word": {_json_str(word)},'
                    f' "ok": {"true" if bits & 1 else "false"}}}'
                )
                size += 50 + 3 * len(word)
            text_payload = (
                "{" + CRLF + ' "items": [' + CRLF + ("," + CRLF).join(items) + CRLF + " ]"
            )
            text_payload += CRLF + "}" + CRLF
        elif kind == 3:
            ext, ctype = "ics", "text/calendar"
            text_payload = (
                CRLF.join(
                    [
                        "BEGIN:VCALENDAR",
                        "VERSION:2.0",
                        "PRODID:-//fakepop3//generated//EN",
                        "BEGIN:VEVENT",
                        f"UID:{rng.getrandbits(64):016x}@fakepop3",
                        f"DTSTART:2024{rng.randrange(1, 13):02d}{rng.randrange(1, 29):02d}T{rng.randrange(8, 18):02d}0000Z",
                        f"SUMMARY:{' '.join(rng.choice(words) for _ in range(3))}",
                        "END:VEVENT",
                        "END:VCALENDAR",
                    ]
                )
                + CRLF
            )
        elif kind in (4, 5):
            ext, ctype = "pdf", "application/pdf"
            data = _pdf(rng, _raw_for_b64(budget))
        elif kind == 6:
            ext, ctype = "png", "image/png"
            data = _png(rng, _raw_for_b64(budget))
        elif kind == 7:
            ext, ctype = "jpg", "image/jpeg"
            data = _jpeg(rng, _raw_for_b64(budget))
        else:
            ext, ctype = "bin", "application/octet-stream"
            data = rng.randbytes(_raw_for_b64(budget))
        headers: list[str] = []
        if text_payload is not None:
            data = text_payload.encode("utf-8")
            if data.isascii() and rng.random() < 0.5:
                headers.append(f"Content-Type: {ctype}; charset=us-ascii")
                headers.append("Content-Transfer-Encoding: 7bit")
                body = data
            elif data.isascii() and rng.random() < 0.5:
                headers.append(f"Content-Type: {ctype}; charset=utf-8")
                headers.append("Content-Transfer-Encoding: quoted-printable")
                body = _qp(data)
            else:
                headers.append(f"Content-Type: {ctype}; charset=utf-8")
                headers.append("Content-Transfer-Encoding: base64")
                body = _b64_body(data)
        else:
            headers.append(f"Content-Type: {ctype}")
            headers.append("Content-Transfer-Encoding: base64")
            body = _b64_body(data)
        filename = f"{stem}.{ext}"
        if filename.isascii() and not any(c in filename for c in '"\\'):
            headers[0] += f';{CRLF} name="{filename}"'
            disp = f'attachment; filename="{filename}"'
        else:
            quoted = "".join(
                chr(b) if (chr(b).isalnum() and b < 128) or chr(b) in "-._" else f"%{b:02X}"
                for b in filename.encode("utf-8")
            )
            disp = f"attachment;{CRLF} filename*=utf-8''{quoted}"
            headers[0] += f';{CRLF} name="{ascii_stem}.{ext}"'
        if kind == 6 and rng.random() < 0.3:
            disp = "inline" + disp[len("attachment") :]
        headers.append(f"Content-Disposition: {disp}")
        part = _Part(headers, body)
        return part if len(part.render()) <= share else None


class GeneratedMail(Sequence[bytes]):
    """A lazy, read-only sequence of generated messages.

    ``mail[k]`` builds message *k* on first access (an LRU of ``cache_size``
    messages keeps recent ones). :meth:`size` and :meth:`total_size` are exact
    and, without a hook, need no message to be built.
    """

    def __init__(self, generator: MessageGenerator, count: int, *, cache_size: int = 256) -> None:
        if count < 0:
            raise ValueError(f"count must not be negative, got {count}")
        self.generator = generator
        self._count = count
        self._cache_size = cache_size
        self._cache: OrderedDict[int, bytes] = OrderedDict()
        self._lock = threading.Lock()

    def __len__(self) -> int:
        return self._count

    def _index(self, index: int) -> int:
        if index < 0:
            index += self._count
        if not 0 <= index < self._count:
            raise IndexError(f"message index {index} out of range for {self._count} messages")
        return index

    @overload
    def __getitem__(self, index: int) -> bytes: ...

    @overload
    def __getitem__(self, index: slice) -> list[bytes]: ...

    def __getitem__(self, index: int | slice) -> bytes | list[bytes]:
        if isinstance(index, slice):
            return [self[i] for i in range(*index.indices(self._count))]
        k = self._index(index)
        with self._lock:
            data = self._cache.get(k)
            if data is None:
                data = self.generator.message(k)
                if self._cache_size > 0:
                    self._cache[k] = data
                    if len(self._cache) > self._cache_size:
                        self._cache.popitem(last=False)
            else:
                self._cache.move_to_end(k)
            return data

    def __iter__(self) -> Iterator[bytes]:
        for k in range(self._count):
            yield self[k]

    def __repr__(self) -> str:
        g = self.generator
        return f"GeneratedMail(count={self._count}, seed={g.seed}, locale={g.locales!r})"

    def size(self, index: int) -> int:
        """Exact size in octets of message ``index`` (cheap unless a hook is set)."""
        k = self._index(index)
        if self.generator.hook is not None:
            return len(self[k])  # the hook may change the size: build (and cache) it
        return self.generator.size(k)  # a pure function of (seed, k): no lock needed

    def sizes(self) -> list[int]:
        """Exact sizes of all messages, in order.

        Without a hook this is one pass of integer arithmetic (about 0.5 s per
        million messages), building nothing and importing nothing.
        """
        if self.generator.hook is None:
            return self.generator.sizes(0, self._count)
        return [self.size(k) for k in range(self._count)]

    def total_size(self) -> int:
        """Sum of all sizes: what ``STAT`` reports for the whole mailbox."""
        return sum(self.sizes())

    def message_id(self, index: int) -> str:
        """``Message-ID`` of message ``index`` without building it."""
        k = self._index(index)
        with self._lock:
            return self.generator.message_id(k)


def generate_messages(
    count: int,
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
) -> GeneratedMail:
    """A lazy mailbox of ``count`` generated messages.

    :param count: number of messages.
    :param seed: the same seed gives byte-identical messages on every run.
    :param locale: a Faker locale or a sequence of them (one is picked per message).
    :param start: start of the date range (datetime, date or epoch seconds).
    :param end: end of the date range (exclusive). Replies come 1 minute to 3 days
        after the message they answer, capped at ``end``.
    :param min_size: smallest message size in octets (at least :data:`MIN_SIZE_FLOOR`).
    :param max_size: largest message size; sizes lean towards ``min_size``.
    :param html: share of messages with an HTML alternative (some with an inline image).
    :param attachments: share of messages with 1-3 attachments.
    :param threads: share of messages that reply to one of the 40 before them.
    :param non_ascii: share of messages with non-ASCII names and subjects (drawn from
        ``non_ascii_locales`` unless the chosen locale is one of them).
    :param dot_lines: share of messages with a body line that starts with ``.``.
    :param hook: ``hook(ctx, message) -> bytes | str | None`` to customise or
        replace each message; see :class:`HookContext`.
    :param cache_size: how many built messages to keep (0: none).
    """
    gen = MessageGenerator(
        seed=seed,
        locale=locale,
        start=start,
        end=end,
        min_size=min_size,
        max_size=max_size,
        html=html,
        attachments=attachments,
        threads=threads,
        non_ascii=non_ascii,
        dot_lines=dot_lines,
        non_ascii_locales=non_ascii_locales,
        hook=hook,
    )
    return GeneratedMail(gen, count, cache_size=cache_size)


def generate_message(
    index: int = 0,
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
) -> bytes:
    """Message ``index`` of the mailbox :func:`generate_messages` would give.

    Equal to ``generate_messages(n, ...)[index]`` for any ``n > index``.
    """
    if index < 0:
        raise IndexError(f"message index must not be negative, got {index}")
    gen = MessageGenerator(
        seed=seed,
        locale=locale,
        start=start,
        end=end,
        min_size=min_size,
        max_size=max_size,
        html=html,
        attachments=attachments,
        threads=threads,
        non_ascii=non_ascii,
        dot_lines=dot_lines,
        non_ascii_locales=non_ascii_locales,
        hook=hook,
    )
    return gen.message(index)
