"""Locales: Faker's data for one locale, prepared once for fast sampling (the Faker bridge).

A :class:`Locale` loads Faker's person, internet, lorem and company providers
for one locale when a message first needs it, and keeps them for the process
(:func:`locale_data`).  From them it makes, at a fixed seed, the pools messages
draw from: 1,024 lorem sentences and 512 people (display name and address: a
mailbox's regular correspondents).  Messages then draw from those pools with
their own :class:`random.Random`, never through a shared Faker.

Rules a maintainer must keep:

* Draw order is part of the output: every method that takes ``rng`` draws a
  fixed sequence for its inputs; never reorder, add or drop a draw (the pinned
  digests in ``tests/test_generate.py`` catch it).
* The pools are made at a fixed seed (``random.Random(0)``, ``seed_instance(0)``)
  in a fixed order: they are part of the output too.
* Faker is imported only inside functions, so importing the generator and a
  first ``STAT`` (sizes only) import no Faker.
* A locale's Faker instances are shared by every generator of the process: use
  them only with ``Locale.lock`` held (hooks do, in ``MessageGenerator.message``).
"""

from __future__ import annotations

import bisect
import random
import re
import threading
from functools import lru_cache
from importlib.util import find_spec
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # Faker is imported on first use: a cold STAT does not need it
    from faker import Faker

__all__ = [
    "LABEL_RE",
    "PROVIDERS",
    "Locale",
    "Pool",
    "ascii_label",
    "faker_has_locale",
    "locale_data",
    "transliterate",
]

_TOKEN_RE = re.compile(r"\{\{\s*(\w+)\s*\}\}")
LABEL_RE = re.compile(r"[^a-z0-9]+")
_WRAP_RE = re.compile(r"(.{1,72})(?: |$)")


@lru_cache(maxsize=1 << 16)
def transliterate(text: str) -> str:
    """ASCII transliteration (Faker's), cached: names and words repeat a lot."""
    from faker.decode import unidecode

    return unidecode(text)


@lru_cache(maxsize=1 << 16)
def ascii_label(text: str) -> str:
    """``text`` transliterated, lower case, letters and digits only (for addresses)."""
    return LABEL_RE.sub("", transliterate(text).lower())


class Pool:
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
PROVIDERS = (
    "faker.providers.person",
    "faker.providers.internet",
    "faker.providers.lorem",
    "faker.providers.company",
)


class Locale:
    """Faker's data for one locale, prepared once for fast sampling."""

    def __init__(self, code: str) -> None:
        from faker import Faker

        self.code = code
        #: Held while this locale's Faker instances are seeded and used: they are
        #: shared by every generator of the process (re-entrant, for hooks).
        self.lock = threading.RLock()
        self.faker = Faker(code, providers=list(PROVIDERS))
        self._full_faker: Faker | None = None
        person = self.faker.provider("faker.providers.person")
        internet = self.faker.provider("faker.providers.internet")
        formats = getattr(person, "formats", None) or ("{{first_name}} {{last_name}}",)
        self.formats = Pool(formats)
        self._compiled: dict[str, list[tuple[str, str]]] = {}
        self._tokens: dict[str, Pool] = {}
        for fmt in self.formats.values:
            for tok in _TOKEN_RE.findall(fmt):
                if tok not in self._tokens:
                    self._tokens[tok] = self._token_pool(person, tok)
        self.free_domains = Pool(getattr(internet, "free_email_domains", ("example.com",)))
        self.tlds = Pool(getattr(internet, "tlds", ("com",)))
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
        labels = [p for p in map(ascii_label, parts) if p]
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

    def _token_pool(self, person: Any, token: str) -> Pool:
        for attr in (token + "s", token + "es"):
            data = getattr(person, attr, None)
            if isinstance(data, (dict, list, tuple)) and data:
                return Pool(data)
        # No plain data list (a computed token): sample the Faker method once, at
        # a fixed seed, into a pool.
        faker = self.faker if hasattr(self.faker, token) else self.full_faker
        method = getattr(faker, token)
        faker.seed_instance(0)
        return Pool([str(method()) for _ in range(64)])

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


_LOCALES: dict[str, Locale] = {}
_LOCALES_LOCK = threading.Lock()


def locale_data(code: str) -> Locale:
    """The locale's data, loaded on first use and kept for the process."""
    loc = _LOCALES.get(code)
    if loc is None:
        with _LOCALES_LOCK:
            loc = _LOCALES.get(code)
            if loc is None:
                loc = _LOCALES[code] = Locale(code)
    return loc


@lru_cache(maxsize=256)
def faker_has_locale(code: str) -> bool:
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
            (providers / p.rsplit(".", 1)[1] / name / "__init__.py").is_file() for p in PROVIDERS
        ):
            return True
    return False
