"""Mailbox generation speed: fakepop3.generate against the naive EmailMessage way.

Run by hand: ``python bench/bench_generate.py [--runs N]``. Prints messages/s
(median of N runs, after one warm-up) for 10, 1,000 and 100,000 messages, the
naive yardstick (one ``EmailMessage`` per message filled from Faker, then
``as_bytes()``) and the ratio. For 100,000 messages it measures (a) creating
the lazy mailbox plus its exact total size (what a first ``STAT`` needs) and
(b) building all 100,000 messages, one run; the naive figure there is its
1,000-message rate, since 100,000 naive messages take minutes.
"""

from __future__ import annotations

import argparse
import statistics
import time
from collections.abc import Callable
from email.message import EmailMessage
from email.utils import format_datetime

from faker import Faker

from fakepop3.generate import generate_messages


def naive(count: int, seed: int) -> list[bytes]:
    """The yardstick: one EmailMessage per message, filled from Faker."""
    fake = Faker("en_US")
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


def rate(fn: Callable[[int, int], list[bytes]], count: int, runs: int) -> tuple[float, float]:
    """Median messages/s over ``runs`` runs (fresh seed each) and mean message size."""
    fn(min(count, 10), 999)  # warm-up: imports, Faker locale data
    rates: list[float] = []
    size = 0.0
    for r in range(runs):
        t0 = time.perf_counter()
        msgs = fn(count, r)
        dt = time.perf_counter() - t0
        rates.append(count / dt)
        size = sum(map(len, msgs)) / len(msgs)
    return statistics.median(rates), size


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=5, help="runs per size (median)")
    args = parser.parse_args()
    print(
        f"{'messages':>9} {'fakepop3 msg/s':>15} {'avg size':>9} {'naive msg/s':>12}"
        f" {'avg size':>9} {'ratio':>6}"
    )
    naive_1000 = 0.0
    for count in (10, 1_000):
        ours_rate, ours_size = rate(ours, count, args.runs)
        naive_rate, naive_size = rate(naive, count, args.runs)
        naive_1000 = naive_rate
        print(
            f"{count:>9,} {ours_rate:>15,.0f} {ours_size:>9,.0f} {naive_rate:>12,.0f}"
            f" {naive_size:>9,.0f} {ours_rate / naive_rate:>5.1f}x"
        )

    t0 = time.perf_counter()
    mail = generate_messages(100_000, seed=1, cache_size=0)
    total = mail.total_size()
    lazy = time.perf_counter() - t0
    t0 = time.perf_counter()
    built = 0
    for raw in mail:
        built += len(raw)
    full = time.perf_counter() - t0
    assert built == total
    print(
        f"{100_000:>9,} {100_000 / full:>15,.0f} {built / 100_000:>9,.0f}"
        f" {naive_1000:>12,.0f} {'(1,000)':>9} {100_000 / full / naive_1000:>5.1f}x"
        "   one run, every message built"
    )
    print(
        f"100,000-message lazy mailbox + exact total size (first STAT): {lazy * 1000:,.0f} ms"
        f" ({total:,} octets)"
    )


if __name__ == "__main__":
    main()
