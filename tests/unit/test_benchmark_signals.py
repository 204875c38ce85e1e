"""A benchmark run stopped with SIGTERM or SIGHUP cleans up as after an error: its hubs do not keep the ports."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
# a measurement's shape: set up, wait, and clean up in `finally` (where the hubs are stopped)
MEASUREMENT = """
import time
from benchmarks.__main__ import stop_on_signals
stop_on_signals()
try:
    print("measuring", flush=True)
    time.sleep(60)
finally:
    print("hub stopped", flush=True)
"""


@pytest.mark.parametrize("signum", [signal.SIGTERM, signal.SIGHUP])
def test_a_stopped_run_runs_its_clean_up(signum):
    proc = subprocess.Popen([sys.executable, "-c", MEASUREMENT], cwd=REPO, stdout=subprocess.PIPE, text=True)
    assert proc.stdout.readline() == "measuring\n"
    proc.send_signal(signum)
    out, _ = proc.communicate(timeout=10)
    assert out == "hub stopped\n" and proc.returncode == 128 + signum
