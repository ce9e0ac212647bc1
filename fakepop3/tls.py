"""Certificates for the server, and what a client needs to trust them.

By default a throw-away CA is made with ``trustme`` (the ``tls`` extra) and a
server certificate for ``localhost``, ``127.0.0.1`` and ``::1`` is issued from
it.  A certificate/key pair of the user's own works as well.

Bad certificates on purpose (``mode``, :data:`CERT_MODES`): the CA a client trusts is still
the test CA (``ca_pem``, :meth:`TLSCertificates.client_context`), but the server presents

* ``expired``: a certificate of the test CA whose validity ended yesterday;
* ``not-yet-valid``: one valid from tomorrow;
* ``wrong-host``: one for ``wrong-host.invalid`` only;
* ``self-signed``: a self-signed one for the right names (not from the test CA);
* ``untrusted-ca``: one for the right names from another CA, which no client trusts;
* ``missing-intermediate``: one from an intermediate CA of the test CA, sent without the
  intermediate (a verifying client cannot build the chain).

Protocol pinning (``version``, :data:`TLS_VERSIONS`): only ``"1.2"``, only ``"1.3"``, or
``"1.0"``/``"1.1"`` where the local OpenSSL still negotiates them (security level 0);
where it does not, asking for them raises ``ValueError`` saying so.
"""

from __future__ import annotations

import datetime
import functools
import ipaddress
import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
import warnings
import weakref
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

__all__ = ["CERT_MODES", "TLS_VERSIONS", "TLSCertificates"]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
log = logging.getLogger("fakepop3")
#: What the server's certificate can be (see the module docs); ``valid`` is the usual one.
CERT_MODES: tuple[str, ...] = (
    "valid",
    "expired",
    "not-yet-valid",
    "wrong-host",
    "self-signed",
    "untrusted-ca",
    "missing-intermediate",
)
#: The TLS versions the server can be pinned to.
TLS_VERSIONS: tuple[str, ...] = ("1.0", "1.1", "1.2", "1.3")
#: The only name a ``wrong-host`` certificate is for.
WRONG_HOST = "wrong-host.invalid"
_VERSIONS = {
    "1.0": ssl.TLSVersion.TLSv1,
    "1.1": ssl.TLSVersion.TLSv1_1,
    "1.2": ssl.TLSVersion.TLSv1_2,
    "1.3": ssl.TLSVersion.TLSv1_3,
}
_LEGACY = ("1.0", "1.1")


