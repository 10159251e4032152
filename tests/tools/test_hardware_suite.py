"""hardware_tests/ is the device-side suite for real boards; here it runs
on the virtual board, so CI proves the suite itself works (and that the
firmware passes it) without a board on a cable."""

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]


def test_the_hardware_suite_passes_on_the_virtual_board():
    proc = subprocess.run(
        [sys.executable, "-m", "pytest", "hardware_tests", "-q", "-p", "no:cacheprovider"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=600,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout[-4000:] + proc.stderr[-2000:]
    summary = proc.stdout.strip().splitlines()[-1]
    assert " passed" in summary and "skipped" not in summary and "failed" not in summary
