"""Deliberately malformed messages: :func:`broken_message` and :data:`BROKEN_KINDS`.

Each kind is one defect that real mail has and that breaks parsers; :data:`BROKEN_KINDS`
says, for each, what a robust parser should do with it.  The generator mixes them into a
mailbox with its ``broken`` knob (a share; the kinds are picked per message from the seed).

Rules a maintainer must keep:

* A message is a pure function of ``(kind, index)``: no randomness, no clock.
* Every line end is CRLF unless the defect is about line ends (``bare-cr``), and every
  message but ``truncated`` ends with CRLF; each one parses with
  ``email.message_from_bytes`` without an exception (defects recorded, not raised).
* A POP3 server must carry each one byte for byte (dot-stuffing, LIST and STAT sizes, the
  terminating line): the mail is broken, the protocol around it never is.
"""

from __future__ import annotations

from collections.abc import Callable

__all__ = ["BROKEN_KINDS", "broken_message"]

#: Each kind of broken message, and what a parser should do with it.
BROKEN_KINDS: dict[str, str] = {
    "wrong-boundary": "multipart/mixed whose parts are delimited by another boundary than the "
    "one declared: find no part, keep the whole body as one text part (or the preamble), "
    "never loop or crash",
    "missing-boundary": "multipart/mixed with no boundary parameter: treat the body as "
    "text/plain (RFC 2046 s5.1.1 makes the parameter mandatory)",
    "missing-closing-boundary": "the last part is never closed by --boundary--: end it at "
    "the end of the message and keep its content",
    "invalid-base64": "a base64 part with characters outside the alphabet and bad padding: "
    "skip what is not base64 (RFC 2045 s6.8), decode the rest, report a defect",
    "invalid-qp": "quoted-printable with =ZZ, a lone = and a line over 76 characters: keep "
    "the bad sequences as they are (RFC 2045 s6.7, note 1)",
    "nul-bytes": "NUL octets in a header and in the body: keep or replace them, never cut "
    "the text at the first NUL (a C-string bug)",
    "bare-cr": "a CR not followed by LF inside body lines: it is not a line end (RFC 5322 "
    "s2.3 forbids it); keep it or drop it, do not split the line there",
    "long-lines": "a header line and body lines of 5,000 octets, over RFC 5322's 998: "
    "accept them whole, neither truncate silently nor fail",
    "header-without-colon": "a line in the header block with no colon: skip it as junk or "
    "start the body there, but keep the headers before it",
    "raw-8bit-header": "raw UTF-8 (not RFC 2047 encoded words) in Subject and From: decode "
    "as UTF-8 (RFC 6532), falling back to a replacement character, never raise",
    "lying-charset": "text declared charset=us-ascii whose body is UTF-8 and Latin-1 bytes: "
    "decode with replacement characters (or sniff), never raise UnicodeDecodeError",
    "from-line": "body lines starting with 'From ' (not escaped as '>From ') and a line "
    "with a lone '.': in mbox each From line starts a new message unless escaped; a POP3 "
    "client must get both lines intact (the server stuffs the dot)",
    "truncated": "a multipart message cut in the middle of a base64 line, without final "
    "CRLF or closing boundary (a half-saved file): return what there is, report it incomplete",
    "many-headers": "5,000 header fields (Received and X- lines): parse them in linear time, "
    "or cap them, without running out of memory or time",
}


def _head(kind: str, index: int, *extra: str, subject: str | None = None) -> bytes:
    lines = [
        "From: Broken Sender <broken@example.org>",
        "To: alice@example.org",
        f"Subject: {subject if subject is not None else f'Broken mail {index}: {kind}'}",
        "Date: Mon, 01 Jan 2024 00:00:00 +0000",
        f"Message-ID: <broken-{kind}-{index}@fakepop3.invalid>",
        "MIME-Version: 1.0",
        *extra,
    ]
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _crlf(*lines: str) -> bytes:
    return ("\r\n".join(lines) + "\r\n").encode("utf-8")


def _wrong_boundary(index: int) -> bytes:
    return _head(
        "wrong-boundary", index, 'Content-Type: multipart/mixed; boundary="declared-boundary"'
    ) + _crlf(
        "",
        "--actual-boundary",
        "Content-Type: text/plain",
        "",
        "The boundary above is not the declared one.",
        "--actual-boundary--",
    )


def _missing_boundary(index: int) -> bytes:
    return _head("missing-boundary", index, "Content-Type: multipart/mixed") + _crlf(
        "",
        "--",
        "Content-Type: text/plain",
        "",
        "A multipart without a boundary parameter.",
        "----",
    )


def _missing_closing_boundary(index: int) -> bytes:
    return _head(
        "missing-closing-boundary", index, 'Content-Type: multipart/mixed; boundary="b1"'
    ) + _crlf(
        "",
        "--b1",
        "Content-Type: text/plain",
        "",
        "First part.",
        "--b1",
        "Content-Type: text/plain",
        "",
        "Second part, never closed.",
    )


