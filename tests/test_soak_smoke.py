"""The soak script (bench/soak.py) runs end to end in its quick form and finds nothing wrong.

The full soak (100,000 sessions) is run by hand: ``python bench/soak.py``.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

SOAK = Path(__file__).resolve().parent.parent / "bench" / "soak.py"


def test_quick_soak_reports_no_errors_and_no_leaks() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--quick", "--json"],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report["ok"] is True
    assert report["errors"] == {} and report["leaks"] == []
    assert report["sessions"] == 1500
    # Every scenario ran, faults fired, and the leak figures were taken.
    assert set(report["scenarios"]) == {
        "full", "delete", "drop_after_dele", "drop_mid_retr", "drop_at_greeting", "pipelined",
        "garbage", "wrong_password", "in_use", "capa", "chaos",
    }  # fmt: skip
    chaos = sum(report["chaos_outcomes"].values())  # (a connect fault may refuse one first)
    assert report["scenarios"]["chaos"] - report["connect_faults_seen"] <= chaos
    assert chaos <= report["scenarios"]["chaos"]
    assert report["chaos_outcomes"].get("clean", 0) > 0
    assert report["faults_fired"]
    assert report["fds"][0] == report["fds"][1] > 0
    assert report["server_tasks"] == [0, 0]
    assert len(report["rounds"]) == 3
    assert report["connections"] >= report["sessions"]


def test_soak_rejects_bad_arguments() -> None:
    done = subprocess.run(
        [sys.executable, str(SOAK), "--rounds", "0"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert done.returncode == 2
    assert "--rounds >= 1" in done.stderr
