"""A large generated maildrop: what 1,000,000 (and 100,000) messages cost the server.

Run by hand: ``python bench/large_maildrop.py [--runs N] [--counts 1000000,100000]
[--against CHECKOUT]``.

Each run is a fresh server process (a thread-hosted ``POP3Server``, the way tests run it):

* **generate**: the time of ``mailbox.generate(COUNT, seed=1)``;
* **first STAT**: from the start of that call to poplib's ``STAT`` reply over a real socket
  (login included);
* **RSS per message**: the server process's RSS growth from before the call to after that
  STAT (no RETR yet), divided by COUNT;
* **peak during LIST + UIDL**: the peak RSS (``VmHWM``, reset through ``/proc/self/clear_refs``
  after the STAT) while another process reads a full LIST and a full UIDL over a socket and
  counts the octets without keeping them, minus the RSS before; and how long the two took.

The yardstick, run in the same round in its own fresh process: building a plain list of COUNT
small bytes objects (``[b"%d" % i for i in range(COUNT)]``), its time and RSS per element.
``--against CHECKOUT`` runs the same server child on another checkout's ``fakepop3`` (its
directory put first on ``PYTHONPATH``), e.g. ``main`` exported to a directory, side by side.
Figures are medians of ``--runs`` (default 3); the load average is printed before and after.
"""

from __future__ import annotations

import argparse
import json
import os
import socket
import statistics
import subprocess
import sys
import time
from pathlib import Path

SERVER_CHILD = r"""
import json, os, poplib, sys, time

def status(field):
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise LookupError(field)

import fakepop3
from fakepop3 import POP3Server
import fakepop3.mail._generate  # imported before the clock starts (as a test session has it)

count = int(sys.argv[1])
server = POP3Server(users={"alice": "secret"})
server.start()
before = status("VmRSS")
t0 = time.perf_counter()
server.mailbox("alice").generate(count, seed=1)
t1 = time.perf_counter()
client = poplib.POP3(server.host, server.port, timeout=120)
client.user("alice")
client.pass_("secret")
stat = client.stat()
t2 = time.perf_counter()
client.quit()
server.wait_for_sessions(1)
after = status("VmRSS")
try:
    with open("/proc/self/clear_refs", "w") as f:
        f.write("5")  # resets VmHWM to the RSS now
    peak_reset = True
except OSError:
    peak_reset = False
print(json.dumps({"package": fakepop3.__file__, "port": server.port, "stat": list(stat), "generate": t1 - t0,
                  "first_stat": t2 - t0, "rss_before": before, "rss_after": after,
                  "peak_reset": peak_reset}), flush=True)
sys.stdin.readline()  # the parent has read LIST and UIDL
print(json.dumps({"peak": status("VmHWM"), "rss_end": status("VmRSS")}), flush=True)
server.stop()
"""

YARDSTICK_CHILD = r"""
import json, sys, time
def rss():
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
count = int(sys.argv[1])
before = rss()
t0 = time.perf_counter()
items = [b"%d" % i for i in range(count)]
t1 = time.perf_counter()
print(json.dumps({"time": t1 - t0, "rss": rss() - before}))
"""


def loadavg() -> str:
    return " ".join(f"{load:.2f}" for load in os.getloadavg())


def read_multiline(sock: socket.socket, buffer: bytes) -> tuple[int, bytes]:
    """Read one multi-line reply, counting its octets without keeping them; the rest read."""
    octets = 0
    tail = buffer
    while True:
        end = tail.find(b"\r\n.\r\n")
        if end >= 0:
            return octets + end + 5, tail[end + 5 :]
        octets += max(0, len(tail) - 4)
        tail = tail[-4:]
        chunk = sock.recv(1 << 20)
        if not chunk:
            raise ConnectionError("the server closed during a multi-line reply")
        tail += chunk


def read_line(sock: socket.socket, buffer: bytes) -> tuple[bytes, bytes]:
    while b"\r\n" not in buffer:
        chunk = sock.recv(65536)
        if not chunk:
            raise ConnectionError("the server closed")
        buffer += chunk
    line, _, rest = buffer.partition(b"\r\n")
    return line, rest


