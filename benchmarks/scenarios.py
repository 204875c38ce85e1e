"""The measurements, one function each; every one leaves the queue and the hub as it found them.

- :func:`seeded`: N servers known to the hub; the hub restarts onto them (time and Slurm calls until every
  state is confirmed), then polls them for a window (slurmctld's RPCs and the hub's Slurm commands).
- :func:`pending`: one spawn waiting in the queue behind an exclusive job: what it costs slurmctld per minute.
- :func:`latency`: request -> server ready, a series of spawns on an empty node.
- :func:`floor`: the same Jupyter server as a bare ``sbatch``, until its port answers: the physical floor.
"""

from __future__ import annotations

import socket
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import harness
from tests.slurmtools import head_address, jobs_of, slurm, wait_for


def workdir(kind: str) -> Path:
    """A fresh folder for one hub of ``kind``."""
    return Path(tempfile.mkdtemp(prefix=f"dkrz-bench-{kind}-"))


def _ready_count(hub: harness.BenchHub) -> int:
    users = hub.api("GET", "/users").json()
    return sum(1 for user in users for server in (user.get("servers") or {}).values() if server.get("ready"))


def _per_interval(count: int, window: float, interval: float) -> float:
    return round(count * interval / window, 2)


def seeded(kind: str, servers: int, window: float, interval: float, responder: harness.Responder) -> dict:
    hub = harness.BenchHub(kind, workdir(kind), interval)
    hub.start()  # an empty first start creates the database
    hub.stop()
    sleepers = harness.start_sleepers(servers)
    try:
        harness.seed_servers(hub, sleepers, responder.port)
        harness.sdiag_reset()
        offset = hub.log_offset()
        launched = time.monotonic()
        hub.start()
        wait_for(lambda: _ready_count(hub) == servers, timeout=600, interval=0.05,
                 what=f"{servers} seeded servers ready")
        restart_s = time.monotonic() - launched
        restart_rpcs = harness.sdiag_rpcs()
        restart_log = hub.log_since(offset)
        init = harness.INIT_LINE.search(restart_log)
        restart_commands = hub.slurm_commands(offset)
        harness.sdiag_reset()
        offset = hub.log_offset()
        time.sleep(window)
        rpcs = harness.sdiag_rpcs()
        commands = hub.slurm_commands(offset)
        still_ready = _ready_count(hub)
    finally:
        hub.stop()
        harness.cancel_jobs([s.job_id for s in sleepers])
    return {
        "kind": kind, "servers": servers, "window_s": window, "interval_s": interval,
        "restart": {
            "launch_to_all_ready_s": round(restart_s, 3),
            "init_spawners_s": float(init.group(2)) if init else None,
            "slurm_commands": restart_commands,
            "job_info_rpcs": harness.job_info_rpcs(restart_rpcs),
            "all_rpcs": sum(restart_rpcs.values()),
        },
        "steady": {
            "slurm_commands": commands,
            "slurm_commands_per_interval": _per_interval(sum(commands.values()), window, interval),
            "job_info_rpcs_per_interval": _per_interval(harness.job_info_rpcs(rpcs), window, interval),
            "all_rpcs_per_interval": _per_interval(sum(rpcs.values()), window, interval),
            "rpcs_by_type": rpcs,
            "servers_still_ready": still_ready,
        },
    }


def pending(kind: str, window: float, interval: float) -> dict:
    """One spawn waits behind an exclusive job (on every node) for ``window`` seconds; nothing else runs."""
    nodes = len(slurm("sinfo", "-h", "-N", "-p", "shared", "-o", "%n").split())
    blocker = slurm("sudo", "-n", "-u", "bob", "--", "sbatch", "--parsable", "-p", "shared", "--exclusive",
                    f"--nodes={nodes}",
                    "--mem=100M", "-t", "60", "-J", "bench-blocker", "-o", "/dev/null", "--chdir=/tmp",
                    "--wrap", "exec sleep 3600").strip().split(";")[0]
    wait_for(lambda: slurm("squeue", "-h", "-j", blocker, "-o", "%T").strip() == "RUNNING", timeout=120,
             what="the blocking job running")
    hub = harness.BenchHub(kind, workdir(kind), interval)
    hub.start()
    try:
        hub.api("POST", "/users/alice")
        response = hub.api("POST", "/users/alice/server", json={"user_options": harness.SPAWN_OPTIONS[kind]})
        assert response.status_code in (201, 202), response.text
        wait_for(lambda: jobs_of("alice"), timeout=60, what="alice's spawn in the queue")
        time.sleep(2)
        harness.sdiag_reset()
        offset = hub.log_offset()
        time.sleep(window)
        rpcs = harness.sdiag_rpcs()
        commands = hub.slurm_commands(offset)
        reason = slurm("squeue", "-h", "-u", "alice", "-o", "%T %r").strip()
        hub.stop_server("alice")
    finally:
        hub.stop()
        harness.cancel_jobs([blocker, *jobs_of("alice")])
    return {
        "kind": kind, "window_s": window, "job_state_during_window": reason,
        "slurm_commands": commands,
        "slurm_commands_per_minute": round(sum(commands.values()) * 60 / window, 1),
        "job_info_rpcs_per_minute": round(harness.job_info_rpcs(rpcs) * 60 / window, 1),
        "all_rpcs_per_minute": round(sum(rpcs.values()) * 60 / window, 1),
    }


