"""``fakepop3 wait``: exit 0 as soon as a server answers, 1 on timeout (a readiness probe).

For CI scripts, service containers and ``docker-compose`` health checks, in any language::

    fakepop3 wait --timeout 30 127.0.0.1:1110            # a POP3 greeting (+OK ...)
    fakepop3 wait --ready-file ready.json                 # the ready file, then its greeting
    fakepop3 wait --control http://127.0.0.1:8025         # GET /health answers 200 "ok"

It needs nothing but the standard library (no aiohttp, no asyncio): it tries again every 50 ms
until the deadline, and says on one line what it last saw when it gives up.
"""

from __future__ import annotations

import argparse
import json
import socket
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import NoReturn

__all__ = ["main"]

PROG = "fakepop3 wait"
_RETRY = 0.05  # seconds between attempts


class _Parser(argparse.ArgumentParser):
    def error(self, message: str) -> NoReturn:
        print(f"{PROG}: error: {message} (see {PROG} --help)", file=sys.stderr)
        raise SystemExit(2)


class _NotYet(Exception):
    """The server does not answer yet; the message says what was seen."""

    def __init__(self, message: str, *, timed_out: bool = False) -> None:
        super().__init__(message)
        self.timed_out = timed_out


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog=PROG,
        description="Wait until a fakepop3 server answers: exit 0 once it does, 1 on timeout.",
        allow_abbrev=False,
    )
    p.add_argument("address", nargs="?", metavar="HOST:PORT", help="wait for a POP3 greeting")
    p.add_argument("--ready-file", metavar="FILE", help="wait for this ready file, then for "
                   "the greeting of the server it names")  # fmt: skip
    p.add_argument("--control", metavar="URL", help="wait for GET URL/health to answer ok")
    p.add_argument("--timeout", metavar="SECONDS", type=float, default=30.0,
                   help="give up after this long (default: 30)")  # fmt: skip
    return p


def _split(address: str) -> tuple[str, int]:
    host, colon, port = address.rpartition(":")
    if not colon or not host or not port.isdigit() or not 0 < int(port) < 65536:
        raise ValueError(f"{address!r} is not HOST:PORT (e.g. 127.0.0.1:1110)")
    return host.strip("[]"), int(port)


def _greeting(host: str, port: int, timeout: float) -> None:
    try:
        with socket.create_connection((host, port), timeout=timeout) as sock:
            sock.settimeout(timeout)
            line = sock.makefile("rb").readline(512)
            if line.startswith(b"+OK"):
                sock.sendall(b"QUIT\r\n")
                return
    except OSError as error:
        timed_out = isinstance(error, TimeoutError)
        raise _NotYet(f"{host}:{port}: {error.strerror or error}", timed_out=timed_out) from None
    shown = line.decode("ascii", "replace").strip() or "nothing"
    raise _NotYet(f"{host}:{port} answered {shown!r}, not a POP3 greeting")


def _ready_file(path: Path, timeout: float) -> None:
    try:
        data = json.loads(path.read_text("utf-8"))
        host, port = data["host"], data["port"]
    except FileNotFoundError:
        raise _NotYet(f"no ready file {path} yet") from None
    except (OSError, ValueError, KeyError, TypeError) as error:
        raise _NotYet(f"ready file {path} is not readable yet: {error}") from None
    _greeting(host, port, timeout)


def _health(url: str, timeout: float) -> None:
    target = url.rstrip("/") + "/health"
    try:
        with urllib.request.urlopen(target, timeout=timeout) as response:
            body = json.loads(response.read())
            if response.status == 200 and body.get("status") == "ok":
                return
            raise _NotYet(f"{target} answered {response.status} {body!r}")
    except urllib.error.HTTPError as error:
        raise _NotYet(f"{target} answered {error.code}") from None
    except (OSError, ValueError) as error:
        reason = getattr(error, "reason", None) or error
        raise _NotYet(f"{target}: {reason}") from None


def main(argv: Sequence[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    given = [a for a in (args.address, args.ready_file, args.control) if a is not None]
    if len(given) != 1:
        print(f"{PROG}: error: give one of HOST:PORT, --ready-file FILE or --control URL",
              file=sys.stderr)  # fmt: skip
        return 2
    if not args.timeout > 0:
        print(f"{PROG}: error: --timeout must be a positive number of seconds", file=sys.stderr)
        return 2
    probe: Callable[[float], None]
    if args.address is not None:
        try:
            host, port = _split(args.address)
        except ValueError as error:
            print(f"{PROG}: error: {error}", file=sys.stderr)
            return 2
        probe = lambda t: _greeting(host, port, t)  # noqa: E731
    elif args.ready_file is not None:
        probe = lambda t: _ready_file(Path(args.ready_file), t)  # noqa: E731
    else:
        probe = lambda t: _health(args.control, t)  # noqa: E731
    deadline = time.monotonic() + args.timeout
    last = ""
    while True:
        left = deadline - time.monotonic()
        try:
            probe(max(0.05, min(left, 5.0)))
            return 0
        except _NotYet as error:
            # An attempt cut short by the deadline says less than what an earlier one saw.
            if not (error.timed_out and last):
                last = str(error)
        if time.monotonic() + _RETRY >= deadline:
            print(f"{PROG}: not ready within {args.timeout:g} s: {last}", file=sys.stderr)
            return 1
        time.sleep(_RETRY)
