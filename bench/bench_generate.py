"""Mailbox generation speed: fakepop3.mail.generate_messages against the naive EmailMessage way.

Run by hand: ``python bench/bench_generate.py [--runs N] [--cold-runs N] [--quick]``.

* **Throughput** for 10 and 1,000 messages: fakepop3 and the naive yardstick (one
  ``EmailMessage`` per message filled from Faker, then ``as_bytes()``) are timed
  side by side, back to back in each run (their order alternating), after a
  warm-up each (imports; fakepop3 loads the data of the 10 locales its default
  knobs use, the yardstick makes its Faker). Prints the median messages/s of
  each and the median of the per-run ratios (robust to the machine's load
  changing between runs).
* **First mailbox in a fresh process**: 1,000 messages including imports and
  that one-time loading, both ways (median of ``--cold-runs``).
* **100,000 messages**, in this process: the lazy mailbox plus its exact sizes
  (``GeneratedMail.sizes()``: what a first ``STAT`` needs) and, unless
  ``--quick``, building every message once (the naive figure there is its
  1,000-message rate, since 100,000 naive messages take minutes).
* **Cold start**: a fresh interpreter runs ``POP3Server(users=...)``,
  ``mailbox.generate(100_000, seed=1)``, starts the server and logs in with
  poplib; the time from spawning it to the ``STAT`` reply (median of
  ``--cold-runs``), with the child's own split. Also the generator's share alone:
  a fresh interpreter importing ``fakepop3.mail``'s generator and computing all 100,000
  sizes.

The load average (``/proc/loadavg``) is printed before and after: on a shared
machine the absolute figures move with it, the side-by-side ratio much less.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime
from functools import cache
from pathlib import Path

from faker import Faker

from fakepop3.mail import generate_messages

COLD_COUNT = 100_000

#: The cold-start child: a fresh interpreter, timed from its first line.
COLD_CHILD = """\
import time
t0 = time.perf_counter()
import json, poplib, sys
from fakepop3 import POP3Server
t1 = time.perf_counter()
server = POP3Server(users={"alice": "secret"})
server.mailbox("alice").generate(%(count)d, seed=1)
t2 = time.perf_counter()
server.start()
t3 = time.perf_counter()
client = poplib.POP3(server.host, server.port, timeout=60)
client.user("alice")
client.pass_("secret")
count, octets = client.stat()
t4 = time.perf_counter()
print(json.dumps({"count": count, "octets": octets, "import": t1 - t0, "generate": t2 - t1,
                  "start": t3 - t2, "login_stat": t4 - t3}), flush=True)
