"""What the integration and end-to-end tests ask the real local Slurm (never mocked)."""

from __future__ import annotations

import os
import subprocess
import time
from contextlib import contextmanager

import pytest

SLURM_MISSING = (
    "The real local Slurm is not running (sinfo failed). Start it with `make cluster`; "
    "these tests never pass without it."
)


def slurm(*argv: str, check=True) -> str:
    """Run a Slurm client command as root and return its stdout."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def require_slurm():
    """Fail in CI, skip loudly elsewhere, when the local cluster is not up."""
    try:
        ok = subprocess.run(["sinfo", "-h"], capture_output=True, timeout=30).returncode == 0
    except (OSError, subprocess.TimeoutExpired):
        ok = False
    if not ok:
        if os.environ.get("CI"):
            pytest.fail(SLURM_MISSING)
        pytest.skip(reason=SLURM_MISSING)


def job_field(job_id, fmt: str) -> str:
    """One squeue format field of a job that slurmctld knows (``-t all``)."""
    return slurm("squeue", "-h", "-t", "all", "-j", str(job_id), "-o", fmt).strip()


def sacct_state(job_id) -> str:
    """sacct's final state word (``CANCELLED by 1001`` gives ``CANCELLED``), or '' while unknown."""
    words = slurm("sacct", "-X", "-n", "-P", "-j", str(job_id), "-o", "State").split()
    return words[0] if words else ""


def wait_for(predicate, timeout=60.0, interval=0.2, what="condition"):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = predicate()
        if value:
            return value
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")


def jobs_of(user: str) -> list[str]:
    """Ids of the user's jobs that are queued or running."""
    return slurm("squeue", "-h", "-u", user, "-o", "%i").split()


def accounted_jobs(user: str, since: str) -> list[str]:
    """Ids of every job of ``user`` submitted since ``since`` (sacct: also the ended ones)."""
    # sacct -S also lists jobs that merely ran during the window: keep those submitted in it.
    out = slurm("sacct", "-X", "-n", "-P", "-u", user, "-S", since, "-o", "JobID,Submit")
    rows = (line.split("|") for line in out.splitlines() if line.strip())
    return [job_id for job_id, submitted in rows if submitted >= since]


@contextmanager
def node_filled(cpus: int):
    """Root jobs holding ``cpus`` CPUs of the node, so that the next request has to wait."""
    job = slurm("sbatch", "--parsable", "-A", "root", "-p", "shared", "-c", str(cpus), "--mem=100M", "-t", "10",
                "--chdir=/tmp", "-o", "/dev/null", "--wrap", "sleep 600").strip()
    try:
        wait_for(lambda: job_field(job, "%T") == "RUNNING", timeout=30, what="the blocker to run")
        yield job
    finally:
        slurm("scancel", job, check=False)
