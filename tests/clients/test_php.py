"""PHP's imap extension (c-client, Debian's php-imap) against fakepop3: ``{host:port/pop3...}``.

``php/fetch.php`` opens ``{HOST:PORT/pop3FLAGS}INBOX`` with ``imap_open``, counts the
messages, reads each one as ``imap_fetchheader() . imap_body()`` (c-client sends ``TOP n 0``
then ``RETR n``) and closes, with ``CL_EXPUNGE`` after ``imap_delete`` for a deleting run.
c-client hands a message over byte for byte (CRLF line ends, dot-unstuffed).

c-client's quirks: it logs in with the first SASL mechanism of CAPA (CRAM-MD5 here) and
falls back to USER/PASS only when CAPA offers no SASL; it sends CAPA again after logging in;
it verifies a certificate against OpenSSL's default store, so the test points
``SSL_CERT_FILE`` at the server's CA.  ``/tls`` (STLS) offers TLS 1.0 only, which fakepop3
refuses as Dovecot does (TLS 1.2 at least); ``/tls-sslv23`` negotiates TLS 1.2 or 1.3.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, assert_fetched_exactly, require

SCRIPT = HERE / "php" / "fetch.php"
HOW = "run .ci/install-clients, or apt-get install php-cli php-imap"


@pytest.fixture(scope="module")
def php() -> str:
    return require("php", HOW, "-r", "exit(function_exists('imap_open') ? 0 : 1);")


def fetch(
    php: str,
    server: POP3Server,
    flags: str,
    outdir: Path,
    *,
    ca: Path | None = None,
    delete: bool = False,
    expect: Sequence[int] = (0,),
) -> bytes:
    env = dict(os.environ)
    if server.tls is not None:
        env["SSL_CERT_FILE"] = str(ca or server.tls.ca_path)
        host = "localhost"
    else:
        host = server.host
    port = server.tls_port if flags.startswith("/ssl") else server.port
    args = [php, str(SCRIPT), flags, host, str(port), USER, PASSWORD, str(outdir)]
    result = run([*args, "delete"] if delete else args, server, env=env, expect=expect)
    return result.stderr


@pytest.mark.parametrize(
    ("name", "flags", "tls", "disable", "first_login"),
    [
        ("php_imap_notls", "/notls", False, (), "AUTH CRAM-MD5"),
        ("php_imap_user", "/notls", False, ("SASL",), "USER alice"),
        ("php_imap_stls", "/tls-sslv23", True, (), "AUTH CRAM-MD5"),
        ("php_imap_ssl", "/ssl", True, (), "AUTH CRAM-MD5"),
    ],
)
def test_fetch_every_message_byte_exactly(
    php: str,
    start_server: StartServer,
    golden: Golden,
    tmp_path: Path,
    name: str,
    flags: str,
    tls: bool,
    disable: Sequence[str],
    first_login: str,
) -> None:
    server = start_server(tls=tls, disable=disable)
    fetch(php, server, flags, tmp_path)
    assert_fetched_exactly(server, tmp_path)
    assert (tmp_path / "count.txt").read_text() == f"{len(server.mailbox(USER))}\n"
    assert first_login in server.history.command_lines()
    if flags == "/ssl":
        assert all(c.tls for c in server.history.commands)
    elif tls:
        session = server.history.sessions[0]
        assert [c.command for c in session.commands if not c.tls] == ["CAPA", "STLS"]
    assert_all_ok(server)
    offered = f" (server without {', '.join(disable)})" if disable else ""
    golden.check(name, server, f"php imap_open('{{HOST:PORT/pop3{flags}}}INBOX'){offered}")


def test_delete_and_expunge_takes_effect_at_quit(
    php: str, start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(php, server, "/notls", tmp_path, delete=True)
    assert_fetched_exactly(server, tmp_path, stored)
    assert server.mailbox(USER).messages == []
    assert_all_ok(server)
    golden.check("php_imap_delete", server, "php imap_delete() each, imap_close(CL_EXPUNGE)")


def test_plain_tls_flag_offers_only_tls_1_0_and_is_refused(
    php: str, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(tls=True)
    stderr = fetch(php, server, "/tls", tmp_path, expect=(1,))
    assert b"SSL negotiation failed" in stderr
    assert server.history.command_lines() == ["CAPA", "STLS"]  # no password sent


def test_implicit_tls_refuses_an_unknown_ca(
    php: str, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)
    assert other.tls is not None
    stderr = fetch(php, server, "/ssl", tmp_path, ca=other.tls.ca_path, expect=(1,))
    assert b"Certificate failure" in stderr or b"certificate" in stderr.lower()
    assert server.history.command_lines() == []