client.quit()
server.stop()
"""

#: The generator's share of a cold start: import it and compute every size.
SIZES_CHILD = """\
import time
t0 = time.perf_counter()
from fakepop3.mail import generate_messages
total = sum(generate_messages(%(count)d, seed=1).sizes())
print(time.perf_counter() - t0, total, flush=True)
"""


def loadavg() -> str:
    try:
        with open("/proc/loadavg") as f:
            return " ".join(f.read().split()[:3])
    except OSError:
        return "n/a"


@cache
def _naive_faker() -> Faker:
    return Faker("en_US")


def naive(count: int, seed: int) -> list[bytes]:
    """The yardstick: one EmailMessage per message, filled from Faker."""
    fake = _naive_faker()  # made once per process, like fakepop3's locale data
    fake.seed_instance(seed)
    out: list[bytes] = []
    for _ in range(count):
        msg = EmailMessage()
        msg["From"] = f"{fake.name()} <{fake.email()}>"
        msg["To"] = f"{fake.name()} <{fake.email()}>"
        msg["Subject"] = fake.sentence()
        msg["Date"] = format_datetime(fake.date_time(tzinfo=None).astimezone())
        msg["Message-ID"] = f"<{fake.uuid4()}@{fake.domain_name()}>"
        msg.set_content("\n\n".join(fake.paragraphs(3)))
        out.append(msg.as_bytes())
    return out


def ours(count: int, seed: int) -> list[bytes]:
    return list(generate_messages(count, seed=seed, cache_size=0))


def warm_up() -> None:
    """Load what fakepop3 loads once per process: every default locale, the filler."""
    for _ in generate_messages(200, seed=999, non_ascii=1.0, cache_size=0):
        pass


#: A fresh interpreter making its first 1,000 messages (imports and loading included).
FIRST_CHILD = """\
import time
t0 = time.perf_counter()
import sys
sys.path.insert(0, %(here)r)
from bench_generate import %(fn)s
msgs = %(fn)s(1000, 0)
print(time.perf_counter() - t0, flush=True)
"""


def first_mailbox(runs: int) -> None:
    here = str(Path(__file__).resolve().parent)
    got: dict[str, float] = {}
    for fn in ("ours", "naive"):
        times = [
            float(run_child(FIRST_CHILD % {"here": here, "fn": fn})[1].split()[0])
            for _ in range(runs)
        ]
        got[fn] = statistics.median(times)
    print(
        f"first 1,000 messages in a fresh process (imports, Faker, locale data included):"
        f" fakepop3 {got['ours'] * 1000:,.0f} ms, naive {got['naive'] * 1000:,.0f} ms"
        f" ({got['naive'] / got['ours']:.1f}x; median of {runs})"
    )


Maker = Callable[[int, int], list[bytes]]


def timed(fn: Maker, count: int, seed: int) -> tuple[float, float]:
    """Messages/s of one run and the mean message size."""
    t0 = time.perf_counter()
    msgs = fn(count, seed)
    dt = time.perf_counter() - t0
    return count / dt, sum(map(len, msgs)) / len(msgs)


def side_by_side(count: int, runs: int) -> dict[str, float]:
    """Both makers, back to back in each run (alternating which goes first)."""
    warm_up()
    ours(min(count, 50), 999)
    naive(min(count, 50), 999)
    rates: dict[str, list[float]] = {"ours": [], "naive": []}
    sizes: dict[str, float] = {}
    ratios: list[float] = []
    for r in range(runs):
        order = [("ours", ours), ("naive", naive)]
        if r % 2:
            order.reverse()
        got: dict[str, float] = {}
        for name, fn in order:
            got[name], sizes[name] = timed(fn, count, r)
            rates[name].append(got[name])
        ratios.append(got["ours"] / got["naive"])
    return {
        "ours": statistics.median(rates["ours"]),
        "naive": statistics.median(rates["naive"]),
        "ours_size": sizes["ours"],
        "naive_size": sizes["naive"],
        "ratio": statistics.median(ratios),
        "ratio_min": min(ratios),
    }


def run_child(code: str) -> tuple[float, str]:
    """Seconds from spawning a fresh interpreter to its first line, and the line."""
    t0 = time.perf_counter()
    proc = subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
    )
    assert proc.stdout is not None
    line = proc.stdout.readline()
    elapsed = time.perf_counter() - t0
    _, err = proc.communicate(timeout=120)
    if proc.returncode != 0 or not line:
        raise RuntimeError(f"child failed (exit {proc.returncode}): {err.strip()[-2000:]}")
    return elapsed, line


def cold_start(runs: int) -> None:
    walls: list[float] = []
    splits: list[dict[str, float]] = []
    for _ in range(runs):
        wall, line = run_child(COLD_CHILD % {"count": COLD_COUNT})
        data = json.loads(line)
        assert data["count"] == COLD_COUNT, data
        walls.append(wall)
        splits.append(data)
    med = statistics.median(walls)
    parts = ", ".join(
        f"{key} {statistics.median(s[key] for s in splits) * 1000:,.0f}"
        for key in ("import", "generate", "start", "login_stat")
    )
    print(
        f"cold start -> first STAT, {COLD_COUNT:,} messages: {med * 1000:,.0f} ms median of {runs}"
        f" (runs: {', '.join(f'{w * 1000:,.0f}' for w in walls)} ms; target 1,000 ms)"
    )
    print(f"  child's split, medians in ms: {parts}")
    gen: list[float] = []
    for _ in range(runs):
        _, line = run_child(SIZES_CHILD % {"count": COLD_COUNT})
        gen.append(float(line.split()[0]))
    print(
        f"  generator's share (fresh interpreter: import the generator + sizes() of"
        f" {COLD_COUNT:,}): {statistics.median(gen) * 1000:,.0f} ms median of {runs}"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=(__doc__ or "").splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per size (median, at least 5)")
    parser.add_argument("--cold-runs", type=int, default=3, help="cold starts (median)")
    parser.add_argument(
        "--quick", action="store_true", help="3 runs, and do not build all 100,000 messages"
    )
    args = parser.parse_args()
    runs = 3 if args.quick else max(5, args.runs)
    print(f"load average before: {loadavg()}")
    print(
        f"{'messages':>9} {'fakepop3 msg/s':>15} {'avg size':>9} {'naive msg/s':>12}"
        f" {'avg size':>9} {'ratio':>6}  (median of {runs} side-by-side runs; worst run's ratio)"
    )
    naive_1000 = 0.0
    for count in (10, 1_000):
        res = side_by_side(count, runs)
        naive_1000 = res["naive"]
        print(
            f"{count:>9,} {res['ours']:>15,.0f} {res['ours_size']:>9,.0f} {res['naive']:>12,.0f}"
            f" {res['naive_size']:>9,.0f} {res['ratio']:>5.1f}x  (worst {res['ratio_min']:.1f}x;"
            " target 10x at 1,000)"
        )

    t0 = time.perf_counter()
    mail = generate_messages(COLD_COUNT, seed=1, cache_size=0)
    total = sum(mail.sizes())
    lazy = time.perf_counter() - t0
    print(
        f"{COLD_COUNT:,}-message lazy mailbox + exact sizes (in this process): {lazy * 1000:,.0f} ms"
        f" ({total:,} octets)"
    )
    if not args.quick:
        t0 = time.perf_counter()
        built = 0
        for raw in mail:
            built += len(raw)
        full = time.perf_counter() - t0
        assert built == total
        print(
            f"{COLD_COUNT:>9,} {COLD_COUNT / full:>15,.0f} {built / COLD_COUNT:>9,.0f}"
            f" {naive_1000:>12,.0f} {'(1,000)':>9} {COLD_COUNT / full / naive_1000:>5.1f}x"
            "  one run, every message built"
        )
    first_mailbox(max(3, args.cold_runs))
    cold_start(max(3, args.cold_runs))
    print(f"load average after: {loadavg()}")


if __name__ == "__main__":
    main()
