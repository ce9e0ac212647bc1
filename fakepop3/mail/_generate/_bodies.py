"""Leaf bodies: the text/plain part, its HTML alternative and the attachments.

Rules a maintainer must keep:

* Draw order is part of the output.  The text and HTML parts draw nothing: their
  choices come as rolls drawn once by the builder, so every rung of the size
  ladder makes the same choices.  :func:`attachment` draws from the attachment
  stream the builder reseeds on every rung, in a fixed order; never reorder,
  add or drop a draw (the pinned digests in ``tests/test_generate.py`` catch it).
* A text part leaves room for padding: :func:`text_part` returns the offset
  where the builder's filler goes, so the part stays valid in every encoding.
* Every part parses without defects with ``email.policy.default``.
"""

from __future__ import annotations

import html as _html
import json
import random

from ._locale import LABEL_RE, Locale, transliterate
from ._mime import Part, b64_body, jpeg, pdf, png, qp, raw_for_b64
from ._text import CRLF, filler

__all__ = ["attachment", "charset_cte", "html_part", "text_part"]

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


def _json_str(text: str) -> str:
    """A JSON string literal (non-ASCII kept as it is)."""
    return json.dumps(text, ensure_ascii=False)


def text_part(
    paras: list[list[str]],
    greeting: str,
    dot_line: str | None,
    sender_name: str,
    charset_roll: float,
    cte_roll: float,
) -> tuple[Part, int]:
    """The text/plain part and where in its body the padding goes (before the name)."""
    lines = [greeting, ""]
    for p in paras:
        lines.extend(p)
        lines.append("")
    main = CRLF.join(lines) + CRLF
    name_line = (sender_name or "-") + CRLF
    text = main + name_line
    charset, cte = charset_cte(text, charset_roll, cte_roll)
    enc_main = main.encode(charset)
    enc_name = name_line.encode(charset)
    if cte == "quoted-printable":
        enc_main, enc_name = qp(enc_main), qp(enc_name)
    raw_lines = (dot_line + CRLF).encode("ascii") if dot_line is not None else b""
    body = enc_main + raw_lines + enc_name
    headers = [
        f'Content-Type: text/plain; charset="{charset}"',
        f"Content-Transfer-Encoding: {cte}",
    ]
    return Part(headers, body), len(enc_main) + len(raw_lines)


def charset_cte(text: str, charset_roll: float, cte_roll: float) -> tuple[str, str]:
    """The charset and transfer encoding of a text part, from the message's two rolls."""
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


def html_part(
    paras: list[list[str]],
    greeting: str,
    sender_name: str,
    charset_roll: float,
    cte_roll: float,
    cid: str | None,
) -> Part:
    """The text/html alternative of the same text (with an inline image if ``cid``)."""
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
    parts.append(f"<p>&mdash;<br>{_html.escape(sender_name or '-')}</p>")
    parts.append("</body></html>")
    text = CRLF.join(parts) + CRLF
    charset, cte = charset_cte(text, charset_roll, cte_roll)
    text = text.replace("{charset}", charset)
    data = text.encode(charset)
    if cte_roll < 0.4:
        cte = "base64"
        body = b64_body(data)
    elif cte == "quoted-printable" or (cte == "7bit" and cte_roll > 0.8):
        cte = "quoted-printable"
        body = qp(data)
    else:
        body = data
    return Part(
        [f'Content-Type: text/html; charset="{charset}"', f"Content-Transfer-Encoding: {cte}"],
        body,
    )


def attachment(rng: random.Random, share: int, loc: Locale, i: int) -> Part | None:
    """Attachment ``i``: a random kind of at most ``share`` octets, or ``None`` if none fits."""
    kind = int(rng.random() * 9)
    words = loc.words
    stem = "-".join(rng.choice(words) for _ in range(1 + int(rng.random() * 2)))
    ascii_stem = LABEL_RE.sub("-", transliterate(stem).lower()).strip("-") or f"file{i}"
    budget = share - 200
    if budget < 60:
        return None
    text_payload: str | None = None
    if kind == 0:
        ext, ctype = "txt", "text/plain"
        text_payload = filler().block(rng, max(2, int(budget * 0.7)))
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
        text_payload = "{" + CRLF + ' "items": [' + CRLF + ("," + CRLF).join(items) + CRLF + " ]"
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
        data = pdf(rng, raw_for_b64(budget))
    elif kind == 6:
        ext, ctype = "png", "image/png"
        data = png(rng, raw_for_b64(budget))
    elif kind == 7:
        ext, ctype = "jpg", "image/jpeg"
        data = jpeg(rng, raw_for_b64(budget))
    else:
        ext, ctype = "bin", "application/octet-stream"
        data = rng.randbytes(raw_for_b64(budget))
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
            body = qp(data)
        else:
            headers.append(f"Content-Type: {ctype}; charset=utf-8")
            headers.append("Content-Transfer-Encoding: base64")
            body = b64_body(data)
    else:
        headers.append(f"Content-Type: {ctype}")
        headers.append("Content-Transfer-Encoding: base64")
        body = b64_body(data)
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
    part = Part(headers, body)
    return part if len(part.render()) <= share else None