class TLSCertificates:
    """A server ``SSLContext`` plus the CA a client must trust to verify it."""

    def __init__(self, server_context: ssl.SSLContext, ca_pem: bytes | None) -> None:
        self.server_context = server_context
        self.ca_pem = ca_pem
        #: The certificate mode (:data:`CERT_MODES`) and the pinned version (None: 1.2 and up).
        self.mode = "valid"
        self.version: str | None = None
        # What makes this certificate again (a new context for pinning, a variant): the
        # trustme CA and names of a generated one, or the files of one's own.
        self._ca: Any = None
        self._names: tuple[str, ...] = ()
        self._load: Callable[[ssl.SSLContext], None] | None = None
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[[str], TLSCertificates] | None = None

    @classmethod
    def generate(
        cls,
        names: Sequence[str] = DEFAULT_NAMES,
        *,
        mode: str = "valid",
        version: str | None = None,
    ) -> TLSCertificates:
        """Make a new CA with ``trustme`` and a server certificate for ``names``.

        ``mode`` and ``version``: a bad certificate, a pinned protocol (see the module docs).
        """
        try:
            import trustme
        except ImportError:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "TLS needs the 'trustme' package to make test certificates: "
                "pip install 'fakepop3[tls]' (or pass your own cert and key)"
            ) from None
        ca = trustme.CA(organization_name="fakepop3 test CA")
        return _made(ca, tuple(names), mode, version)

    def variant(self, mode: str = "valid", version: str | None = None) -> TLSCertificates:
        """These certificates with another certificate ``mode`` or pinned ``version``; the
        CA clients trust stays the same.  A bad mode needs generated certificates."""
        _check_choice("tls_cert", mode, CERT_MODES)
        if version is not None:
            _check_choice("tls_version", version, TLS_VERSIONS)
        if self._ca is not None:
            return _made(self._ca, self._names, mode, version)
        if mode != "valid":
            raise ValueError(
                f"tls_cert={mode!r} needs test certificates made by fakepop3 (tls=True), "
                "not a certificate and key of your own"
            )
        if self._load is None:
            raise ValueError(
                "tls_version needs certificates fakepop3 can load again "
                "(TLSCertificates.generate() or from_files())"
            )
        context = _server_context(version)
        self._load(context)
        made = TLSCertificates(context, self.ca_pem)
        made.version, made._load = version, self._load
        _check_version(made)
        return made

    @classmethod
    def from_files(
        cls,
        cert: str | os.PathLike[str],
        key: str | os.PathLike[str],
        ca: str | os.PathLike[str] | None = None,
    ) -> TLSCertificates:
        """Use a certificate (chain) and key from PEM files; ``ca`` is what clients should trust."""
        for what, path in (("certificate", cert), ("key", key), ("CA", ca)):
            if path is not None and not Path(path).is_file():
                raise FileNotFoundError(f"TLS {what} file not found: {os.fspath(path)}")
        context = _server_context()

        def load(context: ssl.SSLContext) -> None:
            context.load_cert_chain(os.fspath(cert), os.fspath(key))

        try:
            load(context)
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"cannot load the TLS certificate {os.fspath(cert)} with key {os.fspath(key)}: {exc}"
            ) from exc
        ca_pem = Path(ca).read_bytes() if ca is not None else None
        _warn_if_out_of_date(os.fspath(cert))
        made = cls(context, ca_pem)
        made._load = load
        return made

    @property
    def ca_path(self) -> Path:
        """A PEM file holding the CA (written on first use, removed by :meth:`cleanup`)."""
        if self.ca_pem is None:
            raise RuntimeError("no CA is known for this certificate; pass ca= to from_files()")
        with self._lock:
            if self._dir is None:
                self._dir = tempfile.mkdtemp(prefix="fakepop3-ca-")
                # Removed by cleanup(), or at garbage collection / exit at the latest.
                self._finalizer = weakref.finalize(self, _remove_dir, self._dir)
                Path(self._dir, "ca.pem").write_bytes(self.ca_pem)
            return Path(self._dir, "ca.pem")

    def write_ca(self, path: str | os.PathLike[str]) -> Path:
        """Write the CA's PEM to ``path`` and return it."""
        if self.ca_pem is None:
            raise RuntimeError("no CA is known for this certificate; pass ca= to from_files()")
        target = Path(path)
        target.write_bytes(self.ca_pem)
        return target

    def client_context(self, version: str | None = None) -> ssl.SSLContext:
        """A client ``SSLContext`` that trusts this server's CA (hostname checks on).

        ``version`` pins the client to one TLS version too (``"1.0"`` and ``"1.1"`` at
        OpenSSL security level 0), to talk to a server pinned to an old one."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
        if version is not None:
            _pin(context, _check_choice("version", version, TLS_VERSIONS))
        if self.ca_pem is not None:
            context.load_verify_locations(cadata=self.ca_pem.decode("ascii"))
        return context

    def cleanup(self) -> None:
        """Remove the file behind :attr:`ca_path` (it is written again if asked for)."""
        with self._lock:
            if self._finalizer is not None:
                self._finalizer()
                self._finalizer = None
            self._dir = None


def _warn_if_out_of_date(cert: str, now: float | None = None) -> None:
    """Log a warning when the certificate in ``cert`` has expired, or is not valid yet: the
    server serves it all the same, and every client that checks it refuses the connection."""
    dates = _validity(cert)
    if dates is None:  # pragma: no cover - a CPython without the certificate decoder
        return
    not_before, not_after = dates
    moment = time.time() if now is None else now
    if moment > ssl.cert_time_to_seconds(not_after):
        state = f"expired on {not_after}"
    elif moment < ssl.cert_time_to_seconds(not_before):
        state = f"is not valid before {not_before}"
    else:
        return
    log.warning(
        "the TLS certificate %s %s: clients that check certificates will refuse it", cert, state
    )


def _validity(cert: str) -> tuple[str, str] | None:
    """The ``notBefore`` and ``notAfter`` of the first certificate in a PEM file (as ``ssl``
    spells them), or None when they cannot be read."""
    decode = getattr(getattr(ssl, "_ssl", None), "_test_decode_cert", None)
    if decode is None:  # pragma: no cover - every CPython from 3.10 to 3.13 has it
        return None
    try:
        info = decode(cert)
    except (ssl.SSLError, OSError, ValueError):  # pragma: no cover - loaded fine just before
        return None
    return str(info["notBefore"]), str(info["notAfter"])


def _remove_dir(path: str) -> None:
    shutil.rmtree(path, ignore_errors=True)


def _server_context(version: str | None = None) -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    if version is None:
        context.minimum_version = ssl.TLSVersion.TLSv1_2
    else:
        _pin(context, version)
    return context


def _pin(context: ssl.SSLContext, version: str) -> None:
    """Only ``version``; TLS 1.0 and 1.1 need OpenSSL's security level 0 (OpenSSL 3)."""
    if version not in _LEGACY:
        context.minimum_version = context.maximum_version = _VERSIONS[version]
        return
    context.set_ciphers("DEFAULT:@SECLEVEL=0")
    with warnings.catch_warnings():  # Python deprecates them; pinning to them is the point
        warnings.simplefilter("ignore", DeprecationWarning)
        context.minimum_version = context.maximum_version = _VERSIONS[version]


def _check_choice(name: str, value: object, allowed: Sequence[str]) -> str:
    if not isinstance(value, str) or value not in allowed:
        raise ValueError(f"{name} must be one of {', '.join(allowed)}, not {value!r}")
    return value


