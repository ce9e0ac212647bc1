"""TLS attacks and bad certificates (issue 18), against poplib, curl and a vulnerable client.

Bad certificate modes: a client that verifies (poplib with the test CA's context, curl with
``--cacert``) must fail with the right error; poplib without a context (its default, which
does *not* verify) gets through, and the history shows the login it should not have made.
"""

from __future__ import annotations

import contextlib
import poplib
import shutil
import socket
import ssl
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from fakepop3 import POP3Server, tls
from fakepop3.options import CERT_MODES as OPTION_CERT_MODES
from fakepop3.options import TLS_VERSIONS as OPTION_TLS_VERSIONS
from fakepop3.tls import CERT_MODES, TLS_VERSIONS, TLSCertificates

from .conftest import USERS, login

#: The verification error each bad mode gives a verifying client connecting to 127.0.0.1.
VERIFY_ERRORS = {
    "expired": "certificate has expired",
    "not-yet-valid": "certificate is not yet valid",
    "wrong-host": "IP address mismatch, certificate is not valid for '127.0.0.1'",
    "self-signed": "self-signed certificate",
    "untrusted-ca": "unable to get local issuer certificate",
    "missing-intermediate": "unable to get local issuer certificate",
}
#: curl's words for the same (exit status 60).
CURL_ERRORS = {
    "expired": "certificate has expired",
    "wrong-host": "127.0.0.1",
    "missing-intermediate": "unable to get local issuer certificate",
}
CURL = shutil.which("curl")
needs_curl = pytest.mark.skipif(CURL is None, reason="curl is not installed")


@contextlib.contextmanager
def serving(**options: object) -> Iterator[POP3Server]:
    with POP3Server(users=USERS, tls_port=0, **options) as server:  # type: ignore[arg-type]
        server.mailbox("alice").extend([b"Subject: hi\r\n\r\nHello\r\n"])
        yield server
    server.raise_errors()


def test_the_mode_lists_agree() -> None:
    assert OPTION_CERT_MODES == CERT_MODES
    assert OPTION_TLS_VERSIONS == TLS_VERSIONS
    assert set(VERIFY_ERRORS) == set(CERT_MODES) - {"valid"}


# --- certificate modes ---------------------------------------------------------------------
@pytest.mark.parametrize("mode", sorted(VERIFY_ERRORS))
def test_a_verifying_client_refuses_each_bad_certificate(mode: str) -> None:
    with serving(tls_cert=mode) as server:
        assert server.tls is not None and server.tls.mode == mode
        context = server.tls.client_context()
        with pytest.raises(ssl.SSLCertVerificationError) as implicit:
            poplib.POP3_SSL(server.host, server.tls_port, context=context, timeout=10)
        assert VERIFY_ERRORS[mode] in implicit.value.verify_message
        client = poplib.POP3(server.host, server.port, timeout=10)
        with pytest.raises(ssl.SSLCertVerificationError) as stls:
            client.stls(context)
        assert VERIFY_ERRORS[mode] in stls.value.verify_message
        client.sock.close()
        # A failed implicit-TLS handshake makes no session (the listener's handshake comes
        # first); the STLS one ends without a login.
        server.history.wait_for_sessions(1)
        assert not [c for c in server.history.commands if c.command in ("USER", "PASS")]


@pytest.mark.parametrize("mode", sorted(VERIFY_ERRORS))
def test_poplib_without_a_context_does_not_verify_and_the_history_shows_it(mode: str) -> None:
    with serving(tls_cert=mode) as server:
        client = poplib.POP3_SSL(server.host, server.tls_port, timeout=10)  # no context
        login(client)
        client.quit()
        server.history.wait_for_sessions(1)
        [session] = server.history.sessions
        assert session.tls and session.user == "alice"  # logged in over an unverified TLS


def test_the_valid_mode_and_its_helpers_keep_working() -> None:
    with serving(tls_cert="valid") as server:
        assert server.tls is not None and server.tls.mode == "valid"
        client = server.ssl_client("alice", "secret")  # the helpers verify, and pass
        assert client.stat() == (1, 22)
        client.quit()
        plain = poplib.POP3(server.host, server.port, timeout=10)
        plain.stls(server.tls.client_context())
        login(plain)
        plain.quit()


def test_a_variant_keeps_the_ca_clients_trust() -> None:
    certs = TLSCertificates.generate()
    expired = certs.variant("expired")
    assert expired.ca_pem == certs.ca_pem and expired.mode == "expired"
    assert expired.variant().mode == "valid"


def test_bad_modes_need_generated_certificates(tmp_path: Path) -> None:
    import trustme

    ca = trustme.CA()
    leaf = ca.issue_cert("localhost")
    cert, key = tmp_path / "cert.pem", tmp_path / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    own = TLSCertificates.from_files(cert, key)
    with pytest.raises(ValueError, match="tls_cert='expired' needs test certificates"):
        own.variant("expired")
    pinned = own.variant(version="1.3")
    assert pinned.version == "1.3" and pinned.mode == "valid"
    with pytest.raises(ValueError, match="tls_cert must be one of valid, expired"):
        own.variant("bogus")
    with pytest.raises(ValueError, match="tls_version must be one of 1.0"):
        own.variant(version="2")
    with pytest.raises(ValueError, match="needs certificates fakepop3 can load again"):
        TLSCertificates(own.server_context, None).variant(version="1.2")
    with pytest.raises(ValueError, match="version must be one of"):
        own.client_context("9")


