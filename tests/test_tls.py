"""TLS: STLS (RFC 2595) and implicit TLS, with certificate verification always on."""

from __future__ import annotations

import base64
import gc
import poplib
import socket
import ssl
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from fakepop3 import POP3Server, TLSCertificates

PASSWORD = "secret"
MESSAGE = b"Subject: over TLS\r\n\r\nhello\r\n"


@pytest.fixture
def server() -> Iterator[POP3Server]:
    with POP3Server(users={"alice": PASSWORD}, tls=True, tls_port=0) as server:
        server.mailbox("alice").add(MESSAGE)
        yield server
        server.raise_errors()


def context(server: POP3Server) -> ssl.SSLContext:
    assert server.tls is not None
    ctx = server.tls.client_context()
    assert ctx.verify_mode is ssl.CERT_REQUIRED and ctx.check_hostname
    return ctx


def readline(sock: socket.socket | ssl.SSLSocket) -> bytes:
    """One reply line, read byte by byte so nothing after it is consumed."""
    line = b""
    while not line.endswith(b"\n"):
        byte = sock.recv(1)
        if not byte:
            raise ConnectionError(f"connection closed after {line!r}")
        line += byte
    return line


def close_after_failed_stls(client: poplib.POP3) -> None:
    """poplib.close() raises EBADF once a failed handshake has closed the socket."""
    client.file.close()
    client.sock.close()


# --- STLS --------------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_stls_with_certificate_and_hostname_verification(server: POP3Server, host: str) -> None:
    client = poplib.POP3(host, server.port, timeout=10)
    assert client.stls(context(server)).startswith(b"+OK")  # sends CAPA, then STLS
    assert isinstance(client.sock, ssl.SSLSocket)
    assert client.sock.getpeercert()  # verified: a CERT_NONE socket returns {}
    client.user("alice")
    client.pass_(PASSWORD)
    assert client.retr(1)[1] == MESSAGE.rstrip(b"\r\n").split(b"\r\n")
    client.quit()
    server.wait_for_sessions(1)
    [session] = server.history.sessions
    assert session.tls
    assert [(c.line, c.tls) for c in session.commands] == [
        ("CAPA", False),
        ("STLS", False),
        ("USER alice", True),
        ("PASS ***", True),
        ("RETR 1", True),
        ("QUIT", True),
    ]


def test_capa_changes_after_stls(server: POP3Server) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    before = client.capa()
    client.stls(context(server))
    after = client.capa()
    # RFC 2595 s4: the client must discard cached capabilities; STLS is gone now.
    assert "STLS" in before and "STLS" not in after
    assert {k: v for k, v in before.items() if k != "STLS"} == after
    client.user("alice")
    client.pass_(PASSWORD)
    logged_in = client.capa()
    assert "STLS" not in logged_in and logged_in["IMPLEMENTATION"] == ["fakepop3"]
    client.quit()


def test_stls_twice_is_refused(server: POP3Server) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.stls(context(server))
    # poplib itself refuses a second stls(), so send the command as a client would.
    with pytest.raises(poplib.error_proto, match="-ERR TLS is already active"):
        client._shortcmd("STLS")
    client.user("alice")
    assert client.pass_(PASSWORD).startswith(b"+OK")  # the session goes on under TLS
    client.quit()


def test_stls_after_login_is_refused(server: POP3Server) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.user("alice")
    client.pass_(PASSWORD)
    with pytest.raises(poplib.error_proto, match="only valid before login"):
        client._shortcmd("STLS")
    assert client.stat()[0] == 1  # still in plaintext, still working
    client.quit()


def test_stls_on_the_implicit_tls_port_is_refused(server: POP3Server) -> None:
    client = poplib.POP3_SSL(server.host, server.tls_port, timeout=10, context=context(server))
    assert "STLS" not in client.capa()
    with pytest.raises(poplib.error_proto, match="already active"):
        client._shortcmd("STLS")
    client.quit()


def test_stls_with_arguments_is_refused(server: POP3Server) -> None:
    client = poplib.POP3(server.host, server.port, timeout=10)
    with pytest.raises(poplib.error_proto, match="Too many arguments for STLS"):
        client._shortcmd("STLS now")
    client.quit()


