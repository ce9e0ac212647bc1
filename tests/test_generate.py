"""Tests of the faker-driven message generator (fakepop3.generate)."""

from __future__ import annotations

import base64
import binascii
import datetime as dt
import email.policy
import hashlib
import re
import subprocess
import sys
from email.message import EmailMessage
from email.parser import BytesParser
from email.utils import format_datetime, parsedate_to_datetime
from typing import Any

import pytest

from fakepop3.generate import (
    MIN_SIZE_FLOOR,
    GeneratedMail,
    HookContext,
    generate_message,
    generate_messages,
)

PARSER = BytesParser(policy=email.policy.default)


def parse(raw: bytes) -> EmailMessage:
    msg = PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    return msg


def all_defects(msg: EmailMessage) -> list[str]:
    """Defects of every part and every header; also decode every leaf part."""
    found: list[str] = []
    for part in msg.walk():
        found += [f"part: {d!r}" for d in part.defects]
        for name, value in part.items():
            found += [f"{name}: {d!r}" for d in getattr(value, "defects", ())]
        if not part.is_multipart():
            part.get_content()  # raises on a bad charset or encoding
    return found


def digest(mail: GeneratedMail) -> str:
    h = hashlib.sha256()
    for raw in mail:
        h.update(raw)
    return h.hexdigest()


# --------------------------------------------------------------------- determinism


def test_same_seed_same_bytes_in_another_process() -> None:
    here = digest(generate_messages(60, seed=1234, non_ascii=0.5))
    code = (
        "import hashlib; from fakepop3.generate import generate_messages as g\n"
        "h = hashlib.sha256()\n"
        "for raw in g(60, seed=1234, non_ascii=0.5): h.update(raw)\n"
        "print(h.hexdigest())\n"
    )
    for hashseed in ("1", "2"):
        out = subprocess.run(
            [sys.executable, "-c", code],
            capture_output=True,
            text=True,
            check=True,
            env={"PYTHONHASHSEED": hashseed, "PATH": ""},
        )
        assert out.stdout.strip() == here


def test_different_seeds_differ() -> None:
    a = generate_messages(5, seed=1)
    b = generate_messages(5, seed=2)
    assert all(x != y for x, y in zip(a, b, strict=True))


def test_message_k_independent_of_count_and_order() -> None:
    big = generate_messages(200, seed=9)
    small = generate_messages(30, seed=9)
    assert [small[k] for k in (29, 3, 17, 0)] == [big[k] for k in (29, 3, 17, 0)]
    backwards = generate_messages(200, seed=9, cache_size=0)
    for k in range(199, 149, -1):  # reverse order, cold caches
        assert backwards[k] == big[k]
    assert generate_message(123, seed=9) == big[123]


def test_sequence_protocol() -> None:
    mail = generate_messages(7, seed=3)
    assert len(mail) == 7
    assert mail[-1] == mail[6]
    assert mail[2:4] == [mail[2], mail[3]]
    assert list(mail) == [mail[k] for k in range(7)]
    with pytest.raises(IndexError):
        mail[7]
    assert "seed=3" in repr(mail)


def test_large_mailbox_is_lazy_and_sizes_are_exact_without_building() -> None:
    mail = generate_messages(100_000, seed=5, cache_size=0)
    total = mail.total_size()
    sizes = mail.sizes()
    assert total == sum(sizes)
    for k in (0, 1, 77_777, 99_999):
        assert len(mail[k]) == mail.size(k) == sizes[k]
    assert mail.message_id(99_999) in mail[99_999].decode("ascii", "replace")


def test_sizes_in_one_pass_match_size_and_need_no_faker() -> None:
    code = (
        "import sys; from fakepop3.generate import generate_messages as g\n"
        "mail = g(50_000, seed=77, min_size=1500, max_size=9000)\n"
        "sizes = mail.sizes()\n"
        "assert sizes == [mail.size(k) for k in range(50_000)]\n"
        "assert all(1500 <= s <= 9000 for s in sizes) and len(set(sizes)) > 5000\n"
        "print(sum(sizes), 'faker' in sys.modules)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], capture_output=True, text=True, check=True
    ).stdout.split()
    assert out[1] == "False"  # a first STAT imports no Faker and loads no locale
    mail = generate_messages(50_000, seed=77, min_size=1500, max_size=9000, cache_size=0)
    assert int(out[0]) == mail.total_size()
    for k in (0, 1, 49_999):
        assert len(mail[k]) == mail.size(k)

    def hook(ctx: HookContext, raw: bytes) -> bytes:
        return raw + b"x" * ctx.index

    hooked = generate_messages(3, seed=77, hook=hook)
    assert hooked.sizes() == [len(hooked[k]) for k in range(3)]


