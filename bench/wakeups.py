"""Wake-ups per thread-hosted start+stop, a count a busy machine does not move much.

    python bench/wakeups.py [--cycles N]

Runs N ``with POP3Server():`` start+stops on the shared asyncio loop (the default
``loop_factory``; uvloop has no selector to count) and prints, per start+stop: the turns of the
loop (calls of its selector's ``select``), how many of them could sleep (a timeout that is not
0: the loop thread went idle and had to be woken), and the process's voluntary and involuntary
context switches (``getrusage``).  The mean time is printed too, but on a shared machine trust the
counts (issue 20, bench/README.md).  Run it from the repository (or with ``PYTHONPATH`` naming the
checkout to measure) to compare two versions.
"""

from __future__ import annotations

import argparse
import asyncio
import resource
import time
from typing import Any

from fakepop3 import POP3Server
from fakepop3._loopthread import shared_loops


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--cycles", type=int, default=2000, help="start+stops to count")
    cycles = parser.parse_args().cycles
    with POP3Server(users={"alice": "secret"}, host="127.0.0.1"):
        pass  # makes the shared loop
    loop = shared_loops()[asyncio.new_event_loop].loop
    selector = loop._selector  # type: ignore[union-attr]
    turns = [0, 0]
    select = selector.select

    def counting(timeout: float | None = None) -> Any:
        turns[0] += 1
        if timeout is None or timeout > 0:
            turns[1] += 1
        return select(timeout)

    selector.select = counting
    servers = [POP3Server(users={"alice": "secret"}, host="127.0.0.1") for _ in range(cycles)]
    before = resource.getrusage(resource.RUSAGE_SELF)
    start = time.perf_counter()
    for server in servers:
        server.start()
        server.stop()
    elapsed = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_SELF)
    selector.select = select
    print(
        f"per start+stop ({cycles}): loop turns {turns[0] / cycles:.2f} "
        f"(could sleep {turns[1] / cycles:.2f}), "
        f"voluntary switches {(after.ru_nvcsw - before.ru_nvcsw) / cycles:.2f}, "
        f"involuntary {(after.ru_nivcsw - before.ru_nivcsw) / cycles:.2f}, "
        f"mean {elapsed / cycles * 1000:.3f} ms"
    )


if __name__ == "__main__":
    main()