@pytest.mark.pop3(tls_cert="wrong-host", tls_port=0, login=False)
def test_the_marker_takes_a_certificate_mode(pop3_server: POP3Server) -> None:
    assert pop3_server.tls is not None
    with pytest.raises(ssl.SSLCertVerificationError, match="IP address mismatch"):
        poplib.POP3_SSL(
            pop3_server.host,
            pop3_server.tls_port,
            context=pop3_server.tls.client_context(),
            timeout=10,
        )


@needs_curl
@pytest.mark.parametrize("mode", sorted(CURL_ERRORS))
def test_curl_refuses_bad_certificates(mode: str) -> None:
    with serving(tls_cert=mode) as server:
        assert server.tls is not None
        ca = server.tls.ca_path
        url = f"pop3s://{server.host}:{server.tls_port}/"
        done = subprocess.run(
            [CURL, "-sS", "--cacert", str(ca), "-u", "alice:secret", url],  # type: ignore[list-item]
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 60, done.stderr
        assert CURL_ERRORS[mode] in done.stderr
        insecure = subprocess.run(
            [CURL, "-sS", "-k", "-u", "alice:secret", url],  # type: ignore[list-item]
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert insecure.returncode == 0 and insecure.stdout.startswith("1 "), insecure.stderr


def test_the_cli_serves_a_bad_certificate(tmp_path: Path) -> None:
    from fakepop3.cli import make_server, options_from

    opts = options_from(["--tls-cert", "expired", "--tls-version", "1.3"], {})
    assert opts.tls_enabled
    server = make_server(opts)
    assert server.tls is not None
    assert (server.tls.mode, server.tls.version) == ("expired", "1.3")


# --- protocol pinning ----------------------------------------------------------------------
@pytest.mark.parametrize(("version", "other"), [("1.2", "1.3"), ("1.3", "1.2")])
def test_a_pinned_server_speaks_only_its_version(version: str, other: str) -> None:
    with serving(tls_version=version) as server:
        assert server.tls is not None
        client = poplib.POP3_SSL(
            server.host, server.tls_port, context=server.tls.client_context(), timeout=10
        )
        assert client.sock.version() == "TLSv" + version
        client.quit()
        with pytest.raises(ssl.SSLError):
            poplib.POP3_SSL(
                server.host, server.tls_port, context=server.tls.client_context(other), timeout=10
            )


@pytest.mark.parametrize("version", ["1.0", "1.1"])
def test_an_old_tls_version_where_openssl_allows_it(version: str) -> None:
    problem = tls._legacy_problem(version)
    if problem is not None:  # pragma: no cover - depends on the local OpenSSL
        with pytest.raises(ValueError, match=f"TLS {version} is not available here"):
            POP3Server(tls_version=version)
        pytest.skip(f"{ssl.OPENSSL_VERSION} refuses TLS {version}: {problem}")
    with serving(tls_version=version) as server:
        assert server.tls is not None
        # A client with today's defaults (TLS 1.2 and up) refuses the old server...
        with pytest.raises(ssl.SSLError):
            poplib.POP3_SSL(
                server.host, server.tls_port, context=server.tls.client_context(), timeout=10
            )
        # ...and one that allows the old version talks to it.
        client = poplib.POP3_SSL(
            server.host, server.tls_port, context=server.tls.client_context(version), timeout=10
        )
        assert client.sock.version() == {"1.0": "TLSv1", "1.1": "TLSv1.1"}[version]
        client.quit()


def test_an_old_version_openssl_refuses_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(tls, "_legacy_problem", lambda version: "no protocols available")
    with pytest.raises(ValueError, match=r"TLS 1.0 is not available here: OpenSSL .* refuses it"):
        TLSCertificates.generate(version="1.0")


def test_the_legacy_probe_reports_a_failed_handshake() -> None:
    server = tls._server_context("1.2")
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    client.minimum_version = client.maximum_version = ssl.TLSVersion.TLSv1_3
    with pytest.raises(ssl.SSLError):  # no certificate on the server: the handshake fails
        tls._handshake(server, client)


# --- STLS response injection ----------------------------------------------------------------
INJECTED = b"+OK Capability list follows\r\nINJECTED-CAPABILITY\r\nUSER\r\n.\r\n"


class VulnerableClient:
    """A client with the CVE-2011-0411 mistake: it keeps the bytes it read before STLS and
    reads them, after the handshake, as the reply to its next command."""

    def __init__(self, host: str, port: int) -> None:
        self.host = host
        self.conn: socket.socket = socket.create_connection((host, port), timeout=10)
        self.plain = self.conn
        self.buffer = b""
        self.greeting = self.read_line()

    def read_line(self) -> bytes:
        while b"\r\n" not in self.buffer:
            chunk = self.conn.recv(4096)
            if not chunk:
                raise ConnectionError("closed")
            self.buffer += chunk
        line, _, self.buffer = self.buffer.partition(b"\r\n")
        return line

    def stls(self, context: ssl.SSLContext) -> bytes:
        self.conn.sendall(b"STLS\r\n")
        reply = self.read_line()
        self.conn = context.wrap_socket(self.conn, server_hostname=self.host)  # buffer kept
        return reply

    def capa(self) -> list[str]:
        self.conn.sendall(b"CAPA\r\n")
        assert self.read_line().startswith(b"+OK")
        caps = []
        while (line := self.read_line()) != b".":
            caps.append(line.decode())
        return caps

    def close(self) -> None:
        self.conn.close()


def assert_not_fooled(capabilities: object) -> None:
    """What a correct client shows: the capabilities after STLS are the server's own."""
    assert "INJECTED-CAPABILITY" not in str(capabilities), capabilities


def test_stls_injection_fools_a_vulnerable_client_and_not_poplib() -> None:
    with POP3Server(users=USERS, tls=True) as server:
        assert server.tls is not None
        rule = server.faults.on("STLS").inject(INJECTED)
        context = server.tls.client_context()
        # poplib reads the +OK through a buffered file and makes a new one after the
        # handshake: the injected bytes, which came in the same segment, are dropped.
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert client.stls(context).startswith(b"+OK")
        capabilities = client.capa()
        assert_not_fooled(capabilities)
        assert "USER" in capabilities
        login(client)
        client.quit()
        # The vulnerable client takes the injected CAPA reply for the real one.
        naive = VulnerableClient(server.host, server.port)
        assert naive.stls(context).startswith(b"+OK")
        fooled = naive.capa()
        with pytest.raises(AssertionError):
            assert_not_fooled(fooled)
        assert fooled == ["INJECTED-CAPABILITY", "USER"]
        naive.close()
        assert rule.fired == 2
        server.history.wait_for_sessions(2)
        stls = [c for c in server.history.commands if c.command == "STLS"]
        assert all(c.fault and c.fault.startswith("inject b'+OK Capability") for c in stls)
    server.raise_errors()


# --- STLS stripping -------------------------------------------------------------------------
def test_stls_hidden_from_capa_poplib_refuses_to_upgrade() -> None:
    with POP3Server(users=USERS, tls=True) as server:
        assert server.tls is not None
        server.faults.on("CAPA").hide("STLS")
        client = poplib.POP3(server.host, server.port, timeout=10)
        assert "STLS" not in client.capa() and "USER" in client.capa()
        with pytest.raises(poplib.error_proto, match="STLS not supported by server"):
            client.stls(server.tls.client_context())
        client.close()
        server.history.wait_for_sessions(1)
        assert "hide STLS from the CAPA reply" in str(server.history.commands[0].fault)
        assert not [c for c in server.history.commands if c.command in ("USER", "PASS")]
    server.raise_errors()


def test_stls_refused_poplib_raises() -> None:
    with POP3Server(users=USERS, tls=True) as server:
        assert server.tls is not None
        server.faults.on("STLS").error("TLS not available")
        client = poplib.POP3(server.host, server.port, timeout=10)
        with pytest.raises(poplib.error_proto, match="TLS not available"):
            client.stls(server.tls.client_context())
        client.close()
    server.raise_errors()


@needs_curl
@pytest.mark.parametrize("how", ["hide", "refuse"])
def test_curl_with_ssl_reqd_refuses_a_stripped_server(how: str) -> None:
    with POP3Server(users=USERS, tls=True) as server:
        if how == "hide":
            server.faults.on("CAPA").hide("STLS")
        else:
            server.faults.on("STLS").error("Not now")
        url = f"pop3://{server.host}:{server.port}/"
        done = subprocess.run(
            [CURL, "-sS", "--ssl-reqd", "-k", "-u", "alice:secret", url],  # type: ignore[list-item]
            capture_output=True,
            text=True,
            timeout=30,
        )
        assert done.returncode == 64, done.stderr  # CURLE_USE_SSL_FAILED
        server.history.wait_for_sessions(1)
        assert not [c for c in server.history.commands if c.command in ("USER", "PASS", "AUTH")]
    server.raise_errors()


def test_hide_and_inject_checks() -> None:
    from fakepop3.faults import FaultConfigError, Faults

    with pytest.raises(FaultConfigError, match="use it on CAPA, not LIST"):
        Faults().on("LIST").hide("STLS")
    with pytest.raises(FaultConfigError, match="capability must be a CAPA capability name"):
        Faults().on("CAPA").hide("ST LS")
    with pytest.raises(FaultConfigError, match="'data' is missing"):
        Faults.from_config([{"command": "STLS", "action": "inject"}])
    faults = Faults.from_config(
        [
            {"command": "CAPA", "action": "hide", "capability": "stls"},
            {"command": "STLS", "action": "inject", "data": "+OK\r\n"},
        ]
    )
    assert [r.effect.describe() for r in faults] == [
        "hide STLS from the CAPA reply",
        "inject b'+OK\\r\\n' after the reply",
    ]