def test_unknown_locale_fails_when_the_generator_is_made() -> None:
    with pytest.raises(AttributeError, match="xx_YY"):
        generate_messages(1, locale=["en_US", "xx_YY"])


# --------------------------------------------------------------------- pinned output

MIXED_LOCALES = ("de_DE", "fr_FR", "ja_JP", "en_US")

#: sha256 of the first 200 messages (each prefixed by its length) per knob set, from the
#: generator as it was before it became a package (Faker 40.63.0; the same on Python
#: 3.11, 3.12 and 3.13).  A change of any digest is a change of the generated mail: only
#: a deliberate one, noted in the changelog, may update them.
PINNED: dict[str, tuple[dict[str, Any], str]] = {
    "seed0-en": ({"seed": 0}, "5cbfaf77161fa1d41e6ae8b5cf20309854c541126c525012920b102d473dcb43"),
    "seed1234-en": (
        {"seed": 1234},
        "3b7be5b1bf90409fedcf7457c062d071b3bce7b2182ea7a599e6b51ef3078efc",
    ),
    "seed987654321-en": (
        {"seed": 987654321},
        "b885217abaadb537118d6646b4b764540988e1d52d909edaa2dfc6a99ec0a77c",
    ),
    "seed0-mixed": (
        {"seed": 0, "locale": MIXED_LOCALES},
        "950c721c14bcc2548a5c8337f984f8ce1c3cc91a171a0cd5620e6f84aec3d5a6",
    ),
    "seed1234-mixed": (
        {"seed": 1234, "locale": MIXED_LOCALES},
        "ccc09a67d8fff589ee06f942cefabc70e640fd32e5c394d98e302b427b2f0570",
    ),
    "seed987654321-mixed": (
        {"seed": 987654321, "locale": MIXED_LOCALES},
        "c40d019a1799d227f4313f5c90e58566bf30f388a10489b502207d6b8b8d0003",
    ),
    "rich-big": (
        {
            "seed": 5,
            "html": 1.0,
            "attachments": 1.0,
            "min_size": 8000,
            "max_size": 40000,
            "threads": 0.6,
        },
        "94974b4ca07a42ffd930c824d4c9f0da62b832d1ef0b28777d1ed7cca4e47f27",
    ),
    "all-non-ascii": (
        {
            "seed": 6,
            "non_ascii": 1.0,
            "dot_lines": 1.0,
            "locale": ("ru_RU", "el_GR"),
            "non_ascii_locales": ("pl_PL", "cs_CZ", "zh_CN"),
        },
        "cd67527b7839cb4e4710271dce08a7660688e523e3aeb274af3deecb61749d59",
    ),
    "small-plain": (
        {
            "seed": 7,
            "min_size": 1024,
            "max_size": 1500,
            "html": 0.0,
            "attachments": 0.0,
            "threads": 0.0,
            "non_ascii": 0.0,
            "dot_lines": 0.0,
            "start": dt.date(2001, 2, 3),
            "end": dt.datetime(2001, 3, 4, 5, 6, 7),
        },
        "42a2415745db5b054bb3173a0b037d44881898e1cb84e092d0dc977f71d065a5",
    ),
    "tight-squeeze": (
        {
            "seed": 8,
            "min_size": 1024,
            "max_size": 1100,
            "html": 1.0,
            "attachments": 1.0,
            "non_ascii": 0.7,
            "threads": 0.9,
            "start": 0,
            "end": 86400 * 365,
        },
        "77a7789c0ce998e0b53fa843eec98de85393c9092d24be5eb3f50359e36c1120",
    ),
}

#: Tiny messages full of parts: most need several rungs of the shrinking ladder.
TINY: dict[str, Any] = {
    "min_size": 1024,
    "max_size": 1030,
    "non_ascii": 1.0,
    "threads": 0.9,
    "html": 1.0,
    "attachments": 1.0,
}


