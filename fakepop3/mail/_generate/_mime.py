"""MIME structure: leaf parts, multiparts, the transfer encodings and binary payloads.

A message is a tree of :class:`Part` (header lines and an encoded body) and
:class:`Multi` (a multipart container); ``chunks()`` renders a tree into a list
of byte strings joined once.  A leaf's body is one chunk, the very object
:attr:`Part.body`: the builder measures the rendered chunks, then splices its
filler into the text part's body chunk, so a message is exactly its planned
size without being encoded or rendered again.

Rules a maintainer must keep:

* Rendering is exact and cheap to measure: every size the builder computes is
  ``len`` of what ``chunks()`` gives; nothing is rewrapped after measuring, and
  ``Part.chunks`` appends ``self.body`` itself (not a copy) as one chunk.
* Bodies use CRLF and end with CRLF; base64 lines are 76 characters; no
  quoted-printable line starts with ``.`` unless the text's own line does.
* The payload makers (:func:`png`, :func:`jpeg`, :func:`pdf`) draw from the
  ``rng`` they are given in a fixed order: draw order is part of the output.
"""

from __future__ import annotations

import base64
import binascii
import random
import struct
import zlib
from dataclasses import dataclass

from ._text import CRLF

__all__ = ["Multi", "Part", "b64_body", "jpeg", "pdf", "png", "qp", "raw_for_b64"]


@dataclass
class Part:
    """A leaf MIME part: its header lines and its encoded body (CRLF, ends CRLF)."""

    headers: list[str]
    body: bytes

    def chunks(self, out: list[bytes]) -> None:
        """Append the rendered part: its header block, then its body as one chunk (itself)."""
        out.append((CRLF.join(self.headers) + CRLF + CRLF).encode("ascii"))
        out.append(self.body)

    def render(self) -> bytes:
        out: list[bytes] = []
        self.chunks(out)
        return b"".join(out)


@dataclass
class Multi:
    """A multipart container."""

    subtype: str
    boundary: str
    parts: list[Part | Multi]

    def content_type(self) -> str:
        return f'multipart/{self.subtype};{CRLF} boundary="{self.boundary}"'

    def chunks(self, out: list[bytes]) -> None:
        """Append the rendered container: its header block, each part after a delimiter, the end."""
        out.append(f"Content-Type: {self.content_type()}{CRLF}{CRLF}".encode("ascii"))
        delimiter = f"--{self.boundary}\r\n".encode("ascii")
        for p in self.parts:
            out.append(delimiter)
            p.chunks(out)
        out.append(f"--{self.boundary}--\r\n".encode("ascii"))

    def render(self) -> bytes:
        out: list[bytes] = []
        self.chunks(out)
        return b"".join(out)


def b64_body(data: bytes) -> bytes:
    enc = base64.b64encode(data)
    return b"".join(enc[i : i + 76] + b"\r\n" for i in range(0, len(enc), 76))


def _b64_len(n: int) -> int:
    enc = (n + 2) // 3 * 4
    return enc + 2 * ((enc + 75) // 76)


def raw_for_b64(octets: int) -> int:
    """The largest raw size whose base64 body fits in ``octets``."""
    n = max(0, octets * 57 // 78)
    while n > 0 and _b64_len(n) > octets:
        n -= 1
    return n


def qp(data: bytes) -> bytes:
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


def png(rng: random.Random, octets: int) -> bytes:
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


def jpeg(rng: random.Random, octets: int) -> bytes:
    head = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00"
    body = rng.randbytes(max(0, octets - len(head) - 2)).replace(b"\xff", b"\xfe")
    return head + body + b"\xff\xd9"


def pdf(rng: random.Random, octets: int) -> bytes:
    head = (
        b"%PDF-1.4\n%\xe2\xe3\xcf\xd3\n1 0 obj\n<< /Type /Catalog /Pages 2 0 R >>\nendobj\n"
        b"2 0 obj\n<< /Type /Pages /Kids [] /Count 0 >>\nendobj\n3 0 obj\n<< /Length "
    )
    tail = b"\nendstream\nendobj\ntrailer\n<< /Root 1 0 R >>\n%%EOF\n"
    n = max(0, octets - len(head) - len(tail) - 20)
    return head + str(n).encode() + b" >>\nstream\n" + rng.randbytes(n) + tail