def test_stls_after_utf8_is_refused() -> None:
    with POP3Server(users={"alice": PASSWORD}, tls=True, utf8=True) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        client.utf8()
        with pytest.raises(poplib.error_proto, match="not allowed after UTF8"):
            client._shortcmd("STLS")
        client.quit()


@pytest.mark.parametrize(
    "pipelined", [b"CAPA\r\n", b"USER alice\r\n", b"CAPA\r\nUSER alice\r\nPAS"]
)
def test_bytes_pipelined_after_stls_are_discarded(server: POP3Server, pipelined: bytes) -> None:
    # CVE-2011-0411: a command injected in the same packet as STLS must never be answered:
    # not in plaintext (the handshake would break) and not under TLS either.
    raw = socket.create_connection((server.host, server.port), timeout=10)
    assert readline(raw).startswith(b"+OK")
    raw.sendall(b"STLS\r\n" + pipelined)
    assert readline(raw) == b"+OK Begin TLS negotiation now.\r\n"
    tls = context(server).wrap_socket(raw, server_hostname="localhost")  # fails on plaintext
    try:
        # Under TLS the first reply is to our PASS: no CAPA listing, no "+OK" to the USER.
        tls.sendall(f"PASS {PASSWORD}\r\n".encode())
        assert readline(tls) == b"-ERR No username given; send USER first.\r\n"
        tls.sendall(b"QUIT\r\n")
        assert readline(tls) == b"+OK Logging out.\r\n"
    finally:
        tls.close()
    server.wait_for_sessions(1)
    assert server.history.command_lines() == ["STLS", "PASS ***", "QUIT"]


def test_no_stls_when_tls_is_off() -> None:
    with POP3Server(users={"alice": PASSWORD}) as server:
        assert server.tls is None
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert "STLS" not in client.capa()
        with pytest.raises(poplib.error_proto, match="no TLS certificate"):
            client._shortcmd("STLS")
        with pytest.raises(poplib.error_proto, match="STLS not supported"):
            client.stls()  # poplib checks CAPA first
        client.quit()


def test_stls_switched_off_with_tls_available() -> None:
    with POP3Server(users={"alice": PASSWORD}, tls=True, disable={"STLS"}) as server:
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert "STLS" not in client.capa()
        with pytest.raises(poplib.error_proto, match="Unknown command"):
            client._shortcmd("STLS")
        client.quit()


# --- require_tls -------------------------------------------------------------------------
def test_require_tls_refuses_every_login_until_stls(server: POP3Server) -> None:
    with POP3Server(users={"alice": PASSWORD}, tls=True, require_tls=True) as strict:
        client = poplib.POP3(strict.host, strict.port, timeout=10)
        caps = client.capa()
        assert "STLS" in caps and "USER" not in caps and "SASL" not in caps
        plain = base64.b64encode(f"\0alice\0{PASSWORD}".encode()).decode()
        digest = "0" * 32
        for line in (
            "USER alice",
            f"PASS {PASSWORD}",
            f"APOP alice {digest}",
            f"AUTH PLAIN {plain}",
        ):
            with pytest.raises(poplib.error_proto) as refused:
                client._shortcmd(line)
            assert "use STLS first" in str(refused.value), line
        client.stls(context(strict))
        caps = client.capa()
        assert "USER" in caps and caps["SASL"][0] == "CRAM-MD5" and "STLS" not in caps
        client.user("alice")
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()
        strict.wait_for_sessions(1)
        assert PASSWORD not in strict.history.to_jsonl()
        assert all(
            c.tls for c in strict.history.filter(ok=True) if c.command not in ("CAPA", "STLS")
        )


def test_require_tls_allows_login_on_the_implicit_tls_port() -> None:
    with POP3Server(users={"alice": PASSWORD}, tls_port=0, require_tls=True) as strict:
        client = poplib.POP3_SSL("localhost", strict.tls_port, timeout=10, context=context(strict))
        client.user("alice")
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()


def test_require_tls_without_tls_is_a_configuration_error() -> None:
    with pytest.raises(ValueError, match="require_tls=True needs TLS"):
        POP3Server(require_tls=True)


# --- implicit TLS ------------------------------------------------------------------------
@pytest.mark.parametrize("host", ["localhost", "127.0.0.1"])
def test_pop3_ssl_with_verification(server: POP3Server, host: str) -> None:
    client = poplib.POP3_SSL(host, server.tls_port, timeout=10, context=context(server))
    client.user("alice")
    client.pass_(PASSWORD)
    assert client.stat()[0] == 1
    client.quit()
    server.wait_for_sessions(1)
    assert server.history.sessions[0].tls
    assert all(c.tls for c in server.history)


