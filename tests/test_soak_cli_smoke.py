"""bench/soak.py --cli runs the standalone program end to end in a short form: no errors, whole
lines in the history file, a reset per round.  The full run (100,000 sessions) is by hand:
``python bench/soak.py --cli`` (figures in bench/README.md)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="reads /proc/PID/status")
def test_the_cli_soak_runs_clean() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--cli", "--sessions", "300", "--concurrency", "4",
         "--rounds", "2", "--json"],
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] is True and report["errors"] == {}
    assert report["sessions"] == 300
    assert report["history_file"]["whole_lines"] is True
    events = report["history_file"]["events"]
    assert events["reset"] == 2 and events["session_end"] >= 250
    assert set(report["rss_mib"]) == {"start", "first_round", "middle", "end"}
    assert report["chaos_outcomes"], "the chaos user's faults ran"
