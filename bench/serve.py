"""Host one benchmark server in this process until stdin closes (used by bench/run.py).

    python bench/serve.py bare|fakepop3|fakepop3-uvloop --users 100 --mailbox session|big|idle|empty

Prints ``READY <port>`` once it listens on 127.0.0.1.  ``fakepop3-uvloop`` is the same
fakepop3 server, on a uvloop loop.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import resource
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

import bare_server
import targets


async def serve_bare(nusers: int, layout: str) -> None:
    creds = {u: targets.PASSWORD for u in targets.users(nusers)}
    srv = await bare_server.start(targets.HOST, 0, targets.mailbox(layout), users=creds)
    await ready_and_wait(srv.sockets[0].getsockname()[1])
    srv.close()


async def serve_fakepop3(nusers: int, layout: str) -> None:
    from fakepop3 import POP3Server

    server = POP3Server(host=targets.HOST, port=0, history=True)
    msgs = targets.mailbox(layout)
    for u in targets.users(nusers):
        server.add_user(u, targets.PASSWORD, messages=msgs)
    async with server:
        await ready_and_wait(server.port)


async def ready_and_wait(port: int) -> None:
    gc.collect()
    print(f"READY {port}", flush=True)
    await asyncio.get_running_loop().run_in_executor(None, sys.stdin.read)


def main() -> None:
    p = argparse.ArgumentParser()
    p.add_argument("target", choices=("bare", "fakepop3", "fakepop3-uvloop"))
    p.add_argument("--users", type=int, default=1)
    p.add_argument("--mailbox", default="session")
    a = p.parse_args()
    _soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
    serve = serve_bare if a.target == "bare" else serve_fakepop3
    if a.target == "fakepop3-uvloop":
        import uvloop

        uvloop.run(serve(a.users, a.mailbox))
    else:
        asyncio.run(serve(a.users, a.mailbox))


if __name__ == "__main__":
    main()
