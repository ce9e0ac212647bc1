"""Certificates for the server, and what a client needs to trust them.

By default a throw-away CA is made with ``trustme`` (the ``tls`` extra) and a
server certificate for ``localhost``, ``127.0.0.1`` and ``::1`` is issued from
it.  A certificate/key pair of the user's own works as well.
"""

from __future__ import annotations

import logging
import os
import shutil
import ssl
import tempfile
import threading
import time
import weakref
from collections.abc import Sequence
from pathlib import Path

__all__ = ["TLSCertificates"]

DEFAULT_NAMES = ("localhost", "127.0.0.1", "::1")
log = logging.getLogger("fakepop3")


class TLSCertificates:
    """A server ``SSLContext`` plus the CA a client must trust to verify it."""

    def __init__(self, server_context: ssl.SSLContext, ca_pem: bytes | None) -> None:
        self.server_context = server_context
        self.ca_pem = ca_pem
        self._dir: str | None = None
        self._lock = threading.Lock()
        self._finalizer: weakref.finalize[[str], TLSCertificates] | None = None

    @classmethod
    def generate(cls, names: Sequence[str] = DEFAULT_NAMES) -> TLSCertificates:
        """Make a new CA with ``trustme`` and a server certificate for ``names``."""
        try:
            import trustme
        except ImportError:  # pragma: no cover - depends on the environment
            raise RuntimeError(
                "TLS needs the 'trustme' package to make test certificates: "
                "pip install 'fakepop3[tls]' (or pass your own cert and key)"
            ) from None
        ca = trustme.CA(organization_name="fakepop3 test CA")
        # A subject CN as well as the SANs: fetchmail (sslcertck, its default) insists on one.
        cert = ca.issue_cert(*names, common_name=names[0] if names else None)
        context = _server_context()
        cert.configure_cert(context)
        return cls(context, ca.cert_pem.bytes())

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
        try:
            context.load_cert_chain(os.fspath(cert), os.fspath(key))
        except (ssl.SSLError, ValueError) as exc:
            raise ValueError(
                f"cannot load the TLS certificate {os.fspath(cert)} with key {os.fspath(key)}: {exc}"
            ) from exc
        ca_pem = Path(ca).read_bytes() if ca is not None else None
        _warn_if_out_of_date(os.fspath(cert))
        return cls(context, ca_pem)

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

    def client_context(self) -> ssl.SSLContext:
        """A client ``SSLContext`` that trusts this server (hostname checks on)."""
        context = ssl.create_default_context(ssl.Purpose.SERVER_AUTH)
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


def _server_context() -> ssl.SSLContext:
    context = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    context.minimum_version = ssl.TLSVersion.TLSv1_2
    return context
