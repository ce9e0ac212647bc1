"""fetchmail against fakepop3, delivering through an MDA that keeps every byte it is given.

fetchmail runs in the foreground (no daemon: ``--daemon 0``) with an rcfile, pid file and
id file in the test's own directory, so tests can run in parallel.

What fetchmail changes in a message it delivers to an MDA, and nothing else (checked below):

* it puts its own ``Received:`` header (three lines) in front of the message;
* it hands the MDA LF line ends (it strips the CR of every CRLF).

Everything else, the header block (long lines unfolded as they were, ``Return-Path``
kept), 8-bit text, lines that start with a dot and the ``From `` line in the body, arrives
byte for byte as stored.  (Address rewriting is on, fetchmail's default, but it only
touches unqualified addresses and the test messages have none.)
"""

from __future__ import annotations

import os
import shlex
from collections.abc import Callable, Sequence
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

#: The MDA fetchmail runs for each message (``sh -c SCRIPT DIR`` < message): it writes the
#: message unchanged to DIR/1.eml, DIR/2.eml, ... in the order of delivery.  Shell builtins
#: and one ``cat``: a Python MDA would cost a tenth of a second a message.
MDA_SCRIPT = (
    'mkdir -p "$0"; n=1; while [ -e "$0/$n.eml" ]; do n=$((n + 1)); done; exec cat > "$0/$n.eml"'
)

# fetchmail exit statuses (fetchmail(1), "EXIT CODES").
GOT_MAIL = 0
NO_MAIL = 1
SOCKET_ERROR = 2


class Fetchmail:
    """One fetchmail configuration for one server, run as often as a test likes."""

    def __init__(self, program: str, server: POP3Server, home: Path, *, implicit_tls: bool) -> None:
        self.program = program
        self.server = server
        self.home = home
        self.outbox = home / "delivered"
        self.delivered = 0
        port = server.tls_port if implicit_tls else server.port
        # The poll name is what fetchmail checks the certificate against.
        self.rcfile = home / "fetchmailrc"
        self.rcfile.write_text(
            "set no syslog\n"
            "set no bouncemail\n"
            f"poll localhost with proto POP3 service {port}\n"
            f'    user "{USER}" there with password "{PASSWORD}"\n'
        )
        self.rcfile.chmod(0o600)  # fetchmail refuses an rcfile others can read

    def __call__(self, *options: str, expect: int = GOT_MAIL) -> list[bytes]:
        """Poll once with these options; return the messages delivered by this poll."""
        mda = shlex.join(["sh", "-c", MDA_SCRIPT, str(self.outbox)])
        env = {**os.environ, "HOME": str(self.home), "FETCHMAILHOME": str(self.home), "LC_ALL": "C"}
        args = [
            self.program,
            "--fetchmailrc",
            str(self.rcfile),
            "--idfile",
            str(self.home / "fetchids"),
            "--pidfile",  # as root, fetchmail would otherwise share one in /var/run
            str(self.home / "fetchmail.pid"),
            "--daemon",
            "0",
            "--timeout",
            "20",
            "--verbose",
            "--mda",
            mda,
            *options,
        ]
        run(args, self.server, expect=(expect,), env=env)
        files = sorted(self.outbox.glob("*.eml"), key=lambda f: int(f.stem))
        new = [f.read_bytes() for f in files[self.delivered :]]
        self.delivered = len(files)
        return new


MakeFetchmail = Callable[..., Fetchmail]


@pytest.fixture
def make_fetchmail(fetchmail: str, tmp_path: Path) -> MakeFetchmail:
    def make(server: POP3Server, *, implicit_tls: bool = False) -> Fetchmail:
        return Fetchmail(fetchmail, server, tmp_path, implicit_tls=implicit_tls)

    return make


def without_received(delivered: bytes) -> bytes:
    """Remove the ``Received:`` header fetchmail puts on top (checking that it is there)."""
    lines = delivered.split(b"\n")
    assert lines[0].startswith(b"Received: from localhost"), delivered[:200]
    end = 1
    while lines[end].startswith((b" ", b"\t")):
        end += 1
    assert b"(fetchmail-" in b"\n".join(lines[:end])
    return b"\n".join(lines[end:])


def assert_delivered_as_stored(delivered: list[bytes], stored: list[bytes]) -> None:
    """Each delivered message is the stored one, with LF line ends, after the Received header."""
    assert len(delivered) == len(stored)
    for got, raw in zip(delivered, stored, strict=True):
        assert without_received(got) == to_lf(raw)


def crlf(messages: Sequence[bytes]) -> list[bytes]:
    """The messages as the server sends them (CRLF line ends)."""
    return [to_crlf(m) for m in messages]


NO_STLS = ("--sslproto", "")  # fetchmail 6.4 insists on TLS unless told not to