def latency(kind: str, spawns: int) -> dict:
    """``spawns`` spawns of alice's default server, one after the other: POST -> ``ready`` in the API."""
    hub = harness.BenchHub(kind, workdir(kind))
    hub.start()
    seconds = []
    try:
        hub.api("POST", "/users/alice")
        for _ in range(spawns):
            started = time.monotonic()
            response = hub.api("POST", "/users/alice/server", json={"user_options": harness.SPAWN_OPTIONS[kind]})
            assert response.status_code in (201, 202), response.text
            wait_for(lambda: (hub.server("alice") or {}).get("ready"), timeout=300, interval=0.05,
                     what="alice's server ready")
            seconds.append(time.monotonic() - started)
            hub.stop_server("alice")
            wait_for(lambda: not jobs_of("alice"), timeout=120, what="alice's job gone")
            time.sleep(2)
    finally:
        hub.stop()
        harness.cancel_jobs(jobs_of("alice"))
    return {"kind": kind, **summary(seconds)}


#: the floor's job runs here (a compute node of its own, reached over its address like the spawners' servers)
FLOOR_NODE = "node1"
FLOOR_SCRIPT = """#!/bin/bash
#SBATCH --job-name=bench-floor
#SBATCH --partition=shared
#SBATCH --nodelist={node}
#SBATCH --ntasks=1
#SBATCH --cpus-per-task=1
#SBATCH --mem=2500M
#SBATCH --time=00:10:00
#SBATCH --output=/dev/null
#SBATCH --chdir=/tmp
#SBATCH --export=NONE
export PATH={venv}/bin:/usr/local/bin:/usr/bin:/bin LANG=C.UTF-8 HOME=/home/alice
export JUPYTERHUB_API_TOKEN=floor JUPYTERHUB_CLIENT_ID=jupyterhub-user-alice JUPYTERHUB_USER=alice
export JUPYTERHUB_API_URL=http://{head}:{hub_port}/hub/api JUPYTERHUB_BASE_URL=/
export JUPYTERHUB_SERVICE_PREFIX=/user/alice/ JUPYTERHUB_OAUTH_CALLBACK_URL=/user/alice/oauth_callback
export JUPYTERHUB_SERVICE_URL=http://0.0.0.0:{port}/user/alice/
exec {venv}/bin/jupyterhub-singleuser
"""


def free_port() -> int:
    """A TCP port free on this host now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def answers(url: str) -> bool:
    """Whether ``url`` answers 200 within half a second."""
    try:
        return requests.get(url, timeout=0.5).status_code == 200
    except requests.RequestException:
        return False


def floor(runs: int) -> dict:
    """A bare ``sbatch`` of jupyterhub-singleuser as alice, until ``/user/alice/api`` answers 200.

    An idle hub runs meanwhile: jupyterhub-singleuser asks the hub's API for its version before it listens.
    """
    hub = harness.BenchHub("dkrz", workdir("floor"))
    hub.start()
    try:
        return {"kind": "floor", **summary([_bare_spawn() for _ in range(runs)])}
    finally:
        hub.stop()


def _bare_spawn() -> float:
    port = free_port()
    script = FLOOR_SCRIPT.format(venv=harness.VENVS["dkrz"], port=port, hub_port=harness.PORTS[1],
                                 head=head_address(), node=FLOOR_NODE)
    started = time.monotonic()
    done = subprocess.run(["sudo", "-n", "-u", "alice", "--", "sbatch", "--parsable"], input=script,
                          capture_output=True, text=True, timeout=60, check=True)
    job_id = done.stdout.strip().split(";")[0]
    try:
        wait_for(lambda: answers(f"http://{FLOOR_NODE}:{port}/user/alice/api"), timeout=120, interval=0.01,
                 what="the bare server answering")
        seconds = time.monotonic() - started
    finally:
        harness.cancel_jobs([job_id])
    time.sleep(2)
    return seconds


def summary(seconds: list[float]) -> dict:
    ordered = sorted(seconds)
    quartiles = statistics.quantiles(ordered, n=4) if len(ordered) > 1 else [ordered[0]] * 3
    return {"n": len(ordered), "median_s": round(statistics.median(ordered), 3), "min_s": round(ordered[0], 3),
            "max_s": round(ordered[-1], 3), "q1_s": round(quartiles[0], 3), "q3_s": round(quartiles[2], 3),
            "samples_s": [round(s, 3) for s in seconds]}
