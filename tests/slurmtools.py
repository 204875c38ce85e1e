"""What the integration and end-to-end tests ask the real local Slurm (never mocked)."""

from __future__ import annotations

import os
import socket
import subprocess
import time
from contextlib import contextmanager
from pathlib import Path

import pytest

SLURM_MISSING = (
    "The real local Slurm is not running (sinfo failed). Start it with `make cluster`; "
    "these tests never pass without it."
)


REPO = Path(__file__).resolve().parents[1]
SLURM_LOCAL_DIR = Path(os.environ.get("SLURM_LOCAL_DIR") or "/var/lib/slurm-local")
#: the name ci/slurm-up gives the host (slurmctld, slurmdbd, the hub) on the compute nodes' network
HEAD_NAME = "slurm-head"


def head_address() -> str:
    """The host's address on the compute nodes' network: where jobs reach the hub (never 127.0.0.1, which is the
    node's own loopback inside a job)."""
    try:
        return socket.gethostbyname(HEAD_NAME)
    except OSError:
        raise RuntimeError(f"{HEAD_NAME} does not resolve: the local cluster is not up (make cluster)") from None


def slurm(*argv: str, check=True) -> str:
    """Run a Slurm client command as root and return its stdout."""
    done = subprocess.run(list(argv), capture_output=True, text=True, timeout=60)
    if check and done.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed: {done.stderr.strip()}")
    return done.stdout


def on_node(node: str, *argv: str, check=True) -> str:
    """Run a command as root on compute node ``node`` (in its network and UTS namespaces, entered through its
    slurmd) and return its stdout: what a node-local command such as ``scontrol listpids`` needs."""
    pid = (SLURM_LOCAL_DIR / "run" / f"slurmd-{node}.pid").read_text().strip()
    return slurm("nsenter", "-t", pid, "-n", "-u", "--", *argv, check=check)


def nodes_script(*args: str) -> None:
    """ci/slurm-nodes (power a node off, start its slurmd again, ...), with the cluster's own settings."""
    done = subprocess.run(["bash", str(REPO / "ci" / "slurm-nodes"), *args], capture_output=True, text=True,
                          timeout=120)
    if done.returncode != 0:
        raise RuntimeError(f"ci/slurm-nodes {' '.join(args)} failed: {done.stderr.strip()}")


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
def cluster_filled():
    """Root jobs holding every CPU that is idle on every node, so that the next request has to wait; yields their
    job ids (one per node that had idle CPUs)."""
    jobs = []
    try:
        for line in slurm("sinfo", "-h", "-N", "-p", "shared", "-o", "%n %C").splitlines():
            node, cpus = line.split()
            idle = int(cpus.split("/")[1])  # allocated/idle/other/total
            if idle:
                jobs.append(slurm("sbatch", "--parsable", "-A", "root", "-p", "shared", "-w", node, "-c", str(idle),
                                  "--mem=100M", "-t", "10", "--chdir=/tmp", "-o", "/dev/null", "-J", "e2e-blocker",
                                  "--wrap", "sleep 600").strip())
        wait_for(lambda: all(job_field(job, "%T") == "RUNNING" for job in jobs), timeout=30,
                 what="the blockers to run")
        yield jobs
    finally:
        if jobs:
            slurm("scancel", *jobs, check=False)
