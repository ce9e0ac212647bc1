"""Perl's Net::POP3 (libnet, in Debian's perl) against fakepop3: login, apop, auth, starttls, SSL.

``perl/fetch.pl`` logs in the way the test names, writes LIST and UIDL, retrieves every
message as ``get`` returns it and quits.  Over plain TCP Net::Cmd's ``getline`` hands every
line over with LF instead of CRLF (dot-unstuffed): the files are compared with the stored
messages' LF form.  Over TLS the connection is an IO::Socket::SSL first, whose ``getline``
wins and keeps the CRLF: those files are compared with the CRLF form.  ``auth`` needs
Authen::SASL and TLS needs IO::Socket::SSL (Debian: libauthen-sasl-perl,
libio-socket-ssl-perl, both installed by .ci/install-clients).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, assert_fetched_exactly, listing, require, uid_listing

SCRIPT = HERE / "perl" / "fetch.pl"
HOW = "run .ci/install-clients, or apt-get install perl libauthen-sasl-perl libio-socket-ssl-perl"


@pytest.fixture(scope="module")
def perl() -> str:
    return require("perl", HOW, "-MNet::POP3", "-MAuthen::SASL", "-MIO::Socket::SSL", "-e", "1")


def fetch(perl: str, server: POP3Server, mode: str, outdir: Path, *, delete: bool = False) -> None:
    port = server.tls_port if mode == "ssl" else server.port
    ca = str(server.tls.ca_path) if server.tls is not None else ""
    host = "localhost" if server.tls is not None else server.host
    args = [perl, str(SCRIPT), mode, host, str(port), USER, PASSWORD, str(outdir), ca]
    run([*args, "delete"] if delete else args, server)


@pytest.mark.parametrize(
    ("mode", "first"),
    [
        ("user", "USER alice"),
        ("apop", "APOP alice ***"),
        ("sasl", "CAPA"),  # auth() reads CAPA's SASL line; Authen::SASL then picks PLAIN
    ],
)
def test_login_methods_fetch_every_message_byte_exactly(
    perl: str,
    start_server: StartServer,
    golden: Golden,
    tmp_path: Path,
    mode: str,
    first: str,
) -> None:
    server = start_server()
    fetch(perl, server, mode, tmp_path)
    assert_fetched_exactly(server, tmp_path, lf=True)
    assert (tmp_path / "list.txt").read_text() == listing(server)
    assert (tmp_path / "uidl.txt").read_text() == uid_listing(server)
    assert server.history.command_lines()[0] == first
    assert_all_ok(server)
    golden.check(f"perl_{mode}", server, f"perl Net::POP3: {mode}, list, uidl, get each, quit")


def test_delete_takes_effect_at_quit(
    perl: str, start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(perl, server, "user", tmp_path, delete=True)
    assert_fetched_exactly(server, tmp_path, stored, lf=True)
    assert server.mailbox(USER).messages == []
    assert_all_ok(server)
    golden.check("perl_delete", server, "perl Net::POP3: login, get and delete each, quit")


def test_starttls(perl: str, start_server: StartServer, golden: Golden, tmp_path: Path) -> None:
    server = start_server(tls=True)
    fetch(perl, server, "stls", tmp_path)
    assert_fetched_exactly(server, tmp_path)
    session = server.history.sessions[0]
    assert [c.command for c in session.commands if not c.tls] == ["STLS"]
    assert_all_ok(server)
    golden.check("perl_stls", server, "perl Net::POP3: starttls(SSL_ca_file), login, get each")


def test_implicit_tls(perl: str, start_server: StartServer, golden: Golden, tmp_path: Path) -> None:
    server = start_server(tls=True)
    fetch(perl, server, "ssl", tmp_path)
    assert_fetched_exactly(server, tmp_path)
    assert all(c.tls for c in server.history.commands)
    golden.check("perl_ssl", server, "perl Net::POP3: new(SSL => 1, SSL_ca_file), login, get each")


def test_starttls_refuses_an_unknown_ca(
    perl: str, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)  # a CA of its own, not the one that signed server's cert
    assert other.tls is not None
    args = [perl, str(SCRIPT), "stls", "localhost", str(server.port), USER, PASSWORD]
    result = run([*args, str(tmp_path), str(other.tls.ca_path)], server, expect=(2, 255))
    assert b"starttls" in result.stderr
    assert server.history.count("USER") == server.history.count("PASS") == 0
