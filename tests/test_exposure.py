"""Warnings at start (issue 22): every listener bound beyond loopback (POP3 and the SMTP
intake), after its bind succeeded; a --cert that has expired or is not valid yet."""

from __future__ import annotations

import datetime as dt
import logging
import signal
import socket
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
import trustme

from fakepop3 import POP3Server, TLSCertificates

from .test_cli import DEADLINE, command, read_json, wait_until

pytest.importorskip("aiosmtpd")


def _exposed(caplog: pytest.LogCaptureFixture) -> list[str]:
    return [
        r.getMessage()
        for r in caplog.records
        if r.name.startswith("fakepop3") and "not on loopback" in r.getMessage()
    ]


def test_an_smtp_intake_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    with POP3Server(smtp=True, smtp_host="0.0.0.0") as server:
        assert server.smtp is not None
        port = server.smtp.port
    [message] = _exposed(caplog)
    assert message.startswith(f"the fakepop3 SMTP intake is listening on 0.0.0.0:{port}, not on")


def test_every_listener_beyond_loopback_warns(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    with POP3Server(host="0.0.0.0", smtp=True):
        pass
    messages = _exposed(caplog)
    assert len(messages) == 2
    assert "SMTP intake" in messages[1] and "SMTP" not in messages[0]


def test_loopback_listeners_do_not_warn(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    with POP3Server(smtp=True, smtp_host="127.0.0.2"):
        pass
    assert _exposed(caplog) == []


@pytest.fixture
def busy_port() -> Iterator[int]:
    with socket.socket() as sock:
        sock.bind(("0.0.0.0", 0))
        sock.listen()
        yield sock.getsockname()[1]


@pytest.mark.parametrize("which", ["pop3", "smtp"])
def test_no_exposure_warning_before_a_bind_that_fails(
    caplog: pytest.LogCaptureFixture, busy_port: int, which: str
) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    if which == "pop3":
        server = POP3Server(host="0.0.0.0", port=busy_port)
    else:
        server = POP3Server(smtp=busy_port, smtp_host="0.0.0.0")
    with pytest.raises(OSError, match="cannot listen"):
        server.start()
    assert _exposed(caplog) == []


# --- a certificate out of date -------------------------------------------------------------
def _cert_files(directory: Path, **dates: dt.datetime) -> tuple[Path, Path]:
    ca = trustme.CA()
    leaf = ca.issue_cert("localhost", **dates)
    cert, key = directory / "cert.pem", directory / "key.pem"
    leaf.cert_chain_pems[0].write_to_path(str(cert))
    leaf.private_key_pem.write_to_path(str(key))
    return cert, key


NOW = dt.datetime.now(dt.timezone.utc)


@pytest.mark.parametrize(
    ("dates", "expected"),
    [
        (
            {"not_before": NOW - dt.timedelta(days=30), "not_after": NOW - dt.timedelta(days=1)},
            "expired on",
        ),
        (
            {"not_before": NOW + dt.timedelta(days=2), "not_after": NOW + dt.timedelta(days=30)},
            "is not valid before",
        ),
        ({}, None),
    ],
    ids=["expired", "not-yet-valid", "valid"],
)
def test_a_certificate_out_of_date_warns(
    tmp_path: Path,
    caplog: pytest.LogCaptureFixture,
    dates: dict[str, dt.datetime],
    expected: str | None,
) -> None:
    caplog.set_level(logging.WARNING, logger="fakepop3")
    cert, key = _cert_files(tmp_path, **dates)
    TLSCertificates.from_files(cert, key)
    messages = [r.getMessage() for r in caplog.records if r.name == "fakepop3"]
    if expected is None:
        assert messages == []
    else:
        [message] = messages
        assert message.startswith(f"the TLS certificate {cert} {expected} ")
        assert message.endswith(": clients that check certificates will refuse it")


@pytest.mark.skipif(sys.platform == "win32", reason="SIGTERM")
def test_the_program_warns_at_start_of_an_expired_cert(tmp_path: Path) -> None:
    cert, key = _cert_files(
        tmp_path, not_before=NOW - dt.timedelta(days=30), not_after=NOW - dt.timedelta(days=1)
    )
    ready = tmp_path / "ready.json"
    argv = command(
        "--port", "0", "--cert", str(cert), "--key", str(key), "--ready-file", str(ready)
    )
    proc = subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, cwd=tmp_path)
    try:
        wait_until("the ready file", lambda: read_json(ready), proc)
    finally:
        proc.send_signal(signal.SIGTERM)
        _, err = proc.communicate(timeout=DEADLINE)
    assert proc.returncode == 0
    [line] = err.decode().splitlines()
    assert line.startswith(f"fakepop3: the TLS certificate {cert} expired on ")