def pinned_digest(mail: GeneratedMail) -> str:
    h = hashlib.sha256()
    for raw in mail:
        h.update(len(raw).to_bytes(4, "big"))
        h.update(raw)
    return h.hexdigest()


@pytest.mark.parametrize("name", sorted(PINNED))
def test_pinned_seeds_give_the_same_bytes(name: str) -> None:
    knobs, expected = PINNED[name]
    assert pinned_digest(generate_messages(200, **knobs)) == expected


def test_pinned_hook_output() -> None:
    def hook(ctx: HookContext, raw: bytes) -> bytes | str | None:
        if ctx.index % 3 == 0:
            return None
        extra = f"X-Hook: {ctx.random.random()!r} {ctx.faker.name()}\r\n"
        if ctx.index % 3 == 1:
            return extra + raw.decode("ascii", "surrogateescape")[:200]
        return raw.replace(b"\r\nSubject: ", ("\r\n" + extra + "Subject: ").encode(), 1)

    mail = generate_messages(30, seed=9, hook=hook)
    assert pinned_digest(mail) == "0ee384ccc7609d456fef21bd8ff6c222088cc332b159cd19c66628b4ece5428d"


def test_pinned_sizes_and_lone_messages() -> None:
    import json

    mail = generate_messages(200_000, seed=11, min_size=1500, max_size=90000)
    sizes = json.dumps(mail.sizes()[::997]).encode()
    assert hashlib.sha256(sizes).hexdigest() == (
        "933d051ae02c23975b6d60c0b85e5ace937388f0f188952410a04ff7304f285d"
    )
    lone = generate_message(77_777, seed=11, min_size=1500, max_size=90000)
    assert (
        hashlib.sha256(lone).hexdigest()
        == "3871d4cffe7bd65a9e1daf252d74623f22ef445b04c15260e89da72d0bd4f8fa"
    )
    # Two messages that fit only on the rarest rungs of the shrinking ladder: one with a
    # single recipient kept, one with its subject cut (found by instrumenting the ladder).
    one_rcpt = generate_message(1183, seed=2, locale="en_US", **TINY)
    assert hashlib.sha256(one_rcpt).hexdigest() == (
        "9561e8c36fdd2def75d84b5e0eef3038a2139b5a00c2558965eb98005cfedff2"
    )
    cut = generate_message(1015, seed=1, locale=("ja_JP", "zh_CN", "ru_RU", "el_GR"), **TINY)
    assert hashlib.sha256(cut).hexdigest() == (
        "6c755ae3d1c2f173854790a469841b41f631b27c88a6b0b6434cf6e3d592533e"
    )


