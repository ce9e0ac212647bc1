"""Ruby's net-pop (bundled with Debian's ruby) against fakepop3: USER/PASS, APOP, TLS, delete.

``ruby/fetch.rb`` starts a ``Net::POP3`` session, lists the maildrop through ``mails``
(LIST, then UIDL for ``unique_id``), reads every message with ``POPMail#pop`` and quits.
net-pop hands a message over byte for byte (CRLF line ends, dot-unstuffed); it has no STLS,
so TLS is implicit TLS (``enable_ssl``).
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, assert_fetched_exactly, listing, require, uid_listing

SCRIPT = HERE / "ruby" / "fetch.rb"
HOW = "run .ci/install-clients, or apt-get install ruby"


@pytest.fixture(scope="module")
def ruby() -> str:
    return require("ruby", HOW, "-rnet/pop", "-ropenssl", "-e", "1")


def fetch(
    ruby: str,
    server: POP3Server,
    mode: str,
    outdir: Path,
    *,
    ca: Path | None = None,
    delete: bool = False,
    expect: tuple[int, ...] = (0,),
) -> bytes:
    if mode == "ssl":
        assert server.tls is not None
        host, port, ca = "localhost", server.tls_port, ca or server.tls.ca_path
    else:
        host, port = server.host, server.port
    args = [ruby, str(SCRIPT), mode, host, str(port), USER, PASSWORD, str(outdir), str(ca or "")]
    return run([*args, "delete"] if delete else args, server, expect=expect).stderr


@pytest.mark.parametrize(
    ("mode", "first"), [("user", "USER alice"), ("apop", "APOP alice ***"), ("ssl", "USER alice")]
)
def test_fetch_every_message_byte_exactly(
    ruby: str, start_server: StartServer, golden: Golden, tmp_path: Path, mode: str, first: str
) -> None:
    server = start_server(tls=mode == "ssl")
    fetch(ruby, server, mode, tmp_path)
    assert_fetched_exactly(server, tmp_path)
    assert (tmp_path / "list.txt").read_text() == listing(server)
    assert (tmp_path / "uidl.txt").read_text() == uid_listing(server)
    assert server.history.command_lines()[0] == first
    assert all(c.tls == (mode == "ssl") for c in server.history.commands)
    assert_all_ok(server)
    golden.check(f"ruby_{mode}", server, f"ruby net-pop ({mode}): mails, pop each, finish")


def test_delete_takes_effect_at_quit(
    ruby: str, start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(ruby, server, "user", tmp_path, delete=True)
    assert_fetched_exactly(server, tmp_path, stored)
    assert server.mailbox(USER).messages == []
    golden.check("ruby_delete", server, "ruby net-pop: mails, pop and delete each, finish")


def test_tls_refuses_an_unknown_ca(ruby: str, start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)
    assert other.tls is not None
    stderr = fetch(ruby, server, "ssl", tmp_path, ca=other.tls.ca_path, expect=(1,))
    assert b"certificate verify failed" in stderr
    assert server.history.count("USER") == 0
