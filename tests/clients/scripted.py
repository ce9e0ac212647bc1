"""Helpers for the clients driven by a small program of their own language (tests/clients/*/).

Each such program (Perl, Java, PHP, Ruby, Node, Twisted) logs in one way or another, lists
the maildrop, retrieves every message into ``OUTDIR/N.eml`` exactly as the client library
handed it over, and quits; the test then compares every file with the stored message.
"""

from __future__ import annotations

import subprocess
from collections.abc import Sequence
from pathlib import Path

import pytest

from fakepop3 import POP3Server

from .conftest import CLIENT_TIMEOUT, USER, find_program, in_ci, to_lf

HERE = Path(__file__).parent


def missing(reason: str) -> None:
    """Skip the test for a missing client (fail it under CI, which never silently skips)."""
    if in_ci():
        pytest.fail(f"{reason}; CI=true, so a missing client fails instead of skipping")
    pytest.skip(reason)


def require(name: str, how: str, *probe: str) -> str:
    """The path of program ``name``, after ``name *probe`` exited 0 (a module it needs is there).

    A missing program or a failing probe skips the test (fails it under CI); ``how`` says
    how to install what is missing.
    """
    path = find_program(name)
    if path is None:
        missing(f"the client {name!r} is not installed ({how})")
        raise AssertionError  # unreachable: missing() skips or fails
    if probe:
        result = subprocess.run(
            [path, *probe], capture_output=True, check=False, timeout=CLIENT_TIMEOUT
        )
        if result.returncode != 0:
            missing(
                f"{name} {' '.join(probe)} failed ({how}): "
                + result.stderr.decode(errors="replace").strip()[-500:]
            )
    return path


def fetched(outdir: Path) -> list[bytes]:
    """The messages a client program wrote, ``OUTDIR/1.eml``, ``2.eml``, ... in order."""
    files = sorted(outdir.glob("*.eml"), key=lambda f: int(f.stem))
    assert [int(f.stem) for f in files] == list(range(1, len(files) + 1)), files
    return [f.read_bytes() for f in files]


def assert_fetched_exactly(
    server: POP3Server,
    outdir: Path,
    stored: Sequence[bytes] | None = None,
    *,
    lf: bool = False,
) -> None:
    """Every message the client wrote is the stored one, byte for byte (CRLF line ends).

    ``stored`` defaults to the maildrop's messages now (take them before a deleting run);
    ``lf=True`` is for a client library that hands lines over with LF ends instead of CRLF.
    """
    if stored is None:
        stored = [m.crlf for m in server.mailbox(USER).messages]
    if lf:
        stored = [to_lf(m) for m in stored]
    got = fetched(outdir)
    assert len(got) == len(stored), f"{len(got)} messages fetched, {len(stored)} stored"
    for number, (have, want) in enumerate(zip(got, stored, strict=True), 1):
        assert have == want, f"message {number} differs from the stored one"


def listing(server: POP3Server) -> str:
    """LIST as ``N SIZE`` lines, the way the client programs write ``list.txt``."""
    return "".join(f"{i} {m.size}\n" for i, m in enumerate(server.mailbox(USER).messages, 1))


def uid_listing(server: POP3Server) -> str:
    """UIDL as ``N UID`` lines, the way the client programs write ``uidl.txt``."""
    return "".join(f"{i} {uid}\n" for i, uid in enumerate(server.mailbox(USER).uids, 1))
