"""The job side: a default ``jupyterhub-singleuser`` (the floor) against dkrzspawner's lean start of it.

Both run in bare ``sbatch`` jobs as alice on the floor's node, alternately (the order flips every round, so that
neither kind always follows the other onto a warm page cache), and each is timed from ``sbatch`` to the first 200
of ``/user/alice/api`` on the node: the queue, the job's start, Python's imports, the extensions' discovery and
the hub version check (an idle hub runs meanwhile, as for :func:`benchmarks.scenarios.floor`). The lean start
is the command the spawner puts behind its wrapper (``DKRZSpawner.lean_job_start``, ``job_deferred_imports``,
``job_server_args`` at their defaults); the wrapper's own share (a port report to the hub) is in the spawn
latency, not here. ``DKRZ_E2E_JOB_PYTHONPATH`` (a checkout) puts that checkout's code first in both kinds' jobs.
"""

from __future__ import annotations

import os
import shlex
import subprocess
import tempfile
import time
from pathlib import Path

from benchmarks import harness, scenarios
from dkrzspawner.singleuser import free_port
from tests.slurmtools import head_address, wait_for

KINDS = ("default", "lean")
JOB_SCRIPT = """#!/bin/bash
#SBATCH --job-name=bench-jobside-{kind}
#SBATCH --partition=shared
#SBATCH --nodelist={node}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=2500M
#SBATCH --time=00:10:00
#SBATCH --output=/dev/null
#SBATCH --chdir=/tmp
#SBATCH --export=NONE
export PATH={venv}/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/alice {pythonpath}
export JUPYTERHUB_API_TOKEN=jobside JUPYTERHUB_CLIENT_ID=jupyterhub-user-alice JUPYTERHUB_USER=alice
export JUPYTERHUB_API_URL=http://{head}:{hub_port}/hub/api JUPYTERHUB_BASE_URL=/
export JUPYTERHUB_SERVICE_PREFIX=/user/alice/ JUPYTERHUB_OAUTH_CALLBACK_URL=/user/alice/oauth_callback
export JUPYTERHUB_SERVICE_URL=http://0.0.0.0:{port}/user/alice/
exec {command}
"""


def command(kind: str, venv: Path) -> list[str]:
    """The server's command line: JupyterHub's default, or the spawner's lean start with its default settings."""
    server = [f"{venv}/bin/jupyterhub-singleuser"]
    if kind == "default":
        return server
    from dkrzspawner.spawner import DKRZSpawner

    traits = DKRZSpawner.class_traits()
    deferred = [arg for name in traits["job_deferred_imports"].default() for arg in ("--defer", name)]
    return [f"{venv}/bin/dkrzspawner-leanstart", *deferred, "--", *server,
            *traits["job_server_args"].default()]


def start_once(kind: str) -> float:
    """Seconds from ``sbatch`` of ``kind``'s server to its first 200 on ``/user/alice/api``."""
    port = free_port("127.0.0.1")
    job_path = os.environ.get("DKRZ_E2E_JOB_PYTHONPATH")
    script = JOB_SCRIPT.format(
        kind=kind, node=scenarios.FLOOR_NODE, venv=harness.VENVS["dkrz"], head=head_address(),
        hub_port=harness.PORTS[1], port=port, pythonpath=f"PYTHONPATH={shlex.quote(job_path)}" if job_path else "",
        command=shlex.join(command(kind, harness.VENVS["dkrz"])))
    started = time.monotonic()
    done = subprocess.run(["sudo", "-n", "-u", "alice", "--", "sbatch", "--parsable"], input=script,
                          capture_output=True, text=True, timeout=60, check=True)
    job_id = done.stdout.strip().split(";")[0]
    try:
        wait_for(lambda: scenarios.answers(f"http://{scenarios.FLOOR_NODE}:{port}/user/alice/api"), timeout=300,
                 interval=0.01, what=f"the {kind} server answering")
        seconds = time.monotonic() - started
    finally:
        harness.cancel_jobs([job_id])
    time.sleep(2)
    return seconds


def run(rounds: int) -> dict:
    """``rounds`` starts of each kind, alternately, with an idle hub for the version check; their summaries."""
    hub = harness.BenchHub("dkrz", Path(tempfile.mkdtemp(prefix="dkrz-bench-jobside-")))
    hub.start()
    seconds = {kind: [] for kind in KINDS}
    try:
        for number in range(rounds):
            for kind in KINDS if number % 2 == 0 else reversed(KINDS):
                seconds[kind].append(start_once(kind))
    finally:
        hub.stop()
    result = {kind: scenarios.summary(values) for kind, values in seconds.items()}
    result["commands"] = {kind: shlex.join(command(kind, harness.VENVS["dkrz"])) for kind in KINDS}
    result["lean_minus_default_s"] = round(result["lean"]["median_s"] - result["default"]["median_s"], 3)
    return result
