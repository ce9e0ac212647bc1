"""getmail6 against fakepop3: SimplePOP3Retriever, SimplePOP3SSLRetriever, delete = true.

getmail runs as the ``getmail`` command of its PyPI package, with a getmailrc and its
state (``oldmail-*``) in the test's directory, and delivers into a Maildir.

What getmail changes in a message it delivers to a Maildir, and nothing else (checked below,
with ``delivered_to = false`` and ``received = false`` so that it adds no other header):

* it writes LF line ends (the message goes through Python's ``email`` generator);
* it puts a ``Return-Path:`` header first, built from the message's own Return-Path (which it
  removes from its old place) or ``<unknown>``;
* it refolds header lines longer than 78 characters (the ``email`` module's compat32 policy):
  the header fields stay the same once unfolded, the body is untouched.

A message whose header lines are all short arrives byte for byte.  getmail refuses to
deliver as root, so under root (as in CI) the Maildir belongs to ``nobody`` and the
destination says ``user = nobody``.
"""

from __future__ import annotations

import email.parser
import email.policy
import os
import pwd
import shutil
import tempfile
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server
from fakepop3.store import to_crlf

from .conftest import (
    MESSAGES,
    PASSWORD,
    USER,
    Golden,
    StartServer,
    assert_all_ok,
    run,
    settle,
    to_lf,
)


class Maildir:
    """A Maildir that getmail may deliver into (owned by ``nobody`` when running as root)."""

    def __init__(self, path: Path, owner: str | None) -> None:
        self.path = path
        self.owner = owner
        ids = pwd.getpwnam(owner) if owner is not None else None
        for sub in ("", "cur", "new", "tmp"):
            (path / sub).mkdir(parents=True, exist_ok=True)
            if ids is not None:
                os.chown(path / sub, ids.pw_uid, ids.pw_gid)

    def messages(self) -> list[bytes]:
        """Every delivered message, in the order of delivery.

        getmail names a file ``SECONDS.MMICROSECONDSP...``: sorting on the time it encodes
        restores the order.
        """
        files = [f for sub in ("new", "cur") for f in (self.path / sub).iterdir()]
        return [f.read_bytes() for f in sorted(files, key=_delivery_time)]


def _delivery_time(file: Path) -> tuple[int, int]:
    seconds, _, rest = file.name.partition(".M")
    return int(seconds), int(rest.partition("P")[0])


@pytest.fixture
def maildir(tmp_path: Path) -> Iterator[Maildir]:
    if os.geteuid() != 0:
        yield Maildir(tmp_path / "Maildir", None)
        return
    # getmail will not deliver as root; nobody cannot reach pytest's tmp_path (mode 0700).
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        pytest.fail("running as root, getmail needs a user 'nobody' to deliver as")
    base = Path(tempfile.mkdtemp(prefix="fakepop3-getmail-"))
    try:
        os.chmod(base, 0o755)
        yield Maildir(base / "Maildir", "nobody")
    finally:
        shutil.rmtree(base, ignore_errors=True)


class Getmail:
    """One getmailrc for one server and Maildir; each call is one getmail run."""

    def __init__(
        self,
        program: str,
        server: POP3Server,
        home: Path,
        maildir: Maildir,
        *,
        ssl: bool = False,
        ca: Path | None = None,
        options: Sequence[str] = (),
    ) -> None:
        self.program = program
        self.server = server
        self.home = home
        self.maildir = maildir
        self.seen = 0
        if ssl:
            assert server.tls_port is not None
            retriever = [
                "type = SimplePOP3SSLRetriever",
                "server = localhost",  # the name in the certificate, checked with ca_certs
                f"port = {server.tls_port}",
                f"ca_certs = {ca}",
            ]
        else:
            retriever = [
                "type = SimplePOP3Retriever",
                f"server = {server.host}",
                f"port = {server.port}",
            ]
        destination = ["type = Maildir", f"path = {maildir.path}/"]
        if maildir.owner is not None:
            destination.append(f"user = {maildir.owner}")
        self.rcfile = home / "getmailrc"
        self.rcfile.write_text(
            "\n".join(
                [
                    "[retriever]",
                    *retriever,
                    f"username = {USER}",
                    f"password = {PASSWORD}",
                    "",
                    "[destination]",
                    *destination,
                    "",
                    "[options]",
                    "delivered_to = false",
                    "received = false",
                    *options,
                    "",
                ]
            )
        )

    def __call__(self, *, expect: int = 0) -> list[bytes]:
        """Run getmail once; return the messages this run delivered."""
        args = [self.program, f"--getmaildir={self.home}", f"--rcfile={self.rcfile}"]
        run(args, self.server, expect=(expect,))
        messages = self.maildir.messages()
        new, self.seen = messages[self.seen :], len(messages)
        return new