def test_implicit_tls_and_stls_share_the_store(server: POP3Server) -> None:
    secure = server.ssl_client("alice")
    secure.dele(1)
    secure.quit()
    server.mailbox("alice").add(b"Subject: second\r\n\r\nx\r\n")
    client = poplib.POP3(server.host, server.port, timeout=10)
    client.stls(context(server))
    client.user("alice")
    client.pass_(PASSWORD)
    assert client.stat()[0] == 1
    assert b"Subject: second" in client.retr(1)[1]
    client.quit()


def test_verification_fails_without_the_ca(server: POP3Server) -> None:
    untrusting = ssl.create_default_context()
    with pytest.raises(ssl.SSLCertVerificationError):
        poplib.POP3_SSL("localhost", server.tls_port, timeout=10, context=untrusting)
    client = poplib.POP3(server.host, server.port, timeout=10)
    with pytest.raises(ssl.SSLCertVerificationError):
        client.stls(untrusting)
    close_after_failed_stls(client)


def test_hostname_is_checked() -> None:
    certs = TLSCertificates.generate(names=("mail.example.test",))
    with (
        POP3Server(users={"alice": PASSWORD}, tls=certs, tls_port=0) as server,
        pytest.raises(ssl.SSLCertVerificationError, match="mismatch|doesn't match"),
    ):
        poplib.POP3_SSL("localhost", server.tls_port, timeout=10, context=context(server))


# --- certificates ------------------------------------------------------------------------
def test_ca_pem_and_ca_path(server: POP3Server) -> None:
    tls = server.tls
    assert tls is not None and tls.ca_pem is not None
    assert tls.ca_pem.startswith(b"-----BEGIN CERTIFICATE-----")
    path = tls.ca_path
    assert path.read_bytes() == tls.ca_pem
    ctx = ssl.create_default_context(cafile=str(path))
    client = poplib.POP3_SSL("127.0.0.1", server.tls_port, timeout=10, context=ctx)
    client.quit()


def test_ca_file_is_removed_when_the_server_stops() -> None:
    with POP3Server(tls=True) as server:
        assert server.tls is not None
        path = server.tls.ca_path
        assert path.is_file()
    assert not path.exists()


def test_write_ca(server: POP3Server, tmp_path: Path) -> None:
    assert server.tls is not None
    written = server.tls.write_ca(tmp_path / "ca.pem")
    assert written.read_bytes() == server.tls.ca_pem


def test_each_server_gets_its_own_ca() -> None:
    with POP3Server(tls=True) as one, POP3Server(tls=True) as two:
        assert one.tls is not None and two.tls is not None
        assert one.tls.ca_pem != two.tls.ca_pem
        client = poplib.POP3(one.host, one.port, timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError):
            client.stls(two.tls.client_context())
        close_after_failed_stls(client)


def test_user_supplied_certificate_files(tmp_path: Path) -> None:
    ca = trustme.CA()
    cert = ca.issue_cert("localhost", "127.0.0.1")
    cert.private_key_pem.write_to_path(str(tmp_path / "key.pem"))
    cert.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    ca.cert_pem.write_to_path(str(tmp_path / "ca.pem"))
    certs = TLSCertificates.from_files(
        tmp_path / "cert.pem", tmp_path / "key.pem", tmp_path / "ca.pem"
    )
    assert certs.ca_pem == ca.cert_pem.bytes()
    with POP3Server(users={"alice": PASSWORD}, tls=certs, tls_port=0) as server:
        ctx = ssl.create_default_context(cafile=str(tmp_path / "ca.pem"))
        client = poplib.POP3_SSL("localhost", server.tls_port, timeout=10, context=ctx)
        client.user("alice")
        assert client.pass_(PASSWORD).startswith(b"+OK")
        client.quit()
        plain = poplib.POP3(server.host, server.port, timeout=10)
        plain.stls(certs.client_context())
        plain.quit()


