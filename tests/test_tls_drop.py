"""A TLS session the client drops leaves no unclosed transport behind (issue 22): on Python 3.10
asyncio's TLS transport was never marked closed, and warned "unclosed transport" (a
ResourceWarning, an error in a user's run under ``filterwarnings = error``) when collected."""

from __future__ import annotations

import gc
import socket
import ssl
import struct
import warnings

import pytest

from fakepop3 import POP3Server


def _drop(tls: ssl.SSLSocket, *, reset: bool) -> None:
    """Close the connection under the TLS layer: no close_notify (RST if ``reset``)."""
    raw = socket.socket(fileno=tls.detach())
    if reset:
        raw.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    raw.close()


@pytest.mark.parametrize("reset", [False, True], ids=["fin", "rst"])
@pytest.mark.parametrize("how", ["stls", "implicit"])
def test_a_dropped_tls_session_leaves_no_unclosed_transport(how: str, reset: bool) -> None:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always", ResourceWarning)
        with POP3Server(users={"alice": "pw"}, tls=True, tls_port=0) as server:
            context = ssl.create_default_context(cafile=str(server.tls.ca_path))
            for _ in range(3):
                if how == "stls":
                    sock = socket.create_connection((server.host, server.port), timeout=10)
                    reader = sock.makefile("rb")
                    assert reader.readline().startswith(b"+OK")
                    sock.sendall(b"STLS\r\n")
                    assert reader.readline().startswith(b"+OK")
                    reader.close()
                else:
                    sock = socket.create_connection((server.host, server.tls_port), timeout=10)
                tls = context.wrap_socket(sock, server_hostname="localhost")
                reader = tls.makefile("rb")
                if how == "implicit":
                    assert reader.readline().startswith(b"+OK")  # the greeting
                tls.sendall(b"USER alice\r\n")
                assert reader.readline() == b"+OK\r\n"
                reader.close()
                _drop(tls, reset=reset)
            server.wait_for_sessions(3)
            assert [s.end_reason for s in server.history.sessions] == ["drop"] * 3
        gc.collect()
    unclosed = [str(w.message) for w in caught if issubclass(w.category, ResourceWarning)]
    assert unclosed == []