def test_the_pinned_messages_land_on_every_rung_of_the_ladder(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    """The pins above cover every rung of the shrinking ladder (so each rung's output is pinned)."""
    from fakepop3.mail._generate import _build

    rendered: list[int] = []
    fitted: list[int] = []
    render, fill = _build.MessageGenerator._render, _build._fill

    def spy_render(self: _build.MessageGenerator, *args: Any) -> Any:
        rendered.append(_build._LADDER.index(args[-1]))
        return render(self, *args)

    def spy_fill(*args: Any) -> bytes:
        fitted.append(rendered[-1])  # the last rung rendered is the one that fits
        return fill(*args)

    monkeypatch.setattr(_build.MessageGenerator, "_render", spy_render)
    monkeypatch.setattr(_build, "_fill", spy_fill)
    for name in ("seed0-mixed", "tight-squeeze"):
        list(generate_messages(200, **PINNED[name][0]))
    generate_message(1183, seed=2, locale="en_US", **TINY)
    generate_message(1015, seed=1, locale=("ja_JP", "zh_CN", "ru_RU", "el_GR"), **TINY)
    assert sorted(set(fitted)) == list(range(len(_build._LADDER)))


# --------------------------------------------------------------------- parsing


COMPAT32 = BytesParser(policy=email.policy.compat32)
ENCODED_WORD = re.compile(r"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
EW_START = re.compile(r"=\?(?!=)")  # not the "=?=" of "...==?=" (base64 padding, then the end)
Q_PHRASE = re.compile(r"[A-Za-z0-9!*+\-/=_]*")  # RFC 2047 5(3): what a phrase's Q word may hold


def encoded_word_defects(name: str, value: str) -> list[str]:
    """Every ``=?`` starts a well-formed encoded word that decodes strictly."""
    found: list[str] = []
    words = list(ENCODED_WORD.finditer(value))
    if len(words) != len(EW_START.findall(value)):
        found.append(f"{name}: a malformed encoded word in {value!r}")
    for m in words:
        charset, kind, text = m.group(1), m.group(2).lower(), m.group(3)
        where = f"{name}: {m.group(0)!r}"
        if len(m.group(0)) > 75:
            found.append(f"{where} is longer than 75 characters")
        if m.start() > 0 and value[m.start() - 1] not in " \t\n":
            found.append(f"{where} is not preceded by white space")
        if m.end() < len(value) and value[m.end()] not in " \t\r":
            found.append(f"{where} is not followed by white space")
        try:
            if kind == "b":
                data = base64.b64decode(text, validate=True)
            else:
                if name.lower() != "subject" and not Q_PHRASE.fullmatch(text):
                    found.append(f"{where}: characters a phrase may not hold")
                data = binascii.a2b_qp(text.replace("_", " "), header=True)
            data.decode(charset)
        except (ValueError, LookupError) as error:
            found.append(f"{where}: {error}")
    return found


def fast_defects(raw: bytes) -> tuple[list[str], set[str]]:
    """What the structure of a message gets wrong, cheaply; and its features.

    compat32's parser is about 10x faster than the default policy's and records
    the same MIME structure defects (boundaries, multipart, base64 bodies); header
    syntax is what it does not parse, so encoded words are checked here and the
    full parse of a sample (see below) covers the rest. Text is decoded strictly
    (the default policy's get_content() would replace undecodable bytes).
    """
    found: list[str] = []
    feats: set[str] = set()
    if not raw.split(b"\r\n\r\n", 1)[0].isascii():
        found.append("8-bit data in the header")
    if re.search(rb"\r\n\.", raw):
        feats.add("dot line")
    msg = COMPAT32.parsebytes(raw)
    for part in msg.walk():
        ctype = part.get_content_type()
        cte = str(part.get("Content-Transfer-Encoding", "7bit")).lower()
        feats.add(f"{ctype} {cte}")
        for name, value in part.items():
            found += encoded_word_defects(name, value)
            for m in ENCODED_WORD.finditer(value):
                feats.add(f"{name} {m.group(1).lower()} {m.group(2).lower()}")
            if name == "Date" and format_datetime(parsedate_to_datetime(value)) != value:
                found.append(f"Date: {value!r} does not round-trip")  # the parser lets "+05:30" by
            if name in ("Cc", "Reply-To", "In-Reply-To", "Content-ID"):
                feats.add(name)
            if name in ("From", "To", "Cc", "Reply-To") and '"' in value:
                feats.add("quoted display name")
            if name == "Content-Disposition":
                feats.add(
                    f"{ctype} {value.split(';')[0]}{' 2231' if 'filename*=' in value else ''}"
                )
        if not part.is_multipart():
            payload = part.get_payload(decode=True)  # records base64 defects on the part
            assert isinstance(payload, bytes)
            if cte == "7bit" and not payload.isascii():
                found.append(f"{ctype}: 8-bit data in a 7bit part")
            if part.get_content_maintype() == "text":
                charset = part.get_content_charset("us-ascii")
                feats.add(f"{ctype} {charset} {cte}")
                try:
                    payload.decode(charset)
                except (UnicodeDecodeError, LookupError) as error:
                    found.append(f"{ctype}: {error}")
        found += [f"{ctype}: {d!r}" for d in part.defects]
    return found, feats


def test_no_defects_over_thousands_of_messages() -> None:
    """2,000 messages pass the fast check; a sample that has every feature seen in
    them (2 messages each: every part type, transfer encoding and charset, every
    encoded-word charset and B/Q in every header, RFC 2231 names, inline parts,
    replies, Cc, Reply-To, quoted names, dot lines, every locale and size range)
    plus every 40th message parses without defects with the default policy, which
    also parses every header. (Breaking any one branch of the generator fails
    this test: either check catches it.)"""
    checked = 0
    first_with: dict[str, list[bytes]] = {}
    every_40th: list[bytes] = []
    sizes = (1024, 4000), (2000, 12_000), (1024, 2000), (4000, 30_000)
    for seed, (lo, hi) in enumerate(sizes * 2):
        mail = generate_messages(
            250,
            seed=seed,
            min_size=lo,
            max_size=hi,
            non_ascii=0.5,
            attachments=0.5,
            html=0.6,
            locale=("en_US", "fr_FR", "ja_JP") if seed % 2 else "en_US",
            cache_size=0,
        )
        for k, raw in enumerate(mail):
            assert raw.endswith(b"\r\n")
            assert b"\n" not in raw.replace(b"\r\n", b"")
            assert max(len(line) for line in raw.split(b"\r\n")) <= 998
            assert len(raw) == mail.size(k)
            assert lo <= len(raw) <= hi
            found, feats = fast_defects(raw)
            assert found == [], (seed, k, found)
            plan = mail.generator.plan(k)
            feats |= {f"locale {plan.locale}", f"size range {lo}", f"reply {plan.depth > 0}"}
            for feat in feats:
                if len(first_with.setdefault(feat, [])) < 2:
                    first_with[feat].append(raw)
            if checked % 40 == 0:
                every_40th.append(raw)
            checked += 1
    assert checked == 2000
    # Every branch of the generator shows up among the features.
    assert len(first_with) > 100, sorted(first_with)
    sample = {hashlib.sha256(raw).digest(): raw for raws in first_with.values() for raw in raws}
    sample.update((hashlib.sha256(raw).digest(), raw) for raw in every_40th)
    for raw in sample.values():
        assert all_defects(parse(raw)) == [], raw[:2000]


def test_headers_are_complete_and_rfc2047_decodes() -> None:
    mail = generate_messages(200, seed=11, non_ascii=1.0, threads=0.0)
    for raw in mail:
        msg = parse(raw)
        for name in ("From", "To", "Subject", "Date", "Message-ID", "MIME-Version"):
            assert msg[name], name
        head = raw.split(b"\r\n\r\n", 1)[0]
        assert head.isascii()
        assert b"=?" in head  # encoded words
        assert not str(msg["Subject"]).isascii() or not str(msg["From"]).isascii()
        assert isinstance(msg["Date"].datetime, dt.datetime)


def test_body_features_appear() -> None:
    mail = generate_messages(200, seed=21, non_ascii=0.5, attachments=0.7, html=0.7)
    ctes: set[str] = set()
    charsets: set[str] = set()
    types: set[str] = set()
    inline = filenames_2231 = dot_lines = 0
    for raw in mail:
        msg = parse(raw)
        for part in msg.walk():
            types.add(part.get_content_type())
            if not part.is_multipart():
                ctes.add(str(part.get("Content-Transfer-Encoding", "7bit")).lower())
                if part.get_content_maintype() == "text":
                    charsets.add(str(part.get_content_charset()))
            if part.get("Content-ID"):
                inline += 1
            if "filename*=" in str(part.get("Content-Disposition", "")) or b"filename*=" in raw:
                filenames_2231 += 1
        if re.search(rb"\r\n\.", raw):
            dot_lines += 1
    assert {"7bit", "8bit", "quoted-printable", "base64"} <= ctes
    assert {"text/plain", "text/html", "multipart/alternative", "multipart/mixed"} <= types
    assert {"multipart/related", "text/csv", "application/pdf", "image/png"} <= types
    assert {"image/jpeg", "application/json", "text/calendar"} <= types
    assert len(charsets - {"utf-8", "us-ascii"}) >= 3  # legacy charsets too
    assert inline > 0
    assert filenames_2231 > 0
    assert dot_lines > 0


def test_attachments_have_real_types_and_names() -> None:
    mail = generate_messages(100, seed=4, attachments=1.0, min_size=8000, max_size=30_000)
    seen = 0
    for raw in mail:
        for part in parse(raw).iter_attachments():
            name = part.get_filename()
            assert name and "." in name
            data = part.get_content()
            ctype = part.get_content_type()
            if ctype == "image/png":
                assert data[:8] == b"\x89PNG\r\n\x1a\n"
            elif ctype == "application/pdf":
                assert data.startswith(b"%PDF-") and data.rstrip().endswith(b"%%EOF")
            elif ctype == "image/jpeg":
                assert data[:2] == b"\xff\xd8" and data[-2:] == b"\xff\xd9"
            elif ctype == "text/csv":
                assert data.startswith("id,name,email,amount,date")
            seen += 1
    assert seen >= 100


def test_threads_reference_earlier_messages() -> None:
    mail = generate_messages(150, seed=8, threads=0.6)
    ids = [str(parse(raw)["Message-ID"]) for raw in mail]
    assert len(set(ids)) == len(ids)
    replies = 0
    for k, raw in enumerate(mail):
        msg = parse(raw)
        parent = msg["In-Reply-To"]
        if parent is None:
            continue
        replies += 1
        refs = str(msg["References"]).split()
        assert refs[-1] == str(parent)
        p = ids.index(str(parent))
        assert p < k
        assert str(msg["Subject"]).startswith("Re: ")
        pmsg = parse(mail[p])
        assert msg["Date"].datetime >= pmsg["Date"].datetime
        sender = pmsg["From"].addresses[0].addr_spec
        assert sender in [a.addr_spec for a in msg["To"].addresses]
    assert 60 < replies < 120


# --------------------------------------------------------------------- knobs


def count(mail: GeneratedMail, pred: object) -> int:
    assert callable(pred)
    return sum(1 for raw in mail if pred(raw))


def has_html(raw: bytes) -> bool:
    return b"Content-Type: text/html" in raw


def has_attachment(raw: bytes) -> bool:
    return b"Content-Disposition: attachment" in raw


def test_html_knob() -> None:
    assert count(generate_messages(100, seed=1, html=0.0), has_html) == 0
    assert count(generate_messages(100, seed=1, html=1.0), has_html) >= 95


def test_attachments_knob() -> None:
    assert count(generate_messages(100, seed=1, attachments=0.0), has_attachment) == 0
    n = count(generate_messages(100, seed=1, attachments=1.0, min_size=5000), has_attachment)
    assert n >= 90


def test_threads_knob() -> None:
    def reply(raw: bytes) -> bool:
        return b"\r\nIn-Reply-To: " in raw

    assert count(generate_messages(100, seed=1, threads=0.0), reply) == 0
    assert count(generate_messages(100, seed=1, threads=1.0), reply) == 99  # all but the first


def test_non_ascii_knob() -> None:
    def encoded(raw: bytes) -> bool:
        return b"=?" in raw.split(b"\r\n\r\n", 1)[0]

    assert count(generate_messages(100, seed=1, non_ascii=0.0), encoded) == 0
    assert count(generate_messages(100, seed=1, non_ascii=1.0), encoded) == 100


def test_dot_lines_knob() -> None:
    def dotted(raw: bytes) -> bool:
        return b"\r\n." in raw

    assert count(generate_messages(100, seed=1, dot_lines=0.0), dotted) == 0
    assert count(generate_messages(100, seed=1, dot_lines=1.0), dotted) == 100


def test_size_knobs() -> None:
    mail = generate_messages(100, seed=2, min_size=3000, max_size=3100)
    assert all(3000 <= len(raw) <= 3100 for raw in mail)
    big = generate_messages(20, seed=2, min_size=50_000, max_size=60_000)
    assert all(50_000 <= len(raw) <= 60_000 for raw in big)
    with pytest.raises(ValueError, match="min_size"):
        generate_messages(1, min_size=MIN_SIZE_FLOOR - 1)
    with pytest.raises(ValueError, match="max_size"):
        generate_messages(1, min_size=5000, max_size=4000)


def test_date_range_knob() -> None:
    start = dt.datetime(2010, 5, 1, tzinfo=dt.timezone.utc)
    end = dt.datetime(2010, 5, 8, tzinfo=dt.timezone.utc)
    mail = generate_messages(100, seed=3, start=start, end=end)
    for raw in mail:
        when = parse(raw)["Date"].datetime
        assert start <= when < end
    with pytest.raises(ValueError, match="after start"):
        generate_messages(1, start=end, end=start)


def test_locale_knob() -> None:
    de = generate_messages(30, seed=4, locale="de_DE", non_ascii=0.0)
    en = generate_messages(30, seed=4, locale="en_US", non_ascii=0.0)
    assert de[0] != en[0]
    assert any("ä" in str(parse(r)["From"]) or "ü" in str(parse(r)["From"]) for r in de)
    ja = generate_messages(10, seed=4, locale="ja_JP", non_ascii=0.0)
    assert all(not str(parse(raw)["From"]).isascii() for raw in ja)
    mixed = generate_messages(60, seed=4, locale=["ja_JP", "en_US"], non_ascii=0.0)
    kinds = {str(parse(raw)["From"]).isascii() for raw in mixed}
    assert kinds == {True, False}


def test_shares_out_of_range_are_rejected() -> None:
    with pytest.raises(ValueError, match="html"):
        generate_messages(1, html=1.5)
    with pytest.raises(ValueError, match="locale"):
        generate_messages(1, locale=[])


def test_knobs_are_checked_in_one_function_with_the_same_defaults_everywhere() -> None:
    import inspect

    from fakepop3.generate import MessageGenerator
    from fakepop3.mail._generate import check_knobs

    def defaults(fn: Any) -> dict[str, Any]:
        params = inspect.signature(fn).parameters.values()
        return {p.name: p.default for p in params if p.kind is inspect.Parameter.KEYWORD_ONLY}

    knobs = defaults(check_knobs)
    assert list(knobs) == [
        "seed",
        "locale",
        "start",
        "end",
        "min_size",
        "max_size",
        "html",
        "attachments",
        "threads",
        "non_ascii",
        "dot_lines",
        "broken",
        "non_ascii_locales",
        "hook",
        "cache_size",
    ]
    assert defaults(generate_messages) == knobs
    from fakepop3._knobs import KNOBS

    assert knobs == {knob.name: knob.default for knob in KNOBS}
    without_cache = {k: v for k, v in knobs.items() if k != "cache_size"}
    assert defaults(generate_message) == without_cache
    assert defaults(MessageGenerator.__init__) == without_cache
    checked = check_knobs(locale="fr_FR", start=dt.date(2020, 1, 1), end=1_600_000_000)
    assert checked["locale"] == ("fr_FR",)
    assert (checked["start"], checked["end"]) == (1_577_836_800, 1_600_000_000)
    assert check_knobs(non_ascii_locales=())["non_ascii_locales"] == ("de_DE",)
    assert check_knobs(html=1, min_size=1024.0)["html"] == 1.0  # type: ignore[arg-type]
    bad: list[tuple[dict[str, Any], str]] = [
        ({"locale": ()}, "locale: give at least one Faker locale"),
        ({"start": 10, "end": 10}, "end (10) must be after start (10)"),
        ({"min_size": 1000}, "min_size must be at least 1024 octets, got 1000"),
        ({"min_size": 3000, "max_size": 2999}, "max_size (2999) must not be below min_size (3000)"),
        ({"dot_lines": -0.1}, "dot_lines is a share between 0 and 1, got -0.1"),
        ({"threads": 2}, "threads is a share between 0 and 1, got 2"),
    ]
    for knob, message in bad:
        with pytest.raises(ValueError) as error:
            check_knobs(**knob)
        assert str(error.value) == message
        with pytest.raises(ValueError) as error:
            generate_messages(1, **knob)
        assert str(error.value) == message
    with pytest.raises(TypeError, match="bogus"):
        check_knobs(bogus=1)  # type: ignore[call-arg]


# --------------------------------------------------------------------- hook


def test_hook_customises_and_replaces() -> None:
    seen: list[int] = []

    def hook(ctx: HookContext, raw: bytes) -> bytes | str | None:
        seen.append(ctx.index)
        if ctx.index == 0:
            return None  # keep
        if ctx.index == 1:
            return f"Subject: replaced {ctx.faker.word()}\r\n\r\nbody\r\n"
        return raw.replace(
            b"\r\nSubject: ", f"\r\nX-Hook: {ctx.random.random()}\r\nSubject: ".encode()
        )

    plain = generate_messages(3, seed=6)
    hooked = generate_messages(3, seed=6, hook=hook)
    assert hooked[0] == plain[0]
    assert hooked[1].startswith(b"Subject: replaced ")
    assert hooked.size(1) == len(hooked[1])
    assert b"\r\nX-Hook: 0." in hooked[2]
    assert seen == [0, 1, 2]
    again = generate_messages(3, seed=6, hook=hook)
    assert list(again) == list(hooked)  # the hook's randomness is seeded too


def test_hook_must_return_bytes() -> None:
    def hook(ctx: HookContext, raw: bytes) -> bytes | str | None:
        return 42  # type: ignore[return-value]

    with pytest.raises(TypeError, match="hook"):
        generate_message(0, hook=hook)
