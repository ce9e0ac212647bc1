"""Twisted's ``POP3Client`` (twisted.mail.pop3client) against fakepop3: APOP, USER/PASS, TLS.

``twisted_pop3/fetch.py`` runs in a process of its own (a reactor starts once per process):
it waits for the greeting, logs in with ``login()`` (APOP when the greeting carries a
timestamp, else USER/PASS with ``allowInsecureLogin``), reads ``listSize()``, ``listUID()``
and every message with ``retrieve()`` (lines without their CRLF, dot-unstuffed: joined with
CRLF they are the stored message byte for byte), and quits.  Twisted comes from the test
extra (``twisted[tls]``).

Its quirks: it sends CAPA on its own as soon as the greeting is in (and again after STLS);
``login()`` before the greeting has been read silently picks USER/PASS; USER/PASS over plain
TCP is refused on the client side unless ``allowInsecureLogin`` is set.
"""

from __future__ import annotations

import importlib.util
import sys
from collections.abc import Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, assert_fetched_exactly, listing, missing, uid_listing

SCRIPT = HERE / "twisted_pop3" / "fetch.py"


@pytest.fixture(scope="module")
def twisted() -> str:
    for module in ("twisted.mail.pop3client", "OpenSSL", "service_identity"):
        if importlib.util.find_spec(module.partition(".")[0]) is None:
            missing(f"{module} is not installed (pip install -e '.[test]': twisted[tls])")
    return sys.executable


def fetch(
    python: str,
    server: POP3Server,
    mode: str,
    outdir: Path,
    *,
    ca: Path | None = None,
    delete: bool = False,
    expect: Sequence[int] = (0,),
) -> bytes:
    if server.tls is not None:
        host, ca = "localhost", ca or server.tls.ca_path
    else:
        host = server.host
    port = server.tls_port if mode == "ssl" else server.port
    args = [python, str(SCRIPT), mode, host, str(port), USER, PASSWORD, str(outdir), str(ca or "")]
    return run([*args, "delete"] if delete else args, server, expect=expect).stderr


@pytest.mark.parametrize(
    ("name", "mode", "disable", "first_login"),
    [
        ("twisted_apop", "login", (), "APOP alice ***"),
        ("twisted_user", "login", ("APOP",), "USER alice"),
        ("twisted_stls", "stls", (), "APOP alice ***"),
        ("twisted_ssl", "ssl", (), "APOP alice ***"),
    ],
)
def test_fetch_every_message_byte_exactly(
    twisted: str,
    start_server: StartServer,
    golden: Golden,
    tmp_path: Path,
    name: str,
    mode: str,
    disable: Sequence[str],
    first_login: str,
) -> None:
    server = start_server(tls=mode != "login", disable=disable)
    fetch(twisted, server, mode, tmp_path)
    assert_fetched_exactly(server, tmp_path)
    assert (tmp_path / "list.txt").read_text() == listing(server)
    assert (tmp_path / "uidl.txt").read_text() == uid_listing(server)
    assert first_login in server.history.command_lines()
    if mode == "ssl":
        assert all(c.tls for c in server.history.commands)
    elif mode == "stls":
        session = server.history.sessions[0]
        assert [c.command for c in session.commands if not c.tls] == ["CAPA", "STLS"]
    assert_all_ok(server)
    offered = f" (server without {', '.join(disable)})" if disable else ""
    golden.check(name, server, f"twisted POP3Client ({mode}){offered}: listSize, listUID, retrieve")


def test_delete_takes_effect_at_quit(
    twisted: str, start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(twisted, server, "login", tmp_path, delete=True)
    assert_fetched_exactly(server, tmp_path, stored)
    assert server.mailbox(USER).messages == []
    golden.check("twisted_delete", server, "twisted POP3Client: retrieve and delete each, quit")


def test_stls_refuses_an_unknown_ca(
    twisted: str, start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)
    assert other.tls is not None
    stderr = fetch(twisted, server, "stls", tmp_path, ca=other.tls.ca_path, expect=(1,))
    assert b"certificate verify failed" in stderr
    assert server.history.command_lines() == ["CAPA", "STLS"]  # no password sent