def _made(ca: Any, names: tuple[str, ...], mode: str, version: str | None) -> TLSCertificates:
    """Certificates of the trustme CA ``ca`` (what clients trust) in ``mode``."""
    _check_choice("tls_cert", mode, CERT_MODES)
    if version is not None:
        _check_choice("tls_version", version, TLS_VERSIONS)
    pem = _issue(ca, names, mode)

    def load(context: ssl.SSLContext) -> None:
        with tempfile.TemporaryDirectory(prefix="fakepop3-cert-") as folder:
            path = Path(folder, "chain.pem")
            path.write_bytes(pem)
            context.load_cert_chain(path)

    context = _server_context(version)
    load(context)
    made = TLSCertificates(context, ca.cert_pem.bytes())
    made.mode, made.version = mode, version
    made._ca, made._names, made._load = ca, names, load
    _check_version(made)
    return made


def _issue(ca: Any, names: tuple[str, ...], mode: str) -> bytes:
    """The key and certificate chain (PEM) the server presents in ``mode``."""
    import trustme

    # A subject CN as well as the SANs: fetchmail (sslcertck, its default) insists on one.
    common = names[0] if names else None
    now = datetime.datetime.now(datetime.timezone.utc)
    day = datetime.timedelta(days=1)
    if mode == "self-signed":
        return _self_signed(names)
    if mode == "untrusted-ca":
        ca = trustme.CA(organization_name="fakepop3 untrusted CA")
    if mode == "missing-intermediate":
        leaf = ca.create_child_ca().issue_cert(*names, common_name=common)
        # The leaf alone: the intermediate that links it to the test CA is left out.
        return bytes(leaf.private_key_pem.bytes() + leaf.cert_chain_pems[0].bytes())
    if mode == "wrong-host":
        leaf = ca.issue_cert(WRONG_HOST, common_name=WRONG_HOST)
    elif mode == "expired":
        leaf = ca.issue_cert(
            *names, common_name=common, not_before=now - 3 * day, not_after=now - day
        )
    elif mode == "not-yet-valid":
        leaf = ca.issue_cert(
            *names, common_name=common, not_before=now + day, not_after=now + 3 * day
        )
    else:  # valid, untrusted-ca
        leaf = ca.issue_cert(*names, common_name=common)
    return bytes(leaf.private_key_and_cert_chain_pem.bytes())


def _self_signed(names: tuple[str, ...]) -> bytes:
    """A key and a self-signed (not a CA) certificate for ``names``."""
    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    key = ec.generate_private_key(ec.SECP256R1())
    subject = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, names[0] if names else "x")])
    sans: list[x509.GeneralName] = []
    for name in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(name)))
        except ValueError:
            sans.append(x509.DNSName(name))
    now = datetime.datetime.now(datetime.timezone.utc)
    cert = (
        x509.CertificateBuilder()
        .subject_name(subject)
        .issuer_name(subject)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=1))
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    return key_pem + cert.public_bytes(serialization.Encoding.PEM)


def _check_version(certs: TLSCertificates) -> None:
    """A pinned TLS 1.0 or 1.1 must be one this OpenSSL still negotiates: else say so."""
    if certs.version in _LEGACY:
        problem = _legacy_problem(certs.version)
        if problem is not None:
            raise ValueError(
                f"TLS {certs.version} is not available here: {ssl.OPENSSL_VERSION} refuses it "
                f"even at security level 0 ({problem})"
            )


@functools.cache
def _legacy_problem(version: str) -> str | None:
    """Why a handshake pinned to ``version`` fails with this OpenSSL, or None if it works
    (tried once, in memory, with a throw-away self-signed certificate)."""
    server = _server_context(version)
    with tempfile.TemporaryDirectory(prefix="fakepop3-cert-") as folder:
        path = Path(folder, "chain.pem")
        path.write_bytes(_self_signed(("localhost",)))
        server.load_cert_chain(path)
    client = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client.check_hostname = False
    client.verify_mode = ssl.CERT_NONE
    try:
        _pin(client, version)
        return _handshake(server, client)
    except (ssl.SSLError, ValueError) as error:
        return str(error)


def _handshake(server: ssl.SSLContext, client: ssl.SSLContext) -> str | None:
    """A handshake between the two contexts over memory buffers: None, or the error."""
    bios = [ssl.MemoryBIO() for _ in range(4)]
    s = server.wrap_bio(bios[0], bios[1], server_side=True)
    c = client.wrap_bio(bios[2], bios[3], server_side=False)
    done = [False, False]
    for _ in range(20):
        for i, (end, outgoing, incoming) in enumerate(
            ((c, bios[3], bios[0]), (s, bios[1], bios[2]))
        ):
            if not done[i]:
                try:
                    end.do_handshake()
                    done[i] = True
                except ssl.SSLWantReadError:
                    pass
            incoming.write(outgoing.read())
        if all(done):
            return None
    return "the handshake did not finish"  # pragma: no cover - OpenSSL always answers