def _invalid_base64(index: int) -> bytes:
    return _head(
        "invalid-base64",
        index,
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: base64",
    ) + _crlf("", "SGVsbG8g!!d29y*bGQ", "SGVsbG8=gd29ybGQ", "QUJDRA=", "@@@@")


def _invalid_qp(index: int) -> bytes:
    return _head(
        "invalid-qp",
        index,
        "Content-Type: text/plain; charset=utf-8",
        "Content-Transfer-Encoding: quoted-printable",
    ) + _crlf(
        "",
        "Bad escapes: =ZZ and =4 and =g1 here.",
        "A lone equals sign at the end =",
        "x" * 120 + "=3D" + "y" * 20,
    )


def _nul_bytes(index: int) -> bytes:
    return (
        _head("nul-bytes", index, "X-Nul: before\0after", "Content-Type: text/plain")
        + b"\r\nText before\0the NUL and after it.\r\n\0\0\0\r\nThe end.\r\n"
    )


def _bare_cr(index: int) -> bytes:
    return (
        _head("bare-cr", index, "Content-Type: text/plain")
        + b"\r\nOne line\rwith a bare CR in it.\r\nAnother\r\rline.\r\n"
    )


def _long_lines(index: int) -> bytes:
    return _head("long-lines", index, "X-Long: " + "h" * 5000, "Content-Type: text/plain") + _crlf(
        "", "b" * 5000, "short", "." + "d" * 4999
    )


def _header_without_colon(index: int) -> bytes:
    return _head(
        "header-without-colon",
        index,
        "This header line has no colon",
        "X-After: kept or not",
        "Content-Type: text/plain",
    ) + _crlf("", "Body.")


def _raw_8bit_header(index: int) -> bytes:
    head = _head(
        "raw-8bit-header",
        index,
        "Content-Type: text/plain; charset=utf-8",
        subject=f"Grüße {index}, Привет, 你好",
    )
    head = head.replace(b"From: Broken Sender", "From: Jürgen Größe".encode())
    return head + _crlf("", "Raw 8-bit in the headers above.")


def _lying_charset(index: int) -> bytes:
    return (
        _head("lying-charset", index, "Content-Type: text/plain; charset=us-ascii")
        + b"\r\n"
        + "UTF-8: café, naïve, Привет\r\n".encode()
        + b"Latin-1: caf\xe9 na\xefve\r\n"
    )


def _from_line(index: int) -> bytes:
    return _head("from-line", index, "Content-Type: text/plain") + _crlf(
        "",
        "Dear Alice,",
        "From the desk of the editor: this line starts with From.",
        ".",
        "From here on, a dot line above and this From line must arrive intact.",
        "..two dots",
    )


def _truncated(index: int) -> bytes:
    return (
        _head("truncated", index, 'Content-Type: multipart/mixed; boundary="cut"')
        + _crlf(
            "",
            "--cut",
            "Content-Type: text/plain",
            "",
            "The attachment below was cut off.",
            "--cut",
            "Content-Type: application/octet-stream",
            "Content-Transfer-Encoding: base64",
            "",
            "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=",
        )
        + b"QUJDREVGR0hJ"
    )  # cut in the middle of a line: no CRLF, no closing boundary


def _many_headers(index: int) -> bytes:
    received = [
        f"Received: from relay{i}.example.org by relay{i + 1}.example.org; "
        "Mon, 01 Jan 2024 00:00:00 +0000"
        for i in range(2500)
    ]
    extra = [f"X-Header-{i}: value {i}" for i in range(2500)]
    return _head("many-headers", index, *received, *extra, "Content-Type: text/plain") + _crlf(
        "", "5,000 header fields above."
    )


_BUILDERS: dict[str, Callable[[int], bytes]] = {
    "wrong-boundary": _wrong_boundary,
    "missing-boundary": _missing_boundary,
    "missing-closing-boundary": _missing_closing_boundary,
    "invalid-base64": _invalid_base64,
    "invalid-qp": _invalid_qp,
    "nul-bytes": _nul_bytes,
    "bare-cr": _bare_cr,
    "long-lines": _long_lines,
    "header-without-colon": _header_without_colon,
    "raw-8bit-header": _raw_8bit_header,
    "lying-charset": _lying_charset,
    "from-line": _from_line,
    "truncated": _truncated,
    "many-headers": _many_headers,
}


def broken_message(kind: str, *, index: int = 0) -> bytes:
    """A deliberately malformed message of ``kind`` (one of :data:`BROKEN_KINDS`).

    ``index`` goes into its Subject and Message-ID, so that several of a kind differ.
    """
    builder = _BUILDERS.get(kind) if isinstance(kind, str) else None
    if builder is None:
        raise ValueError(f"unknown broken-mail kind {kind!r}; use one of {', '.join(BROKEN_KINDS)}")
    return builder(index)
