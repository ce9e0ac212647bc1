"""fakepop3 record against fakepop3 itself: record a persona's server with a generated
maildrop, replay the capture, and a fresh client sees the same; nothing is deleted."""

from __future__ import annotations

import gc
import poplib
import subprocess
from pathlib import Path

import pytest

from fakepop3 import POP3Server
from fakepop3.cli import main as cli_main


def _look(server: POP3Server, user: str, password: str) -> dict[str, object]:
    """Everything a client can see of a server, but the UIDLs (the replay makes its own)."""
    client = poplib.POP3(server.host, server.port)
    seen: dict[str, object] = {"greeting": client.getwelcome()}
    try:
        seen["capa"] = client._longcmd("CAPA")[:2]
    except poplib.error_proto as error:
        seen["capa"] = error.args
    for command in ("XYZZY", "STAT", "PASS x"):
        try:
            seen[command] = client._shortcmd(command)
        except poplib.error_proto as error:
            seen[command] = error.args
    seen["user"] = client.user(user)
    seen["pass"] = client.pass_(password)
    seen["capa after"] = client._longcmd("CAPA")[:2]
    seen["stat"] = client.stat()
    seen["list"] = client.list()[:2]
    count = client.stat()[0]
    seen["messages"] = [client.retr(n)[1] for n in range(1, count + 1)]
    seen["quit"] = client.quit()
    return seen


