"""``fakepop3 record --anonymize --seed N``: rewrite a capture so that it can be committed.

Names, addresses, subjects and bodies are replaced with Faker's (seeded: the same capture and
seed give the same output), and everything a client's parser depends on is kept: the MIME
structure (every header of a part that is not about people: Content-*, MIME-Version, the
boundaries), the header order, the dates, base64 and quoted-printable framing, line lengths
and so the sizes (within a few percent: only addresses change length).  The same address
becomes the same fake one in every message, the persona file and the transcript.

Rules: work on the bytes, line by line (never parse and re-serialise: that would refold
headers and change sizes); replace a word by one of the same length; leave alone what is not
text about people.
"""

from __future__ import annotations

import base64
import random
import re
from collections.abc import Callable

__all__ = ["Anonymizer"]

_ADDRESS = re.compile(rb"[A-Za-z0-9._%+\-=]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+")
_WORD = re.compile(rb"[A-Za-z]+")
_TAG = re.compile(rb"<[^<>]*>|&[A-Za-z]+;")
_QP_ESCAPE = re.compile(rb"=[0-9A-Fa-f]{2}|=$")
_ENCODED_WORD = re.compile(rb"=\?[^?\s]+\?[bBqQ]\?[^?\s]*\?=")
_BOUNDARY = re.compile(rb'boundary\s*=\s*(?:"([^"]+)"|([^\s;]+))', re.IGNORECASE)
#: Headers about people, subjects or routes: their words and addresses are rewritten.
_PEOPLE = frozenset(
    b.lower()
    for b in (
        b"From",
        b"To",
        b"Cc",
        b"Bcc",
        b"Reply-To",
        b"Sender",
        b"Return-Path",
        b"Delivered-To",
        b"X-Original-To",
        b"Subject",
        b"Thread-Topic",
        b"Comments",
        b"Keywords",
        b"Disposition-Notification-To",
        b"Resent-From",
        b"Resent-To",
        b"Resent-Cc",
        b"Received",
        b"X-Sender",
        b"X-Receiver",
        b"Envelope-To",
        b"X-Envelope-From",
    )
)
#: Headers whose addresses (message ids) are rewritten but whose words are kept.
_IDS = frozenset({b"message-id", b"in-reply-to", b"references", b"resent-message-id"})


