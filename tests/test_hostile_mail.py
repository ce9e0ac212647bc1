"""Broken mail (issue 18): malformed messages, and the POP3 framing around them kept right.

Each kind is checked for its defect, for parsing without an exception, and for being carried
byte for byte: LIST and STAT sizes, the dot-stuffed RETR body and its terminating line (over a
bare socket), and what poplib makes of it.
"""

from __future__ import annotations

import email
import email.policy
import poplib
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakepop3 import POP3Server
from fakepop3.mail import BROKEN_KINDS, broken_message, generate_messages
from fakepop3.store import dot_stuff, to_crlf

from .conftest import USERS, RawClient, login

KINDS = list(BROKEN_KINDS)


def header_block(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[0]


def body(message: bytes) -> bytes:
    return message.split(b"\r\n\r\n", 1)[1]


DEFECTS = {
    "wrong-boundary": lambda m: (
        b'boundary="declared-boundary"' in m and b"--declared-boundary" not in m
    ),
    "missing-boundary": lambda m: (
        b"multipart/mixed\r\n" in m and b"boundary=" not in header_block(m)
    ),
    "missing-closing-boundary": lambda m: b"--b1\r\n" in m and b"--b1--" not in m,
    "invalid-base64": lambda m: b"base64" in m and re.search(rb"[!*@]", body(m)) is not None,
    "invalid-qp": lambda m: b"=ZZ" in m and any(len(line) > 76 for line in body(m).split(b"\r\n")),
    "nul-bytes": lambda m: b"\0" in header_block(m) and b"\0" in body(m),
    "bare-cr": lambda m: re.search(rb"\r(?!\n)", m) is not None,
    "long-lines": lambda m: max(map(len, m.split(b"\r\n"))) > 998,
    "header-without-colon": lambda m: any(
        b":" not in line for line in header_block(m).split(b"\r\n")
    ),
    "raw-8bit-header": lambda m: not header_block(m).isascii() and b"=?" not in m,
    "lying-charset": lambda m: b"charset=us-ascii" in m and not body(m).isascii(),
    "from-line": lambda m: b"\r\nFrom " in body(m) and b"\r\n.\r\n" in m,
    "truncated": lambda m: not m.endswith(b"\r\n") and b"--cut--" not in m,
    "many-headers": lambda m: header_block(m).count(b"\r\n") >= 5000,
}


def test_every_kind_is_documented_and_checked() -> None:
    assert set(DEFECTS) == set(BROKEN_KINDS)
    assert all(len(text) > 40 for text in BROKEN_KINDS.values())


@pytest.mark.parametrize("kind", KINDS)
def test_each_broken_message_has_its_defect_and_parses(kind: str) -> None:
    message = broken_message(kind, index=3)
    assert DEFECTS[kind](message), kind
    assert f"<broken-{kind}-3@fakepop3.invalid>".encode() in message
    assert broken_message(kind, index=3) == message  # a pure function of (kind, index)
    parsed = email.message_from_bytes(message, policy=email.policy.default)
    for part in parsed.walk():  # decoding every part must not raise either
        if not part.is_multipart():
            part.get_payload(decode=True)


def test_the_parser_sees_the_defects() -> None:
    """What Python's email package reports for some kinds (a parser's view of them)."""
    from email import errors

    def defects(kind: str) -> set[type]:
        parsed = email.message_from_bytes(broken_message(kind), policy=email.policy.default)
        return {type(d) for part in parsed.walk() for d in part.defects}

    assert errors.StartBoundaryNotFoundDefect in defects("wrong-boundary")
    assert errors.NoBoundaryInMultipartDefect in defects("missing-boundary")
    assert errors.CloseBoundaryNotFoundDefect in defects("missing-closing-boundary")
    assert errors.MissingHeaderBodySeparatorDefect in defects("header-without-colon")
    payload = email.message_from_bytes(
        broken_message("invalid-base64"), policy=email.policy.default
    )
    payload.get_payload(decode=True)
    assert payload.defects or payload.get_payload(decode=True)


def test_an_unknown_kind_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown broken-mail kind 'explode'; use one of"):
        broken_message("explode")


# --- broken mail, correct protocol ----------------------------------------------------------
@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users=USERS) as server:
        server.mailbox("alice").extend([broken_message(kind) for kind in KINDS])
        yield server
    server.raise_errors()