def test_keep_fetchall_delivers_every_message_byte_exactly(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server()
    poll = make_fetchmail(server)
    delivered = poll("--keep", "--fetchall", *NO_STLS)
    assert_delivered_as_stored(delivered, crlf(MESSAGES))
    assert len(server.mailbox(USER)) == len(MESSAGES)  # --keep: nothing deleted
    assert_all_ok(server)
    golden.check("fetchmail_keep_fetchall", server, "fetchmail --keep --fetchall --sslproto ''")


def test_without_keep_deletes_and_the_next_login_sees_it(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server()
    poll = make_fetchmail(server)
    delivered = poll("--fetchall", *NO_STLS)
    assert_delivered_as_stored(delivered, crlf(MESSAGES))
    assert server.mailbox(USER).messages == []
    # The second poll logs in (CRAM-MD5 to an empty maildrop) and finds nothing.
    assert poll("--fetchall", *NO_STLS, expect=NO_MAIL) == []
    assert_all_ok(server)
    golden.check(
        "fetchmail_delete", server, "fetchmail --fetchall --sslproto '' (no --keep), polled twice"
    )


def test_keep_without_fetchall_sends_last_and_gets_a_plain_err(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server()
    poll = make_fetchmail(server)
    assert_delivered_as_stored(poll("--keep", *NO_STLS), crlf(MESSAGES))
    # Second poll: the id file says everything was seen, so nothing is fetched again.
    assert poll("--keep", *NO_STLS, expect=NO_MAIL) == []
    settle(server)
    last = server.history.filter("LAST")
    assert len(last) == 2
    # LAST (RFC 1460) is obsolete: a plain -ERR, no response code that could alarm a client.
    assert all(c.reply.startswith("-ERR ") and "[" not in c.reply for c in last)
    assert_all_ok(server, except_commands=["LAST"])
    golden.check("fetchmail_keep", server, "fetchmail --keep --sslproto '', polled twice")


def test_uidl_with_an_idfile_fetches_only_new_mail(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server()
    poll = make_fetchmail(server)
    assert_delivered_as_stored(poll("--keep", "--uidl", *NO_STLS), crlf(MESSAGES))
    new = b"From: erin@example.com\r\nSubject: Later\r\n\r\n..and more\r\n"
    server.mailbox(USER).add(new)
    assert_delivered_as_stored(poll("--keep", "--uidl", *NO_STLS), crlf([new]))
    idfile = (poll.home / "fetchids").read_text()
    assert all(uid in idfile for uid in server.mailbox(USER).uids)
    assert_all_ok(server)
    golden.check(
        "fetchmail_uidl",
        server,
        "fetchmail --keep --uidl --idfile F --sslproto '', new mail, again",
    )


@pytest.mark.parametrize(
    ("name", "options", "first"),
    [
        ("fetchmail_auth_password", ("--auth", "password"), "USER alice"),
        ("fetchmail_auth_cram_md5", ("--auth", "cram-md5"), "CAPA"),
        ("fetchmail_apop", ("--protocol", "APOP"), "APOP alice ***"),
    ],
)
def test_auth_methods(
    start_server: StartServer,
    make_fetchmail: MakeFetchmail,
    golden: Golden,
    name: str,
    options: tuple[str, ...],
    first: str,
) -> None:
    server = start_server()
    poll = make_fetchmail(server)
    delivered = poll("--keep", "--fetchall", *options, *NO_STLS)
    assert_delivered_as_stored(delivered, crlf(MESSAGES))
    assert server.history.command_lines()[0] == first
    assert_all_ok(server)
    golden.check(name, server, f"fetchmail --keep --fetchall {' '.join(options)} --sslproto ''")


def test_stls_with_certificate_check(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server(tls=True)
    assert server.tls is not None
    poll = make_fetchmail(server)
    delivered = poll(
        "--keep",
        "--fetchall",
        "--sslproto",
        "tls1.2+",
        "--sslcertck",
        "--sslcertfile",
        str(server.tls.ca_path),
    )
    assert_delivered_as_stored(delivered, crlf(MESSAGES))
    settle(server)
    commands = server.history.commands
    assert [c.line for c in commands[:2]] == ["CAPA", "STLS"]
    assert all(c.tls for c in commands[2:])
    golden.check(
        "fetchmail_stls",
        server,
        "fetchmail --keep --fetchall --sslproto tls1.2+ --sslcertck --sslcertfile CA",
    )


def test_stls_refused_without_the_ca(
    start_server: StartServer, make_fetchmail: MakeFetchmail
) -> None:
    # The certificate check is real: without the test CA fetchmail stops before logging in.
    server = start_server(tls=True)
    poll = make_fetchmail(server)
    assert poll("--keep", "--sslproto", "tls1.2+", "--sslcertck", expect=SOCKET_ERROR) == []
    settle(server)
    assert server.history.command_lines() == ["CAPA", "STLS"]
    assert len(server.mailbox(USER)) == len(MESSAGES)


def test_implicit_tls(
    start_server: StartServer, make_fetchmail: MakeFetchmail, golden: Golden
) -> None:
    server = start_server(tls=True)
    assert server.tls is not None
    poll = make_fetchmail(server, implicit_tls=True)
    delivered = poll("--ssl", "--sslcertck", "--sslcertfile", str(server.tls.ca_path))
    assert_delivered_as_stored(delivered, crlf(MESSAGES))
    assert server.mailbox(USER).messages == []
    settle(server)
    assert all(c.tls for c in server.history.commands)
    assert_all_ok(server, except_commands=["LAST"])
    golden.check(
        "fetchmail_ssl", server, "fetchmail --ssl --sslcertck --sslcertfile CA (no --keep)"
    )
