"""Tests of the one-line message builder (fakepop3.builder)."""

from __future__ import annotations

import datetime as dt
import email.policy
from email.message import EmailMessage
from email.parser import BytesParser

from fakepop3.builder import DEFAULT_DATE, build_message

PARSER = BytesParser(policy=email.policy.default)


def parse(raw: bytes) -> EmailMessage:
    msg = PARSER.parsebytes(raw)
    assert isinstance(msg, EmailMessage)
    for part in msg.walk():
        assert part.defects == []
    return msg


def test_defaults_are_deterministic() -> None:
    raw = build_message()
    assert raw == build_message()
    assert raw.endswith(b"\r\n")
    assert b"\n" not in raw.replace(b"\r\n", b"")
    msg = parse(raw)
    assert msg["Subject"] == "Test message"
    assert msg["Date"].datetime == DEFAULT_DATE
    assert str(msg["Message-ID"]).endswith("@fakepop3.invalid>")
    body = msg.get_body(("plain",))
    assert body is not None and body.get_content().strip() == "Hello."
    assert build_message(subject="other") != raw
    assert parse(build_message(subject="other"))["Message-ID"] != msg["Message-ID"]


def test_all_fields() -> None:
    raw = build_message(
        subject="Grüße – Rechnung",
        sender="Jürgen Groß <juergen@example.de>",
        to=["a@example.com", "B <b@example.com>"],
        cc="c@example.com",
        reply_to="noreply@example.com",
        text="Hallo,\n.\nbis bald\n",
        html="<p>Hallo</p>",
        attachments=[
            ("data.csv", "a,b\n1,2\n"),
            ("scan.pdf", b"%PDF-1.4 fake"),
            ("blob", b"\x00\x01", "application/x-custom"),
        ],
        headers={"X-Ticket": "42", "Subject": "Replaced"},
        date=dt.datetime(2020, 2, 3, 4, 5, 6),
        message_id="abc@example.com",
        in_reply_to="parent@example.com",
    )
    assert raw.isascii()
    msg = parse(raw)
    assert msg["Subject"] == "Replaced"
    assert msg["From"].addresses[0].display_name == "Jürgen Groß"
    assert [a.addr_spec for a in msg["To"].addresses] == ["a@example.com", "b@example.com"]
    assert msg["Cc"] == "c@example.com"
    assert msg["Reply-To"] == "noreply@example.com"
    assert msg["X-Ticket"] == "42"
    assert msg["Message-ID"] == "<abc@example.com>"
    assert msg["In-Reply-To"] == msg["References"] == "<parent@example.com>"
    assert msg["Date"].datetime == dt.datetime(2020, 2, 3, 4, 5, 6, tzinfo=dt.timezone.utc)
    assert msg.get_content_type() == "multipart/mixed"
    plain = msg.get_body(("plain",))
    html = msg.get_body(("html",))
    assert plain is not None and "\n.\n" in plain.get_content().replace("\r\n", "\n")
    assert html is not None and "<p>Hallo</p>" in html.get_content()
    atts = {p.get_filename(): p for p in msg.iter_attachments()}
    assert atts["data.csv"].get_content_type() == "text/csv"
    assert atts["data.csv"].get_content().replace("\r\n", "\n") == "a,b\n1,2\n"
    assert atts["scan.pdf"].get_content_type() == "application/pdf"
    assert atts["scan.pdf"].get_content() == b"%PDF-1.4 fake"
    assert atts["blob"].get_content_type() == "application/x-custom"
    assert atts["blob"].get_content() == b"\x00\x01"


def test_html_only_and_mapping_attachments() -> None:
    msg = parse(build_message(html="<b>hi</b>", attachments={"x.bin": b"\xff", "n.txt": "note"}))
    html = msg.get_body(("html",))
    assert html is not None and "<b>hi</b>" in html.get_content()
    assert msg.get_body(("plain",)) is None
    types = {p.get_filename(): p.get_content_type() for p in msg.iter_attachments()}
    assert types == {"x.bin": "application/octet-stream", "n.txt": "text/plain"}


def test_repeated_extra_headers() -> None:
    msg = parse(build_message(headers=[("Received", "from a"), ("Received", "from b")]))
    assert msg.get_all("Received") == ["from a", "from b"]