MakeGetmail = Callable[..., Getmail]


@pytest.fixture
def make_getmail(getmail: str, tmp_path: Path, maildir: Maildir) -> MakeGetmail:
    def make(server: POP3Server, **kwargs: object) -> Getmail:
        return Getmail(getmail, server, tmp_path, maildir, **kwargs)  # type: ignore[arg-type]

    return make


def header_fields(block: bytes) -> list[tuple[bytes, bytes]]:
    """(name, value with folding and runs of white space collapsed) for each header field."""
    parsed = email.parser.BytesHeaderParser(policy=email.policy.compat32).parsebytes(block)
    return [
        (name.encode(), b" ".join(str(value).encode("utf-8", "surrogateescape").split()))
        for name, value in parsed.raw_items()
    ]


def expected_delivery(raw: bytes) -> bytes:
    """What getmail writes for a stored message whose header lines are all short."""
    lf = to_lf(to_crlf(raw))
    head, sep, body = lf.partition(b"\n\n")
    lines = head.split(b"\n")
    return_path = [line for line in lines if line.lower().startswith(b"return-path:")]
    rest = [line for line in lines if not line.lower().startswith(b"return-path:")]
    first = return_path[0] if return_path else b"Return-Path: <unknown>"
    return b"\n".join([first, *rest]) + sep + body


def assert_delivered_as_stored(delivered: list[bytes], stored: Sequence[bytes]) -> None:
    assert len(delivered) == len(stored)
    for got, raw in zip(delivered, stored, strict=True):
        want = expected_delivery(raw)
        if max(len(line) for line in want.partition(b"\n\n")[0].split(b"\n")) <= 78:
            assert got == want  # byte for byte
        else:
            # getmail refolded the long header lines: same fields, same body bytes.
            got_head, _, got_body = got.partition(b"\n\n")
            want_head, _, want_body = want.partition(b"\n\n")
            assert got_body == want_body
            assert header_fields(got_head + b"\n\n") == header_fields(want_head + b"\n\n")
            assert got_head != want_head  # if getmail stops refolding, tighten this test


def test_plain_pop3_read_all_false(
    start_server: StartServer, make_getmail: MakeGetmail, golden: Golden
) -> None:
    server = start_server()
    fetch = make_getmail(server, options=["read_all = false"])
    assert_delivered_as_stored(fetch(), MESSAGES)
    assert len(server.mailbox(USER)) == len(MESSAGES)  # delete is off by default
    # A second run knows every UID (its oldmail file) and retrieves nothing.
    assert fetch() == []
    server.mailbox(USER).add(b"From: erin@example.com\r\nSubject: New\r\n\r\nnew mail\r\n")
    assert_delivered_as_stored(fetch(), [server.mailbox(USER)[-1].raw])
    assert_all_ok(server)
    golden.check(
        "getmail_pop3",
        server,
        "getmail SimplePOP3Retriever, read_all = false: run, again, new mail",
    )


def test_ssl_with_delete(
    start_server: StartServer, make_getmail: MakeGetmail, golden: Golden
) -> None:
    server = start_server(tls=True)
    assert server.tls is not None
    fetch = make_getmail(server, ssl=True, ca=server.tls.ca_path, options=["delete = true"])
    assert_delivered_as_stored(fetch(), MESSAGES)
    assert server.mailbox(USER).messages == []  # deleted at QUIT
    assert fetch() == []  # the next login finds nothing
    settle(server)
    assert all(c.tls for c in server.history.commands)
    assert_all_ok(server)
    golden.check(
        "getmail_pop3_ssl",
        server,
        "getmail SimplePOP3SSLRetriever with ca_certs, delete = true, twice",
    )


def test_ssl_refuses_a_certificate_from_another_ca(
    start_server: StartServer, make_getmail: MakeGetmail, tmp_path: Path
) -> None:
    import trustme

    other_ca = tmp_path / "other-ca.pem"
    trustme.CA().cert_pem.write_to_path(str(other_ca))
    server = start_server(tls=True)
    fetch = make_getmail(server, ssl=True, ca=other_ca, options=["delete = true"])
    assert fetch(expect=127) == []  # getmail exits 127 on a socket error
    assert len(server.mailbox(USER)) == len(MESSAGES)
    assert server.history.commands == []  # the handshake failed before any command
