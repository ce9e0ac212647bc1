"""Jakarta Mail's POP3 provider (Debian's libjakarta-mail-java) against fakepop3.

``java/Fetch.java`` is compiled with javac once per test process; it connects a ``pop3`` or
``pop3s`` store, opens INBOX, and for every message reads its size, its UID and the message
itself with ``writeTo()``, then closes (with expunge for a deleting run).  Jakarta Mail hands
a message over byte for byte (CRLF line ends, dot-unstuffed).

Its quirks: it always sends CAPA first, and once logged in STAT and a NOOP; for each message
``TOP n 0`` (for the headers), ``LIST n``, ``UIDL n`` and ``RETR n``, one command at a time
(no pipelining, no whole-maildrop LIST or UIDL); ``getSize()`` is the body's size, not LIST's.  Its default "LOGIN" mechanism is USER/PASS,
not SASL LOGIN; SASL needs ``mail.pop3.auth.mechanisms`` (PLAIN here, with an initial
response).  TLS trusts what the given ``SSLSocketFactory`` trusts, and checks the server's
name only with ``mail.pop3.ssl.checkserveridentity``.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import PASSWORD, USER, Golden, StartServer, assert_all_ok, run
from .scripted import HERE, assert_fetched_exactly, missing, require, uid_listing

SOURCE = HERE / "java" / "Fetch.java"
JARS = [Path("/usr/share/java/jakarta-mail.jar"), Path("/usr/share/java/jakarta-activation.jar")]
HOW = "run .ci/install-clients, or apt-get install libjakarta-mail-java openjdk-17-jdk-headless"


@pytest.fixture(scope="module")
def java(tmp_path_factory: pytest.TempPathFactory) -> list[str]:
    """The command that runs the compiled Fetch class (compiled here, once per module)."""
    javac = require("javac", HOW)
    java = require("java", HOW)
    absent = [str(jar) for jar in JARS if not jar.is_file()]
    if absent:
        missing(f"Jakarta Mail is not installed: no {', '.join(absent)} ({HOW})")
    classes = tmp_path_factory.mktemp("java-classes")
    classpath = ":".join(map(str, JARS))
    subprocess.run(
        [javac, "-d", str(classes), "-cp", classpath, str(SOURCE)],
        check=True,
        timeout=120,
    )
    return [java, "-Xshare:auto", "-XX:TieredStopAtLevel=1", "-cp", f"{classes}:{classpath}"]


def fetch(
    java: list[str],
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
    args = [*java, "Fetch", mode, host, str(port), USER, PASSWORD, str(outdir), str(ca or "")]
    result = run([*args, "delete"] if delete else args, server, expect=expect)
    return result.stderr


@pytest.mark.parametrize(
    ("mode", "first_login"),
    [
        ("user", "USER alice"),
        ("sasl", "AUTH PLAIN ***"),
        ("stls", "USER alice"),
        ("ssl", "USER alice"),
    ],
)
def test_fetch_every_message_byte_exactly(
    java: list[str],
    start_server: StartServer,
    golden: Golden,
    tmp_path: Path,
    mode: str,
    first_login: str,
) -> None:
    server = start_server(tls=mode in ("stls", "ssl"))
    fetch(java, server, mode, tmp_path)
    assert_fetched_exactly(server, tmp_path)
    # getSize() is the size of the body: LIST's size less the header block and its blank line.
    assert (tmp_path / "list.txt").read_text() == "".join(
        f"{i} {m.size - len(m.headers) - 2}\n"
        for i, m in enumerate(server.mailbox(USER).messages, 1)
    )
    assert (tmp_path / "uidl.txt").read_text() == uid_listing(server)
    assert first_login in server.history.command_lines()
    if mode == "ssl":
        assert all(c.tls for c in server.history.commands)
    elif mode == "stls":
        session = server.history.sessions[0]
        assert [c.command for c in session.commands if not c.tls] == ["CAPA", "STLS"]
    assert_all_ok(server)
    golden.check(f"java_{mode}", server, f"Jakarta Mail ({mode}): INBOX, each message's writeTo()")


def test_delete_takes_effect_at_close_with_expunge(
    java: list[str], start_server: StartServer, golden: Golden, tmp_path: Path
) -> None:
    server = start_server()
    stored = [m.crlf for m in server.mailbox(USER).messages]
    fetch(java, server, "user", tmp_path, delete=True)
    assert_fetched_exactly(server, tmp_path, stored)
    assert server.mailbox(USER).messages == []
    assert_all_ok(server)
    golden.check("java_delete", server, "Jakarta Mail: READ_WRITE, DELETED flags, close(true)")


def test_stls_refuses_an_unknown_ca(
    java: list[str], start_server: StartServer, tmp_path: Path
) -> None:
    server = start_server(tls=True)
    other = start_server(tls=True)
    assert other.tls is not None
    stderr = fetch(java, server, "stls", tmp_path, ca=other.tls.ca_path, expect=(1,))
    assert b"PKIX path" in stderr or b"SSLHandshakeException" in stderr
    assert server.history.command_lines() == ["CAPA", "STLS"]  # no password sent
