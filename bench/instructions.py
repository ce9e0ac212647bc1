"""Machine instructions per benchmark session, in-process, for callgrind.

The benchmark session of ``loadgen.py`` (connect, greeting, USER, PASS, STAT, LIST, UIDL,
RETR k, QUIT) is pushed through the server's real connection protocol (the asyncio
``BufferedProtocol`` the server gives each client) with a fake transport: no sockets, no event
loop turns, so the count is fakepop3's own Python and nothing else.  ``valgrind --tool=callgrind``
counts instructions, which are the same from run to run on a busy machine.

    python bench/instructions.py                 # runs callgrind twice, prints the count
    python bench/instructions.py --sessions 500  # the inner run (what callgrind executes)

The count is the difference between a run of ``--many`` sessions and one of ``--few``, divided
by the difference in sessions: start-up and imports cancel out.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import re
import subprocess
import sys
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))

USERS = 10


class FakeTransport(asyncio.Transport):
    """Just enough of a transport for one connection: writes are counted and dropped."""

    def __init__(self, peer: tuple[str, int]) -> None:
        super().__init__()
        self.peer = peer
        self.written = 0
        self.closed = False

    def get_extra_info(self, name: str, default: Any = None) -> Any:
        return self.peer if name == "peername" else default

    def write(self, data: bytes | bytearray | memoryview) -> None:
        self.written += len(data)

    def writelines(self, list_of_data: Any) -> None:
        for data in list_of_data:
            self.write(data)

    def is_closing(self) -> bool:
        return self.closed

    def close(self) -> None:
        self.closed = True

    def abort(self) -> None:
        self.closed = True

    def pause_reading(self) -> None:
        pass

    def resume_reading(self) -> None:
        pass

    def get_write_buffer_size(self) -> int:
        return 0

    def set_write_buffer_limits(self, high: int | None = None, low: int | None = None) -> None:
        pass


def _lines(user: str) -> list[bytes]:
    return [
        f"USER {user}\r\n".encode(),
        b"PASS secret\r\n",
        b"STAT\r\n",
        b"LIST\r\n",
        b"UIDL\r\n",
        b"RETR 3\r\n",
        b"QUIT\r\n",
    ]


def run(sessions: int) -> int:
    """Run ``sessions`` benchmark sessions; return the bytes written (a sanity check)."""
    from targets import session_messages

    from fakepop3 import POP3Server

    server = POP3Server({f"u{j}": "secret" for j in range(USERS)})
    for j in range(USERS):
        for message in session_messages():
            server.mailbox(f"u{j}").add(message)
    loop = asyncio.new_event_loop()
    server._loop = loop  # the loop a started server records; nothing runs on it here
    lines = [_lines(f"u{j}") for j in range(USERS)]
    written = 0
    # No collection in the middle of a session: where one falls moves the count by ~1.5%.
    gc.collect()
    gc.disable()
    for i in range(sessions):
        protocol = server.connection_protocol()
        transport = FakeTransport(("127.0.0.1", 40000 + i % 20000))
        protocol.connection_made(transport)
        buffer = protocol.get_buffer(-1)
        for line in lines[i % USERS]:
            buffer[: len(line)] = line
            protocol.buffer_updated(len(line))
        protocol.connection_lost(None)
        written += transport.written
    loop.close()
    return written


def count(sessions: int) -> int:
    """Instructions of the whole inner run of ``sessions`` sessions, from callgrind."""
    out = subprocess.run(
        [
            "valgrind",
            "--tool=callgrind",
            "--callgrind-out-file=/dev/null",
            sys.executable,
            __file__,
            "--sessions",
            str(sessions),
        ],
        capture_output=True,
        text=True,
        check=True,
        env={**os.environ, "PYTHONHASHSEED": "0"},
    )
    found = re.search(r"Collected : (\d+)", out.stderr)
    if found is None:
        raise SystemExit(f"no callgrind count in its output:\n{out.stderr}")
    return int(found.group(1))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, help="inner run: this many sessions, no callgrind")
    parser.add_argument("--few", type=int, default=200)
    parser.add_argument("--many", type=int, default=1200)
    args = parser.parse_args()
    if args.sessions is not None:
        print(run(args.sessions))
        return
    # One plain run first, so that both counted runs load the same compiled .pyc files (a run
    # that compiles them would make the difference between the two runs too small).
    subprocess.run([sys.executable, __file__, "--sessions", "1"], check=True, capture_output=True)
    few, many = count(args.few), count(args.many)
    per_session = (many - few) / (args.many - args.few)
    print(
        f"Python {sys.version.split()[0]}: {per_session:,.0f} instructions per benchmark session "
        f"({args.few} vs {args.many} sessions)"
    )


if __name__ == "__main__":
    main()
