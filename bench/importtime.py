"""What importing the pytest plugin costs: ``python -X importtime``, median of N runs.

    python bench/importtime.py [--runs 5]

pytest imports ``fakepop3.plugin`` in every project that has fakepop3 installed.  This runs
``python -X importtime -c "import pytest, pytest_asyncio, faker, fakepop3.plugin"`` (bytecode
cached: the first, unmeasured run writes it) and reports the cumulative microseconds of
``fakepop3.plugin`` and, beside it, of the yardstick every such run pays anyway (pytest,
pytest-asyncio, faker), with the fakepop3 and stdlib modules the plugin brought in.
"""

from __future__ import annotations

import argparse
import os
import re
import statistics
import subprocess
import sys

STATEMENT = "import pytest, pytest_asyncio, faker, fakepop3.plugin"
TOP = ("pytest", "pytest_asyncio", "faker", "fakepop3.plugin")
LINE = re.compile(r"import time:\s+(\d+) \|\s+(\d+) \|( *)(\S+)")


def one_run(env: dict[str, str]) -> dict[str, int]:
    """Cumulative µs of each top-level import of STATEMENT."""
    err = subprocess.run(
        [sys.executable, "-X", "importtime", "-c", STATEMENT],
        capture_output=True,
        text=True,
        env=env,
        check=True,
    ).stderr
    out: dict[str, int] = {}
    for line in err.splitlines():
        m = LINE.match(line)
        if m and len(m.group(3)) == 1 and m.group(4) in TOP:
            out[m.group(4)] = int(m.group(2))
    return out


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--runs", type=int, default=5)
    a = p.parse_args(argv)
    env = {k: v for k, v in os.environ.items() if k != "PYTHONDONTWRITEBYTECODE"}
    one_run(env)  # write the bytecode
    runs = [one_run(env) for _ in range(a.runs)]
    print(f"python -X importtime, median of {a.runs} runs, Python {sys.version.split()[0]}")
    for name in TOP:
        ms = statistics.median(r.get(name, 0) for r in runs) / 1000
        print(f"  {name:<16} {ms:7.1f} ms (cumulative)")
    base = statistics.median(sum(r.get(n, 0) for n in TOP[:3]) for r in runs) / 1000
    print(f"  {'yardstick':<16} {base:7.1f} ms (pytest + pytest_asyncio + faker)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
