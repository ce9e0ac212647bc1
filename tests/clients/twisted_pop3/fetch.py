"""Twisted's POP3Client against a POP3 server, driven by tests/clients/test_twisted.py.

    python fetch.py MODE HOST PORT USER PASSWORD OUTDIR [CAFILE] [delete]

MODE: ``login`` (``POP3Client.login``: APOP when the greeting has a timestamp, else USER/PASS,
which needs ``allowInsecureLogin``), ``stls`` (``startTLS`` first) or ``ssl`` (implicit
TLS); TLS trusts only CAFILE and checks the name ``localhost``.  Writes ``listSize()`` and
``listUID()`` as ``N VALUE`` lines to OUTDIR/list.txt and OUTDIR/uidl.txt and each message as
``retrieve(i)`` returns it (a list of lines without their CRLF) joined with CRLF to
OUTDIR/N.eml; ``delete`` deletes each message after reading it.  Runs in a process of its own
(a Twisted reactor starts only once).
"""

from __future__ import annotations

import sys
import warnings
from pathlib import Path

from twisted.internet import defer, endpoints, ssl, task

with warnings.catch_warnings():
    warnings.simplefilter("ignore", DeprecationWarning)  # "use twisted.mail.pop3 instead"
    from twisted.mail.pop3client import POP3Client


@defer.inlineCallbacks
def main(reactor, mode, host, port, user, password, outdir, cafile="", delete=""):  # type: ignore[no-untyped-def]
    out = Path(outdir)
    tls = None
    if cafile:
        authority = ssl.Certificate.loadPEM(Path(cafile).read_bytes())
        tls = ssl.optionsForClientTLS("localhost", trustRoot=authority)
    if mode == "ssl":
        endpoint = endpoints.SSL4ClientEndpoint(reactor, host, int(port), tls)
    else:
        endpoint = endpoints.TCP4ClientEndpoint(reactor, host, int(port))

    class Client(POP3Client):
        allowInsecureLogin = True

    client = yield endpoints.connectProtocol(endpoint, Client())
    yield _greeted(client)
    if mode == "stls":
        yield client.startTLS(tls)
    yield client.login(user.encode(), password.encode())
    sizes = yield client.listSize()
    uids = yield client.listUID()
    out.joinpath("list.txt").write_text("".join(f"{i} {s}\n" for i, s in enumerate(sizes, 1)))
    out.joinpath("uidl.txt").write_text(
        "".join(f"{i} {u.decode()}\n" for i, u in enumerate(uids, 1))
    )
    for index in range(len(sizes)):
        lines = yield client.retrieve(index)
        out.joinpath(f"{index + 1}.eml").write_bytes(b"".join(line + b"\r\n" for line in lines))
        if delete == "delete":
            yield client.delete(index)
    yield client.quit()


def _greeted(client: POP3Client) -> defer.Deferred[None]:
    """Fires once the server's greeting has been read (login before it is refused)."""
    done: defer.Deferred[None] = defer.Deferred()
    original = client.serverGreeting

    def greeted(greeting: bytes) -> None:
        original(greeting)
        done.callback(None)

    client.serverGreeting = greeted  # type: ignore[method-assign]
    if client.state != "WELCOME":
        done.callback(None)
    return done


if __name__ == "__main__":
    task.react(main, sys.argv[1:])