class Anonymizer:
    """Consistent fake names and addresses for one capture, from one seed."""

    def __init__(self, seed: int, locale: str = "en_US") -> None:
        from faker import Faker

        self.fake = Faker(locale)
        self.fake.seed_instance(seed)
        self.random = random.Random(seed)
        self.addresses: dict[bytes, bytes] = {}
        self.domains: dict[bytes, bytes] = {}
        words: dict[int, list[bytes]] = {}
        for word in self.fake.words(3000):
            if word.isascii() and word.isalpha():
                words.setdefault(len(word), []).append(word.encode())
        self.words = {n: sorted(set(ws)) for n, ws in words.items()}

    # --- pieces ---------------------------------------------------------------------------
    def _domain(self, domain: bytes) -> bytes:
        key = domain.lower()
        if key not in self.domains:
            made = self.fake.domain_name().encode()
            while made in self.domains.values():
                made = self.fake.domain_name().encode()
            self.domains[key] = made
        return self.domains[key]

    def address(self, address: bytes) -> bytes:
        """The fake of an address (the same one each time)."""
        key = address.lower()
        if key not in self.addresses:
            domain = address.rpartition(b"@")[2]
            made_local = self.fake.user_name().encode()
            made = made_local + b"@" + self._domain(domain)
            while made.lower() in self.addresses.values() or made.lower() == key:
                made = self.fake.user_name().encode() + b"." + str(len(self.addresses)).encode()
                made += b"@" + self._domain(domain)
            self.addresses[key] = made
        return self.addresses[key]

    def word(self, word: bytes) -> bytes:
        """A word of the same length and case shape."""
        pool = self.words.get(len(word))
        if pool:
            made = bytearray(self.random.choice(pool))
        else:
            made = bytearray(self.random.choice(b"abcdefghijklmnopqrstuvwxyz") for _ in word)
        for i, c in enumerate(word):
            if 65 <= c <= 90 and 97 <= made[i] <= 122:
                made[i] -= 32
        return bytes(made)

    def _addresses(self, text: bytes) -> bytes:
        return _ADDRESS.sub(lambda m: self.address(m.group(0)), text)

    def _words(self, text: bytes, keep: Callable[[bytes], bool] = lambda w: False) -> bytes:
        """Replace the words of ``text`` that are not addresses (done first) or kept."""
        out, last = [], 0
        for match in _ADDRESS.finditer(text):
            out.append(self._plain_words(text[last : match.start()], keep))
            out.append(self.address(match.group(0)))
            last = match.end()
        out.append(self._plain_words(text[last:], keep))
        return b"".join(out)

    def _plain_words(self, text: bytes, keep: Callable[[bytes], bool]) -> bytes:
        def one(m: re.Match[bytes]) -> bytes:
            return m.group(0) if keep(m.group(0)) else self.word(m.group(0))

        def encoded(m: re.Match[bytes]) -> bytes:  # RFC 2047: replaced by plain fake text
            return b" ".join(self.word(b"x" * 6) for _ in range(max(1, len(m.group(0)) // 7)))

        text = _ENCODED_WORD.sub(encoded, text)
        return _WORD.sub(one, text)

    def text(self, text: str) -> str:
        """Addresses in a line of text (the transcript, the persona file) replaced."""
        return self._addresses(text.encode("utf-8", "surrogateescape")).decode(
            "utf-8", "surrogateescape"
        )

    # --- a message ------------------------------------------------------------------------
    def message(self, raw: bytes) -> bytes:
        lines = raw.split(b"\r\n")
        out: list[bytes] = []
        self._entity(lines, 0, len(lines), out)
        return b"\r\n".join(out)

    def _entity(self, lines: list[bytes], start: int, end: int, out: list[bytes]) -> None:
        """One MIME entity, lines[start:end]: its headers, then its body."""
        i = start
        name = b""
        content_type = b""
        encoding = b""
        while i < end and lines[i] != b"":
            line = lines[i]
            if line[:1] in (b" ", b"\t"):  # a folded header's continuation
                value = line
            else:
                name, _, value = line.partition(b":")
                name = name.strip().lower()
            if name == b"content-type":
                content_type += value
            if name == b"content-transfer-encoding":
                encoding = value.strip().lower()
            out.append(self._header(name, line, value))
            i += 1
        if i < end:
            out.append(b"")  # the empty line after the headers
            i += 1
        boundary = _BOUNDARY.search(content_type)
        if content_type.strip().lower().startswith(b"multipart") and boundary is not None:
            self._multipart(lines, i, end, boundary.group(1) or boundary.group(2), out)
        elif content_type.strip().lower().startswith(b"message/rfc822"):
            self._entity(lines, i, end, out)
        else:
            html = content_type.strip().lower().startswith(b"text/html")
            self._body(lines, i, end, encoding, out, html)

    def _header(self, name: bytes, line: bytes, value: bytes) -> bytes:
        head = line[: len(line) - len(value)]
        if name == b"received" and b";" in value:  # the route is rewritten, its date kept
            route, semicolon, date = value.rpartition(b";")
            return head + self._words(route, keep=_keep_header_word) + semicolon + date
        if name in _PEOPLE:
            return head + self._words(value, keep=_keep_header_word)
        if name in _IDS:
            return head + self._addresses(value)
        return head + self._addresses(value) if b"@" in value else line

    def _multipart(
        self, lines: list[bytes], start: int, end: int, boundary: bytes, out: list[bytes]
    ) -> None:
        delimiter, closing = b"--" + boundary, b"--" + boundary + b"--"
        marks = [j for j in range(start, end) if lines[j].rstrip() in (delimiter, closing)]
        if not marks:
            self._body(lines, start, end, b"", out)
            return
        self._body(lines, start, marks[0], b"", out)  # the preamble
        for here, following in zip(marks, [*marks[1:], end], strict=True):
            out.append(lines[here])
            if lines[here].rstrip() == closing:
                self._body(lines, here + 1, following, b"", out)  # the epilogue
            else:
                self._entity(lines, here + 1, following, out)

    def _body(
        self,
        lines: list[bytes],
        start: int,
        end: int,
        encoding: bytes,
        out: list[bytes],
        html: bool = False,
    ) -> None:
        rewrite = self._outside_tags if html else self._words
        for line in lines[start:end]:
            if encoding == b"base64" and line.strip():
                data = base64.b64decode(line + b"=" * (-len(line) % 4), validate=False)
                noise = bytes(self.random.getrandbits(8) for _ in data)
                out.append(
                    base64.b64encode(noise)[: len(line.rstrip(b"="))]
                    + line[len(line.rstrip(b"=")) :]
                )
            elif encoding == b"quoted-printable":
                pieces, last = [], 0
                for m in _QP_ESCAPE.finditer(line):
                    pieces.append(rewrite(line[last : m.start()]))
                    pieces.append(m.group(0))
                    last = m.end()
                pieces.append(rewrite(line[last:]))
                out.append(b"".join(pieces))
            else:
                out.append(rewrite(line))

    def _outside_tags(self, text: bytes) -> bytes:
        """HTML: the text between the tags rewritten, the tags kept."""
        out, last = [], 0
        for match in _TAG.finditer(text):
            out.append(self._words(text[last : match.start()]))
            out.append(self._addresses(match.group(0)))
            last = match.end()
        out.append(self._words(text[last:]))
        return b"".join(out)


#: Words of a header that stay: the reply/forward prefixes a client may parse, and the
#: keywords of Received lines.
_KEPT = frozenset(
    {b"Re", b"RE", b"Fwd", b"FW", b"Fw", b"AW", b"WG", b"from", b"by", b"with", b"id", b"for",
     b"via", b"ESMTP", b"ESMTPS", b"ESMTPSA", b"SMTP", b"LMTP", b"HTTP", b"HTTPS", b"envelope"}
)  # fmt: skip


def _keep_header_word(word: bytes) -> bool:
    return word in _KEPT