def test_user_supplied_files_errors(tmp_path: Path) -> None:
    ca = trustme.CA()
    one, other = ca.issue_cert("localhost"), ca.issue_cert("localhost")
    one.cert_chain_pems[0].write_to_path(str(tmp_path / "cert.pem"))
    other.private_key_pem.write_to_path(str(tmp_path / "other-key.pem"))
    with pytest.raises(FileNotFoundError, match="TLS key file not found: .*missing.pem"):
        TLSCertificates.from_files(tmp_path / "cert.pem", tmp_path / "missing.pem")
    with pytest.raises(ValueError, match="cannot load the TLS certificate"):
        TLSCertificates.from_files(tmp_path / "cert.pem", tmp_path / "other-key.pem")


def test_from_files_without_ca_has_no_ca_path(tmp_path: Path) -> None:
    cert = trustme.CA().issue_cert("localhost")
    cert.private_key_and_cert_chain_pem.write_to_path(str(tmp_path / "both.pem"))
    certs = TLSCertificates.from_files(tmp_path / "both.pem", tmp_path / "both.pem")
    assert certs.ca_pem is None
    with pytest.raises(RuntimeError, match="pass ca= to from_files"):
        _ = certs.ca_path


# --- user story 4: a client that must never send a password in clear text ---------------
class CarefulClient:
    """Logs in only after STLS; refuses to send credentials over plaintext."""

    def __init__(self, host: str, port: int, ca: ssl.SSLContext) -> None:
        self.host, self.port, self.context = host, port, ca

    def count_messages(self, user: str, password: str) -> int:
        client = poplib.POP3(self.host, self.port, timeout=10)
        try:
            if "STLS" not in client.capa():
                raise ConnectionRefusedError("server offers no STLS; not sending the password")
            client.stls(self.context)
            client.user(user)
            client.pass_(password)
            return client.stat()[0]
        finally:
            client.quit()


def test_story_4_client_refuses_without_stls() -> None:
    with POP3Server(users={"alice": PASSWORD}, tls=True, disable={"STLS"}) as server:
        app = CarefulClient(server.host, server.port, context(server))
        with pytest.raises(ConnectionRefusedError, match="no STLS"):
            app.count_messages("alice", PASSWORD)
        server.wait_for_sessions(1)
        assert server.history.command_lines() == ["CAPA", "QUIT"]
        for command in ("USER", "PASS", "APOP", "AUTH"):
            server.history.assert_not_sent(command)


def test_story_4_client_upgrades_before_login(server: POP3Server) -> None:
    app = CarefulClient(server.host, server.port, context(server))
    assert app.count_messages("alice", PASSWORD) == 1
    server.wait_for_sessions(1)
    commands = server.history.commands
    stls = next(i for i, c in enumerate(commands) if c.command == "STLS")
    assert all(c.command in ("CAPA",) and not c.tls for c in commands[:stls])
    assert commands[stls].ok and all(c.tls for c in commands[stls + 1 :])
    assert [c.command for c in commands[stls + 1 :]] == ["USER", "PASS", "STAT", "QUIT"]


def test_ca_file_does_not_outlive_the_certificates() -> None:
    certs = TLSCertificates.generate()
    path = certs.ca_path
    certs.cleanup()
    assert not path.exists()
    again = certs.ca_path  # written again on demand
    assert again.read_bytes() == certs.ca_pem
    del certs
    gc.collect()
    assert not again.exists()  # removed with the object, even without cleanup()


def test_a_session_that_quit_stays_quit_when_the_server_stops_during_the_tls_close() -> None:
    """After QUIT the server closes TLS with close_notify and waits for the client's; a client
    that never sends it keeps the connection open.  Stopping the server then must not record
    the session as ended by the server: it ended with QUIT."""
    server = POP3Server(users={"alice": PASSWORD}, tls_port=0)
    with server:
        raw = socket.create_connection((server.host, server.tls_port), timeout=10)
        with context(server).wrap_socket(raw, server_hostname="localhost") as sock:
            assert readline(sock).startswith(b"+OK")
            for line in (b"USER alice", b"PASS secret", b"QUIT"):
                sock.sendall(line + b"\r\n")
                assert readline(sock).startswith(b"+OK")
            # QUIT answered; the TLS close is pending on our side (no close_notify sent yet).
            assert len(server._connections) == 1
            server.stop()
        [session] = server.history.sessions
        assert session.end_reason == "quit"
        assert [c.command for c in session.commands] == ["USER", "PASS", "QUIT"]
