"""``fakepop3 proxy``: sit between a client and a real server and record both directions.

``fakepop3 proxy --upstream HOST:PORT [--upstream-tls] --record DIR [--listen HOST:PORT]
[--ca-out FILE]`` listens (plain), connects each client to the upstream server (plain, or
implicit TLS with ``--upstream-tls``) and copies the lines both ways, writing one transcript a
session (``DIR/session-0001.txt`` ...) with the password, SASL responses and APOP digests
masked and message bodies counted, not copied.  A client's STLS is answered by the proxy
itself, with a test certificate (``--ca-out`` writes its CA for the client to trust; Python
3.11+), so a client that insists on TLS can be watched too; the upstream leg is then whatever
``--upstream-tls`` says.  For "what does my client actually send to the real server?".
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import ssl
import sys
import threading
from collections.abc import Sequence
from pathlib import Path

from ._record import _ArgParser, _Transcript, _upstream, _Usage
from .tls import TLSCertificates

PROG = "fakepop3 proxy"


def _parser() -> argparse.ArgumentParser:
    p = _ArgParser(prog=PROG, description=__doc__.split("\n\n")[0], allow_abbrev=False)
    p.add_argument("--upstream", required=True, metavar="HOST:PORT", help="the real server")
    p.add_argument("--upstream-tls", action="store_true", help="implicit TLS to the upstream")
    p.add_argument("--cafile", metavar="FILE", help="trust this CA (PEM) for the upstream")
    p.add_argument("--listen", default="127.0.0.1:0", metavar="HOST:PORT",
                   help="where clients connect (default 127.0.0.1:0, a free port)")  # fmt: skip
    p.add_argument("--record", required=True, metavar="DIR", help="where transcripts go")
    p.add_argument("--ca-out", metavar="FILE",
                   help="write the test CA of the proxy's STLS here, for clients")  # fmt: skip
    return p


def _listen(text: str) -> tuple[str, int]:
    host, colon, port = text.rpartition(":")
    if not colon or not host or not port.isdigit() or int(port) > 65535:
        raise _Usage(f"--listen {text!r}: expected HOST:PORT (port 0: a free one)")
    return host.strip("[]"), int(port)


class Proxy:
    """The proxy of one ``fakepop3 proxy`` run (also usable in-process, for tests)."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.upstream = _upstream(args.upstream)
        self.listen = _listen(args.listen)
        self.record = Path(args.record)
        self.record.mkdir(parents=True, exist_ok=True)
        self.upstream_ssl = (
            ssl.create_default_context(cafile=args.cafile) if args.upstream_tls else None
        )
        self.certs: TLSCertificates | None = None
        if args.ca_out is not None:
            self.certs = TLSCertificates.generate()
            self.certs.write_ca(args.ca_out)
        self.sessions = itertools.count(1)
        self.port = 0
        self.ready = threading.Event()
        self._stop: asyncio.Event | None = None
        self._loop: asyncio.AbstractEventLoop | None = None

    async def serve(self) -> None:
        self._loop = asyncio.get_running_loop()
        self._stop = asyncio.Event()
        server = await asyncio.start_server(self._client, *self.listen)
        self.port = server.sockets[0].getsockname()[1]
        print(
            f"{PROG}: listening on {self.listen[0]}:{self.port}, upstream "
            f"{self.upstream[0]}:{self.upstream[1]}, transcripts in {self.record}",
            flush=True,
        )
        self.ready.set()
        async with server:
            await self._stop.wait()

    def stop(self) -> None:
        """Stop serving (from any thread)."""
        if self._loop is not None and self._stop is not None:
            self._loop.call_soon_threadsafe(self._stop.set)

    async def _client(self, creader: asyncio.StreamReader, cwriter: asyncio.StreamWriter) -> None:
        number = next(self.sessions)
        transcript = _Transcript()
        try:
            ureader, uwriter = await asyncio.open_connection(
                *self.upstream, ssl=self.upstream_ssl,
                server_hostname=self.upstream[0] if self.upstream_ssl else None,
            )  # fmt: skip
        except OSError as error:
            cwriter.write(b"-ERR [SYS/TEMP] The proxy cannot reach the server.\r\n")
            transcript.lines.append(f"(upstream {self.upstream[0]}:{self.upstream[1]}: {error})")
            await self._close(cwriter)
            self._write(number, transcript)
            return

        async def from_server() -> None:
            while line := await ureader.readline():
                transcript.received(line.rstrip(b"\r\n"))
                cwriter.write(line)
                await cwriter.drain()
            await self._close(cwriter)

        async def from_client() -> None:
            while line := await creader.readline():
                command = line.rstrip(b"\r\n")
                if (
                    command.upper() == b"STLS"
                    and self.certs is not None
                    and sys.version_info >= (3, 11)
                ):
                    transcript.lines.append("C: STLS")
                    transcript.lines.append(
                        "S: +OK Begin TLS negotiation now. (the proxy's, a test certificate)"
                    )
                    cwriter.write(b"+OK Begin TLS negotiation now.\r\n")
                    await cwriter.drain()
                    await cwriter.start_tls(self.certs.server_context)  # type: ignore[attr-defined, unused-ignore]
                    continue
                transcript.sent(command)
                uwriter.write(line)
                await uwriter.drain()
            await self._close(uwriter)

        try:
            await asyncio.gather(from_server(), from_client())
        except (OSError, ssl.SSLError, asyncio.IncompleteReadError) as error:
            transcript.lines.append(f"(connection ended: {error})")
        finally:
            await self._close(cwriter)
            await self._close(uwriter)
            self._write(number, transcript)

    @staticmethod
    async def _close(writer: asyncio.StreamWriter) -> None:
        if not writer.is_closing():
            writer.close()
        try:
            await writer.wait_closed()
        except (OSError, ssl.SSLError):
            pass

    def _write(self, number: int, transcript: _Transcript) -> None:
        path = self.record / f"session-{number:04d}.txt"
        path.write_text("\n".join(transcript.lines) + "\n", encoding="utf-8")


def main(argv: Sequence[str] | None = None) -> int:
    try:
        args = _parser().parse_args(argv)
        proxy = Proxy(args)
    except _Usage as error:
        print(f"fakepop3: error: {error}", file=sys.stderr)
        return 2
    except (OSError, RuntimeError) as error:
        print(f"fakepop3: error: {error}", file=sys.stderr)
        return 2
    try:
        asyncio.run(proxy.serve())
    except KeyboardInterrupt:
        pass
    except OSError as error:
        print(
            f"fakepop3: error: --listen {args.listen}: {error.strerror or error}", file=sys.stderr
        )
        return 2
    return 0
