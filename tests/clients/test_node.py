"""node-pop3 (the npm registry) against fakepop3: LIST, UIDL, RETR, DELE, QUIT, plain and TLS.

``node/fetch.mjs`` uses the package's own API (``LIST()``, ``UIDL()``, ``RETR(n)``, which logs
in with USER/PASS first; ``DELE(n)``; ``QUIT()``).  node-pop3 is installed from the committed
``node/package-lock.json`` by .ci/install-clients (``npm ci``); it has no STLS, so TLS is
implicit TLS only.

node-pop3 0.11 hands a message over as it came off the wire, still dot-stuffed, and it finds
the end of a multi-line reply by looking at each chunk the socket delivers: a chunk that ends
in ``CRLF . CRLF`` loses those five bytes (the message's own last CRLF with them), a chunk that
is only ``. CRLF`` is dropped.  So each file is compared byte for byte with the stuffed
message, with or without its final CRLF depending on how the reply was cut into chunks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from fakepop3 import POP3Server
from fakepop3.store import dot_stuff

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, fetched, listing, missing, require, uid_listing

NODE_DIR = HERE / "node"
SCRIPT = NODE_DIR / "fetch.mjs"
HOW = "run .ci/install-clients (apt-get install nodejs npm; npm ci in tests/clients/node)"


@pytest.fixture(scope="module")
def node() -> str:
    path = require("node", HOW)
    if not (NODE_DIR / "node_modules" / "node-pop3" / "package.json").is_file():
        missing(f"node-pop3 is not installed in tests/clients/node ({HOW})")
    return path


def fetch(node: str, server: POP3Server, outdir: Path, *, tls: bool, delete: bool = False) -> None:
    if tls:
        assert server.tls is not None
        args = ["tls", "localhost", str(server.tls_port), USER, PASSWORD, str(outdir)]
        args.append(str(server.tls.ca_path))
    else:
        args = ["plain", server.host, str(server.port), USER, PASSWORD, str(outdir), ""]
    run([node, str(SCRIPT), *args, *(["delete"] if delete else [])], server)


def assert_fetched_as_node_pop3_hands_them_over(outdir: Path, stored: list[bytes]) -> None:
    got = fetched(outdir)
    assert len(got) == len(stored)
    for number, (have, crlf) in enumerate(zip(got, stored, strict=True), 1):
        stuffed = dot_stuff(crlf)
        assert have in (stuffed, stuffed[:-2]), f"message {number} differs from the stored one"


@pytest.mark.parametrize("tls", [False, True], ids=["plain", "tls"])
def test_fetch_every_message(
    node: str, start_server: StartServer, golden: Golden, tmp_path: Path, tls: bool
) -> None:
    server = start_server(tls=tls)
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(node, server, tmp_path, tls=tls)
    assert_fetched_as_node_pop3_hands_them_over(tmp_path, stored)
    assert (tmp_path / "list.txt").read_text() == listing(server)
    assert (tmp_path / "uidl.txt").read_text() == uid_listing(server)
    assert all(c.tls == tls for c in server.history.commands)
    assert_all_ok(server)
    name = "node_pop3_tls" if tls else "node_pop3"
    how = "tls: true, tlsOptions.ca" if tls else "plain TCP"
    golden.check(name, server, f"node-pop3 ({how}): LIST(), UIDL(), RETR(n) each, QUIT()")


def test_dele_takes_effect_at_quit(
    node: str, start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(node, server, tmp_path, tls=False, delete=True)
    assert_fetched_as_node_pop3_hands_them_over(tmp_path, stored)
    assert server.mailbox(USER).messages == []
    assert_all_ok(server)
    golden.check("node_pop3_delete", server, "node-pop3: LIST(), then RETR(n), DELE(n) each")


def test_tls_refuses_an_unknown_ca(node: str, start_server: StartServer, tmp_path: Path) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)
    assert other.tls is not None
    args = ["tls", "localhost", str(server.tls_port), USER, PASSWORD, str(tmp_path)]
    result = run([node, str(SCRIPT), *args, str(other.tls.ca_path)], server, expect=(1,))
    assert b"certificate" in result.stderr
    assert server.history.count("USER") == 0