def test_sizes_stuffing_and_the_terminating_line_are_exact(server: POP3Server) -> None:
    wire = [to_crlf(broken_message(kind)) for kind in KINDS]
    with RawClient(server.host, server.port) as raw:
        raw.login()
        total = sum(map(len, wire))
        assert raw.command(b"STAT") == b"+OK %d %d\r\n" % (len(wire), total)
        raw.send(b"LIST\r\n")
        _, listing = raw.read_multiline()
        expected_listing = b"".join(b"%d %d\r\n" % (i, len(w)) for i, w in enumerate(wire, 1))
        assert listing == expected_listing + b".\r\n"
        for number, crlf in enumerate(wire, 1):
            raw.send(b"RETR %d\r\n" % number)
            status = raw.read_line()
            assert status == b"+OK %d octets\r\n" % len(crlf)
            expected = dot_stuff(crlf) + b".\r\n"
            while len(raw.buffer) < len(expected):
                assert raw._fill()
            got, raw.buffer = raw.buffer[: len(expected)], raw.buffer[len(expected) :]
            assert got == expected, KINDS[number - 1]
        assert raw.command(b"QUIT").startswith(b"+OK")


def test_the_dot_and_from_lines_are_stuffed_on_the_wire(server: POP3Server) -> None:
    number = KINDS.index("from-line") + 1
    with RawClient(server.host, server.port) as raw:
        raw.login()
        raw.send(b"RETR %d\r\n" % number)
        _, stuffed = raw.read_multiline()
    assert b"\r\n..\r\n" in stuffed and b"\r\n...two dots\r\n" in stuffed
    assert b"\r\nFrom the desk" in stuffed  # POP3 does not escape From lines: mbox does


@pytest.mark.parametrize("kind", [k for k in KINDS if k != "long-lines"])
def test_poplib_gets_each_message_whole(server: POP3Server, kind: str) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    login(client)
    number = KINDS.index(kind) + 1
    _, lines, _ = client.retr(number)
    crlf = to_crlf(broken_message(kind))
    assert b"\r\n".join(lines) + b"\r\n" == crlf
    assert client.list(number).split()[2] == str(len(crlf)).encode()
    client.quit()


def test_poplib_cannot_read_lines_over_2048_octets(server: POP3Server) -> None:
    """An honest limit of the client, not of the server: poplib's _MAXLINE is 2048."""
    client = poplib.POP3(server.host, server.port, timeout=10)
    login(client)
    with pytest.raises(poplib.error_proto, match="line too long"):
        client.retr(KINDS.index("long-lines") + 1)
    client.close()


# --- the generator's broken knob --------------------------------------------------------------
def test_the_generator_mixes_a_seeded_share_of_broken_mail() -> None:
    mail = generate_messages(60, seed=5, broken=0.5)
    kinds = [mail.generator.broken_kind(k) for k in range(60)]
    picked = [k for k in kinds if k is not None]
    assert 10 < len(picked) < 50 and len(set(picked)) > 3
    again = generate_messages(60, seed=5, broken=0.5)
    assert list(again) == list(mail)  # the same seed, the same bytes
    assert [mail.generator.broken_kind(k) for k in range(60)] != [
        generate_messages(60, seed=6, broken=0.5).generator.broken_kind(k) for k in range(60)
    ]
    assert mail.sizes() == [len(m) for m in mail]  # exact sizes, as LIST reports them
    plain = generate_messages(60, seed=5)
    for k, kind in enumerate(kinds):
        if kind is None:  # the others are the messages of broken=0
            assert mail[k] == plain[k]
        else:
            assert f"<broken-{kind}-{k}@fakepop3.invalid>".encode() in mail[k]
            assert mail[k].endswith(b"\r\n")
    assert all(generate_messages(5, broken=1.0).generator.broken_kind(k) for k in range(5))


def test_a_bad_broken_share_is_refused() -> None:
    with pytest.raises(ValueError, match="broken"):
        generate_messages(1, broken=1.5)


@pytest.mark.pop3(messages=8, seed=2, generate={"broken": 1.0})
def test_the_marker_fills_a_maildrop_with_broken_mail(
    pop3_server: POP3Server, pop3_user: tuple[str, str]
) -> None:
    mailbox = pop3_server.mailbox(pop3_user[0])
    assert len(mailbox) == 8
    assert all(b"@fakepop3.invalid>" in m.raw for m in mailbox.messages)


def test_the_toml_generate_options_take_the_knob(tmp_path: Path) -> None:
    from fakepop3.cli import options_from

    config = tmp_path / "server.toml"
    config.write_text(
        'users = {alice = "secret"}\n[generate]\nalice = 3\n[generate_options]\nbroken = 0.25\n'
    )
    opts = options_from(["--config", str(config)], {})
    assert opts.generate_options == {"broken": 0.25}