@pytest.mark.parametrize("persona", ["hmailserver", "courier", "gmail"])
def test_record_and_replay(
    persona: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = tmp_path / "capture"
    with POP3Server({"alice": "s3cret!"}, persona=persona) as original:
        original.mailbox("alice").generate(6, seed=7)
        original.mailbox("alice").add(b"Subject: dots\r\n\r\n.leading dot\r\n..two\r\nend\r\n")
        before = [m.crlf for m in original.mailbox("alice").messages]
        monkeypatch.setenv("POP_PASSWORD", "s3cret!")
        status = cli_main(
            ["record", "--upstream", f"{original.host}:{original.port}", "--user", "alice",
             "--password-env", "POP_PASSWORD", "--out", str(out)]
        )  # fmt: skip
        assert status == 0, capsys.readouterr().err
        assert "7 messages" in capsys.readouterr().out
        # nothing changed: no DELE, every message still there
        assert [m.crlf for m in original.mailbox("alice").messages] == before
        commands = [c.command for s in original.history.sessions for c in s.commands]
        assert "DELE" not in commands and commands[-1] == "QUIT"
        if persona != "gmail":  # gmail hides what was popped: look before recording there
            expected = _look(original, "alice", "s3cret!")
    files = sorted((out / "mail").iterdir())
    assert [f.name for f in files] == [f"{n:04d}.eml" for n in range(1, 8)]
    assert [f.read_bytes() for f in files] == before  # byte for byte
    transcript = (out / "transcript.txt").read_text()
    assert "s3cret!" not in transcript and "PASS ***" in transcript
    assert "lines of the message)" in transcript
    with POP3Server({"alice": "s3cret!"}, persona_file=out / "persona.toml") as replay:
        replay.mailbox("alice").load(out / "mail")
        seen = _look(replay, "alice", "s3cret!")
    if persona != "gmail":
        assert seen == expected
    else:
        assert seen["greeting"] == b"+OK Gpop ready for requests from 192.168.1.1 a1b2c3d4e5"
        assert seen["pass"] == b"+OK Welcome."


def test_record_through_the_cli_and_replay_with_load(tmp_path: Path) -> None:
    import sys

    out = tmp_path / "c"
    with POP3Server({"bob": "pw"}, persona="dovecot") as original:
        original.mailbox("bob").generate(3, seed=1)
        result = subprocess.run(
            [sys.executable, "-m", "fakepop3", "record", "--upstream",
             f"{original.host}:{original.port}", "--user", "bob", "--password-env", "PW",
             "--out", str(out), "--top-only"],
            env={"PW": "pw", "PATH": "/usr/bin:/bin"}, capture_output=True, text=True,
            timeout=60,
        )  # fmt: skip
        assert result.returncode == 0, result.stderr
        headers = [m.crlf.split(b"\r\n\r\n", 1)[0] for m in original.mailbox("bob").messages]
    got = [f.read_bytes() for f in sorted((out / "mail").iterdir())]
    assert [g.rstrip(b"\r\n") for g in got] == headers  # TOP n 0: headers only
    persona = (out / "persona.toml").read_text()
    assert 'greeting = "Dovecot ready."' in persona
    assert 'mechanisms = ["PLAIN"]' in persona


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["--upstream", "nohost", "--user", "a", "--password-env", "P", "--out", "x"], {"P": "p"},
         "--upstream 'nohost': expected HOST:PORT"),
        (["--upstream", "h:1", "--user", "a", "--password-env", "NOPE_UNSET", "--out", "x"], {},
         "--password-env NOPE_UNSET: that variable is not set"),
        (["--upstream", "h:1"], {}, "the following arguments are required"),
    ],
)  # fmt: skip
def test_bad_record_arguments(
    argv: list[str], env: dict[str, str], message: str, monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:  # fmt: skip
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    assert cli_main(["record", *argv]) == 2
    err = capsys.readouterr().err
    assert err.startswith("fakepop3: error: ") and message in err and err.count("\n") == 1


def test_record_reports_a_refused_login_and_a_closed_port(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("P", "wrong")
    with POP3Server({"alice": "right"}) as server:
        argv = ["record", "--upstream", f"{server.host}:{server.port}", "--user", "alice",
                "--password-env", "P", "--out", str(tmp_path / "o")]  # fmt: skip
        assert cli_main(argv) == 1
        assert "the server said: [AUTH] Authentication failed." in capsys.readouterr().err
        port = server.port
    argv[2] = f"127.0.0.1:{port}"
    assert cli_main(argv) == 1
    assert capsys.readouterr().err.startswith(f"fakepop3: error: 127.0.0.1:{port}: ")


@pytest.mark.parametrize("mode", ["--tls", "--stls"])
def test_record_over_tls(
    mode: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("P", "pw")
    with POP3Server({"alice": "pw"}, tls=True, tls_port=0, persona="dovecot") as server:
        assert server.tls is not None
        server.mailbox("alice").add(b"Subject: secure\r\n\r\nhello\r\n")
        port = server.tls_port if mode == "--tls" else server.port
        argv = ["record", "--upstream", f"localhost:{port}", mode, "--cafile",
                str(server.tls.ca_path), "--user", "alice", "--password-env", "P",
                "--out", str(tmp_path / "o")]  # fmt: skip
        assert cli_main(argv) == 0, capsys.readouterr().err
    assert (
        tmp_path / "o" / "mail" / "0001.eml"
    ).read_bytes() == b"Subject: secure\r\n\r\nhello\r\n"
    assert "C: PASS ***" in (tmp_path / "o" / "transcript.txt").read_text()


def test_record_masks_sasl_and_handles_a_server_without_capa_or_uidl(tmp_path: Path) -> None:
    from fakepop3._record import _Transcript

    transcript = _Transcript()
    transcript.sent(b"AUTH PLAIN AGFsaWNlAHB3")
    transcript.received(b"+OK")
    transcript.sent(b"AUTH LOGIN")
    transcript.received(b"+ VXNlcm5hbWU6")
    transcript.sent(b"YWxpY2U=")
    transcript.sent(b"APOP alice 0123456789abcdef0123456789abcdef")
    transcript.sent(b"RETR 9")
    transcript.received(b"-ERR There's no message 9.")
    assert transcript.lines == [
        "C: AUTH PLAIN ***",
        "S: +OK",
        "C: AUTH LOGIN",
        "S: + VXNlcm5hbWU6",
        "C: *** (SASL response)",
        "C: APOP alice ***",
        "C: RETR 9",
        "S: -ERR There's no message 9.",
    ]


def test_record_a_qmail_like_server(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """No CAPA, an APOP timestamp in the greeting, no UIDL: the persona file says so."""
    monkeypatch.setenv("P", "pw")
    with POP3Server({"alice": "pw"}, persona="qmail", disable=["UIDL"]) as server:
        server.mailbox("alice").add(b"Subject: q\r\n\r\nq\r\n")
        argv = ["record", "--upstream", f"{server.host}:{server.port}", "--user", "alice",
                "--password-env", "P", "--out", str(tmp_path / "o")]  # fmt: skip
        assert cli_main(argv) == 0, capsys.readouterr().err
    persona = (tmp_path / "o" / "persona.toml").read_text()
    assert 'greeting = ""' in persona and "apop = true" in persona
    assert "supported = false" in persona
    assert 'unknown_command = "authorization first"' in persona
    with POP3Server({"alice": "pw"}, persona_file=tmp_path / "o" / "persona.toml") as replay:
        client = poplib.POP3(replay.host, replay.port)
        assert client.getwelcome().startswith(b"+OK <")
        with pytest.raises(poplib.error_proto, match="authorization first"):
            client._longcmd("CAPA")
        client.quit()


def _dovecot() -> object:
    try:
        from bench.targets import DovecotTarget
    except ImportError:  # pragma: no cover - the sdist's layout
        pytest.skip("bench/ is not importable")
    target = DovecotTarget(max_sessions=10)
    reason = target.unavailable()
    if reason is not None:  # pragma: no cover - CI installs it (.ci/install-clients)
        pytest.skip(f"dovecot: {reason}")
    return target


def test_record_dovecot_and_replay_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A real server: Dovecot on loopback in a temporary folder (bench/targets.py), its
    Maildir holding the benchmark's ten messages (some lines start with a dot)."""
    from bench.targets import PASSWORD, session_messages

    target = _dovecot()
    running = target.start(1, "session")  # type: ignore[attr-defined]
    out = tmp_path / "capture"
    try:

        class Upstream:  # what _look needs of a server
            host, port = running.host, running.port

        maildir = Path(running.extra["dir"]) / "mail" / "u0" / "cur"
        files_before = sorted(p.name for p in maildir.iterdir())
        monkeypatch.setenv("P", PASSWORD)
        argv = ["record", "--upstream", f"{running.host}:{running.port}", "--user", "u0",
                "--password-env", "P", "--out", str(out)]  # fmt: skip
        assert cli_main(argv) == 0, capsys.readouterr().err
        assert sorted(p.name for p in maildir.iterdir()) == files_before  # nothing deleted
        expected = _look(Upstream, "u0", PASSWORD)  # type: ignore[arg-type]
    finally:
        running.stop()
        # bench/targets.py leaves the stderr pipe of its Popen open: close it here
        for obj in gc.get_objects():
            if isinstance(obj, subprocess.Popen) and obj.pid == running.pid and obj.stderr:
                obj.stderr.close()
    got = [f.read_bytes() for f in sorted((out / "mail").iterdir())]
    assert got == session_messages()  # byte for byte, dot-unstuffed
    persona = (out / "persona.toml").read_text()
    assert 'greeting = "Dovecot' in persona and 'mechanisms = ["PLAIN"]' in persona
    transcript = (out / "transcript.txt").read_text()
    assert transcript.startswith("S: +OK Dovecot") and transcript.count("S: +OK Dovecot") == 1
    assert PASSWORD not in transcript
    with POP3Server({"u0": PASSWORD}, persona_file=out / "persona.toml") as replay:
        replay.mailbox("u0").load(out / "mail")
        seen = _look(replay, "u0", PASSWORD)
    assert seen == expected


HANDMADE = (
    b"Return-Path: <carol.secret@private-corp.example>\r\n"
    b"Received: from mx.private-corp.example (mx.private-corp.example [10.1.2.3])\r\n"
    b"\tby pop.example.com with ESMTP id 42; Mon, 1 Jul 2024 10:00:00 +0000\r\n"
    b'From: "Carol Secret" <carol.secret@private-corp.example>\r\n'
    b"To: Dave Hidden <dave@hidden-family.example>, erin@private-corp.example\r\n"
    b"Subject: Re: the quarterly numbers for Carol\r\n"
    b"Date: Mon, 1 Jul 2024 10:00:00 +0000\r\n"
    b"Message-ID: <abc.123@mx.private-corp.example>\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/mixed; boundary="outer"\r\n'
    b"\r\n"
    b"This is a multi-part message.\r\n"
    b"--outer\r\n"
    b'Content-Type: multipart/alternative; boundary="inner"\r\n'
    b"\r\n"
    b"--inner\r\n"
    b"Content-Type: text/plain; charset=utf-8\r\n"
    b"Content-Transfer-Encoding: quoted-printable\r\n"
    b"\r\n"
    b"Dear Dave, call me at carol.secret@private-corp.example =E2=80=94 soon=\r\n"
    b" please.\r\n"
    b"--inner\r\n"
    b"Content-Type: text/html; charset=utf-8\r\n"
    b"\r\n"
    b'<html><body><p>Dear Dave</p><a href="mailto:dave@hidden-family.example">x</a></body></html>\r\n'
    b"--inner--\r\n"
    b"--outer\r\n"
    b'Content-Type: application/pdf; name="report.pdf"\r\n'
    b"Content-Transfer-Encoding: base64\r\n"
    b"\r\n"
    b"JVBERi0xLjQKJcfsj6IKNSAwIG9iago8PC9MZW5ndGggNiAwIFIvRmlsdGVyIC9GbGF0ZURlY29k\r\n"
    b"ZT4+CnN0cmVhbQp4nA==\r\n"
    b"--outer--\r\n"
)


def _structure(raw: bytes) -> list[str]:
    import email

    return [part.get_content_type() for part in email.message_from_bytes(raw).walk()]


def _header_names(raw: bytes) -> list[bytes]:
    head = raw.split(b"\r\n\r\n", 1)[0]
    return [line.split(b":", 1)[0] for line in head.split(b"\r\n") if line[:1] not in (b" ", b"\t")]


def _record_anonymized(server: POP3Server, out: Path, seed: int) -> None:
    argv = ["record", "--upstream", f"{server.host}:{server.port}", "--user",
            "alice@private-corp.example", "--password-env", "P", "--out", str(out),
            "--anonymize", "--seed", str(seed)]  # fmt: skip
    assert cli_main(argv) == 0


def test_record_anonymize_keeps_the_structure_and_drops_every_address(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    monkeypatch.setenv("P", "pw")
    with POP3Server({"alice@private-corp.example": "pw"}, persona="gmail") as server:
        box = server.mailbox("alice@private-corp.example")
        box.add(HANDMADE)
        box.generate(8, seed=11)
        originals = [m.crlf for m in box.messages]
        _record_anonymized(server, tmp_path / "a", seed=3)
        _record_anonymized(server, tmp_path / "b", seed=3)  # recent: none popped yet? see below
    capsys.readouterr()
    addresses = {
        a.lower()
        for raw in originals
        for a in re.findall(rb"[A-Za-z0-9._%+\-=]+@[A-Za-z0-9\-]+(?:\.[A-Za-z0-9\-]+)+", raw)
    }
    assert b"carol.secret@private-corp.example" in addresses and len(addresses) > 5
    written = [f.read_bytes() for f in sorted((tmp_path / "a" / "mail").iterdir())]
    assert len(written) == len(originals)
    everything = b"\n".join(written).lower()
    everything += (tmp_path / "a" / "persona.toml").read_bytes().lower()
    everything += (tmp_path / "a" / "transcript.txt").read_bytes().lower()
    assert [a for a in addresses if a in everything] == []
    assert b"carol" not in written[0].lower() and b"dave" not in written[0].lower()
    for before, after in zip(originals, written, strict=True):
        assert _structure(after) == _structure(before)
        assert _header_names(after) == _header_names(before)
        dates = [line for line in before.split(b"\r\n") if line.startswith(b"Date:")]
        assert dates and all(d in after for d in dates)
        assert abs(len(after) - len(before)) <= 0.05 * len(before)
    assert b"Mon, 1 Jul 2024 10:00:00 +0000" in written[0].split(b"Received:")[1]
    assert b"Subject: Re: " in written[0]
    assert b'boundary="outer"' in written[0] and b"--inner--\r\n" in written[0]
    # Gmail's normal mode: the second recording sees nothing left to pop
    assert list((tmp_path / "b" / "mail").iterdir()) == []


def test_record_anonymize_is_seeded(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("P", "pw")
    with POP3Server({"alice@private-corp.example": "pw"}) as server:
        server.mailbox("alice@private-corp.example").add(HANDMADE)
        for name, seed in (("a", 5), ("b", 5), ("c", 6)):
            _record_anonymized(server, tmp_path / name, seed)
    a, b, c = ((tmp_path / n / "mail" / "0001.eml").read_bytes() for n in "abc")
    assert a == b and a != c
    with POP3Server({"alice": "pw"}) as replay:  # an anonymized capture loads as any other
        replay.mailbox("alice").load(tmp_path / "a" / "mail")
        assert replay.mailbox("alice").messages[0].crlf == a


# --- fakepop3 proxy ---------------------------------------------------------------------------
class _RunningProxy:
    """fakepop3 proxy in a thread of this process (its own event loop)."""

    def __init__(self, argv: list[str]) -> None:
        import asyncio
        import threading

        from fakepop3._proxy import Proxy, _parser

        self.proxy = Proxy(_parser().parse_args(argv))
        self.thread = threading.Thread(target=asyncio.run, args=(self.proxy.serve(),))
        self.thread.start()
        assert self.proxy.ready.wait(10)

    def __enter__(self) -> _RunningProxy:
        return self

    def __exit__(self, *exc: object) -> None:
        self.proxy.stop()
        self.thread.join(10)


def _wait_for_file(path: Path) -> str:
    import time

    deadline = time.monotonic() + 10
    # Written when the session ends, on the proxy's thread: the file can exist, still empty,
    # before its text is in (seen on Python 3.13), so wait for the text too.
    while not path.exists() or not path.read_text():
        assert time.monotonic() < deadline, f"{path} never appeared (or stayed empty)"
        time.sleep(0.01)
    return path.read_text()


PROXIED = b"Subject: hi\r\n\r\n.dot line\r\nhello\r\n"


def test_proxy_records_both_directions_with_secrets_masked(tmp_path: Path) -> None:
    import base64

    with POP3Server({"alice": "s3cret!"}, persona="courier") as upstream:
        upstream.mailbox("alice").add(PROXIED)
        argv = ["--upstream", f"{upstream.host}:{upstream.port}", "--record", str(tmp_path)]
        with _RunningProxy(argv) as running:
            client = poplib.POP3("127.0.0.1", running.proxy.port)
            assert client.getwelcome() == b"+OK Hello there."
            client.user("alice")
            assert client.pass_("s3cret!") == b"+OK logged in."
            assert client.retr(1)[1] == [b"Subject: hi", b"", b".dot line", b"hello"]
            client.quit()
            transcript = _wait_for_file(tmp_path / "session-0001.txt")
            # a second session: a refused PASS (credentials base64'd) is masked all the same
            client = poplib.POP3("127.0.0.1", running.proxy.port)
            plain = base64.b64encode(b"\0alice\0s3cret!").decode()
            client._shortcmd("USER alice")
            with pytest.raises(poplib.error_proto):
                client._shortcmd(f"PASS {plain}")
            client.close()
            second = _wait_for_file(tmp_path / "session-0002.txt")
    assert transcript.splitlines() == [
        "S: +OK Hello there.",
        "C: USER alice",
        "S: +OK Password required.",
        "C: PASS ***",
        "S: +OK logged in.",
        "C: RETR 1",
        f"S: +OK {len(PROXIED)} octets",
        "S: (4 lines of the message)",
        "S: .",
        "C: QUIT",
        "S: +OK Bye-bye.",
    ]
    assert "s3cret!" not in second and plain not in second and "C: PASS ***" in second


def test_proxy_answers_stls_with_its_test_certificate(tmp_path: Path) -> None:
    import ssl
    import sys

    if sys.version_info < (3, 11):  # pragma: no cover
        pytest.skip("StreamWriter.start_tls is Python 3.11+")
    ca = tmp_path / "proxy-ca.pem"
    with POP3Server({"alice": "pw"}) as upstream:
        argv = ["--upstream", f"{upstream.host}:{upstream.port}", "--record",
                str(tmp_path / "t"), "--ca-out", str(ca)]  # fmt: skip
        with _RunningProxy(argv) as running:
            client = poplib.POP3("localhost", running.proxy.port)
            context = ssl.create_default_context(cafile=str(ca))
            client._shortcmd("STLS")
            client.sock = context.wrap_socket(client.sock, server_hostname="localhost")
            client.file = client.sock.makefile("rb")
            client.user("alice")
            assert client.pass_("pw") == b"+OK Logged in."
            client.quit()
            transcript = _wait_for_file(tmp_path / "t" / "session-0001.txt")
    assert "C: STLS" in transcript and "the proxy's, a test certificate" in transcript
    assert "C: PASS ***" in transcript and "pw" not in transcript.replace("PASS ***", "")


def test_proxy_to_an_unreachable_server_and_bad_arguments(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import socket

    with socket.socket() as s:  # a port nobody listens on
        s.bind(("127.0.0.1", 0))
        dead = s.getsockname()[1]
    with _RunningProxy(["--upstream", f"127.0.0.1:{dead}", "--record", str(tmp_path)]) as running:
        with socket.create_connection(("127.0.0.1", running.proxy.port), timeout=10) as conn:
            assert conn.makefile("rb").readline() == (
                b"-ERR [SYS/TEMP] The proxy cannot reach the server.\r\n"
            )
        assert "(upstream 127.0.0.1:" in _wait_for_file(tmp_path / "session-0001.txt")
    assert cli_main(["proxy", "--upstream", "x", "--record", str(tmp_path)]) == 2
    assert "--upstream 'x': expected HOST:PORT" in capsys.readouterr().err
    assert cli_main(["proxy", "--upstream", "h:1", "--record", str(tmp_path), "--listen", "x"]) == 2
    assert "--listen 'x': expected HOST:PORT" in capsys.readouterr().err