def list_and_uidl(port: int) -> tuple[int, float]:
    """A full LIST and UIDL over a socket: octets read, seconds taken."""
    with socket.create_connection(("127.0.0.1", port), timeout=300) as sock:
        buffer = b""
        _, buffer = read_line(sock, buffer)
        t0 = time.perf_counter()
        for line in (b"USER alice", b"PASS secret"):
            sock.sendall(line + b"\r\n")
            _, buffer = read_line(sock, buffer)
        total = 0
        for command in (b"LIST", b"UIDL"):
            sock.sendall(command + b"\r\n")
            status, buffer = read_line(sock, buffer)
            assert status.startswith(b"+OK"), status
            octets, buffer = read_multiline(sock, buffer)
            total += octets
        elapsed = time.perf_counter() - t0
        sock.sendall(b"QUIT\r\n")
        read_line(sock, buffer)
    return total, elapsed


def server_run(count: int, tree: Path | None) -> dict[str, float]:
    root = tree if tree is not None else Path(__file__).resolve().parent.parent
    env = dict(os.environ)
    env["PYTHONPATH"] = str(root) + os.pathsep + env.get("PYTHONPATH", "")
    child = subprocess.Popen(  # in the checkout's directory: "-c" puts it first on sys.path
        [sys.executable, "-c", SERVER_CHILD, str(count)],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        text=True,
        env=env,
        cwd=root,
    )
    assert child.stdin is not None and child.stdout is not None
    first = json.loads(child.stdout.readline())
    octets, elapsed = list_and_uidl(first["port"])
    child.stdin.write("done\n")
    child.stdin.flush()
    second = json.loads(child.stdout.readline())
    child.wait(timeout=120)
    assert first["stat"][0] == count, first
    assert first["package"].startswith(str(root)), (first["package"], root)
    return {
        "generate": first["generate"],
        "first_stat": first["first_stat"],
        "rss_per_message": (first["rss_after"] - first["rss_before"]) / count,
        "peak_list_uidl_mb": (second["peak"] - first["rss_after"]) / 2**20
        if first["peak_reset"]
        else float("nan"),
        "list_uidl_s": elapsed,
        "list_uidl_mb_sent": octets / 2**20,
    }


def yardstick_run(count: int) -> dict[str, float]:
    out = subprocess.run(
        [sys.executable, "-c", YARDSTICK_CHILD, str(count)],
        capture_output=True,
        text=True,
        check=True,
    )
    data = json.loads(out.stdout)
    return {"time": data["time"], "rss_per_item": data["rss"] / count}


def median(rows: list[dict[str, float]], key: str) -> float:
    return statistics.median(row[key] for row in rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--counts", default="1000000,100000")
    parser.add_argument("--against", type=Path, help="another checkout, run side by side")
    args = parser.parse_args()
    trees: list[tuple[str, Path | None]] = [("this checkout", None)]
    if args.against is not None:
        trees.append((f"--against {args.against.name}", args.against.resolve()))
    print(f"load average before: {loadavg()}; Python {sys.version.split()[0]}")
    for count in (int(c) for c in args.counts.split(",")):
        results: dict[str, list[dict[str, float]]] = {name: [] for name, _ in trees}
        sticks: list[dict[str, float]] = []
        for _ in range(args.runs):  # one round: each tree and the yardstick, fresh processes
            for name, tree in trees:
                results[name].append(server_run(count, tree))
            sticks.append(yardstick_run(count))
        print(f"\n{count:,} messages, median of {args.runs} runs in fresh processes:")
        for name, rows in results.items():
            print(
                f"  {name:<22} generate {median(rows, 'generate'):.2f} s | first STAT "
                f"{median(rows, 'first_stat'):.2f} s | RSS {median(rows, 'rss_per_message'):.0f} "
                f"B/message | LIST+UIDL peak +{median(rows, 'peak_list_uidl_mb'):.1f} MB "
                f"({median(rows, 'list_uidl_mb_sent'):.1f} MB sent, "
                f"{median(rows, 'list_uidl_s'):.2f} s)"
            )
        print(
            f"  {'yardstick':<22} a list of {count:,} small bytes: {median(sticks, 'time'):.2f} s, "
            f"{median(sticks, 'rss_per_item'):.0f} B/item"
        )
    print(f"\nload average after: {loadavg()}")


if __name__ == "__main__":
    main()
