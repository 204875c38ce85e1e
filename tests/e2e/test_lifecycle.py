"""The job lifecycle with a real hub on the real Slurm: nothing is lost, and the user is told why.

These tests stop, pause and restart slurmctld and the hub on purpose; each restores what it broke.
"""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import pytest
import requests

from tests.slurmtools import cluster_filled, job_field, jobs_of, sacct_state, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

REPO = Path(__file__).resolve().parents[2]
SLURMCTLD_PID = Path(os.environ.get("SLURM_LOCAL_DIR", "/var/lib/slurm-local")) / "run" / "slurmctld.pid"


def slurmctld_pid() -> int:
    return int(SLURMCTLD_PID.read_text().strip())


def slurm_up():
    done = subprocess.run(["bash", str(REPO / "ci" / "slurm-up")], capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, f"ci/slurm-up failed: {done.stdout[-2000:]}{done.stderr[-2000:]}"


def answers(hub, user, name=""):
    token = hub.user_token(user)
    prefix = f"/user/{user}/{name + '/' if name else ''}"
    return requests.get(f"{hub.public_url}{prefix}api/status", headers={"Authorization": f"token {token}"},
                        timeout=30).status_code == 200


def hub_log_since(hub, offset: int) -> str:
    return hub.log_path.read_text(errors="replace")[offset:]


def test_scancel_from_outside_stops_the_server_and_says_who(hub):
    hub.spawn("alice", options={"preset": "shared"})
    job = hub.wait_ready("alice")["state"]["job_id"]
    slurm("scancel", job)
    # The test hub polls every 5 s (watch_interval): the hub notices within about one interval.
    wait_for(lambda: hub.server("alice") is None, timeout=30, what="the hub to notice the cancel")
    home = hub.home("alice")
    assert f"job {job}: The job was cancelled (by root)." in home, home


def test_walltime_limit_shows_timeout(hub):
    hub.spawn("bob", options={"preset": "shared", "runtime": "00:01:00"})
    job = hub.wait_ready("bob")["state"]["job_id"]
    home = hub.home("bob")
    assert "dkrz-time-left" in home and " min" in home, "walltime left is shown while it runs"
    wait_for(lambda: hub.server("bob") is None, timeout=240, interval=2, what="the walltime limit")
    assert sacct_state(job) == "TIMEOUT"
    assert f"job {job}: The job reached its walltime limit." in hub.home("bob")


def test_job_over_its_memory_fails_the_spawn_with_the_reason(hub):
    response = hub.spawn("carol", "hog", options={"preset": "shared", "cores": 1})
    if response.status_code == 202:
        wait_for(lambda: (hub.server("carol", "hog") or {}).get("pending") is None, timeout=120,
                 what="the spawn to fail")
        text = hub.home("carol")
    else:
        text = response.json()["message"]
    assert "ran out of memory" in text, text


def test_pending_spawn_shows_reason_and_estimate_and_cancelling_cancels_the_job(hub):
    with cluster_filled():
        response = hub.spawn("alice", "waiting", options={"preset": "shared"})
        assert response.status_code == 202, response.text
        job = wait_for(lambda: (hub.server("alice", "waiting") or {}).get("state", {}).get("job_id"),
                       timeout=30, what="the job id in the hub's state")
        messages = hub.progress_messages("alice", "waiting", until="Expected to start", timeout=60)
        waiting = [m for m in messages if "waiting in the queue" in m]
        assert waiting, messages
        assert "cores, memory or GPUs" in waiting[-1], waiting
        assert "Expected to start" in messages[-1] and "Position 1 of 1" in messages[-1], messages

        slurm("scontrol", "hold", job)
        messages = hub.progress_messages("alice", "waiting", until="held", timeout=30)
        assert "held" in messages[-1], messages

        hub.stop_server("alice", "waiting")
        assert wait_for(lambda: sacct_state(job), timeout=30, what="sacct") == "CANCELLED"
        assert job not in jobs_of("alice")


def test_hub_restart_recovers_a_running_and_a_pending_server(hub):
    hub.spawn("alice", options={"preset": "shared"})
    running = hub.wait_ready("alice")["state"]["job_id"]
    with cluster_filled() as blockers:
        assert hub.spawn("alice", "queued", options={"preset": "shared"}).status_code == 202
        pending = wait_for(lambda: (hub.server("alice", "queued") or {}).get("state", {}).get("job_id"),
                           timeout=30, what="the queued job id")
        assert job_field(pending, "%T") == "PENDING"

        hub.stop()
        hub.start()
        assert hub.wait_ready("alice")["state"]["job_id"] == running
        assert job_field(pending, "%T") == "PENDING", "the queued job survives the restart"

        slurm("scancel", *blockers)
        assert hub.wait_ready("alice", "queued", timeout=120)["state"]["job_id"] == pending
    assert answers(hub, "alice") and answers(hub, "alice", "queued")
    assert sorted(jobs_of("alice")) == sorted([running, pending]), "no orphan, no duplicate"


def test_slurmctld_down_for_a_minute_loses_no_server(hub):
    hub.spawn("alice", options={"preset": "shared"})
    hub.spawn("bob", "second", options={"preset": "shared"})
    jobs = {hub.wait_ready("alice")["state"]["job_id"], hub.wait_ready("bob", "second")["state"]["job_id"]}
    offset = hub.log_path.stat().st_size
    os.kill(slurmctld_pid(), signal.SIGTERM)
    try:
        deadline = time.monotonic() + 60
        while time.monotonic() < deadline:
            assert hub.server("alice")["ready"] and hub.server("bob", "second")["ready"]
            time.sleep(5)
    finally:
        slurm_up()
    log = hub_log_since(hub, offset)
    assert "query failed, job states unchanged" in log, "the outage was noticed and changed nothing"
    wait_for(lambda: set(jobs_of("alice") + jobs_of("bob")) == jobs, timeout=30, what="jobs listed again")
    assert answers(hub, "alice") and answers(hub, "bob", "second")


def test_sbatch_while_slurmctld_hangs_adopts_the_job_without_duplicate(hub):
    pid = slurmctld_pid()
    os.kill(pid, signal.SIGSTOP)
    try:
        response = hub.spawn("carol", "paused", options={"preset": "shared"})
        assert response.status_code == 202, response.text  # still waiting for Slurm after 10 s
        time.sleep(8)
    finally:
        os.kill(pid, signal.SIGCONT)
    server = hub.wait_ready("carol", "paused", timeout=120)
    jobs = slurm("squeue", "-h", "-u", "carol", "-o", "%i|%j").split()
    assert jobs == [f"{server['state']['job_id']}|jupyterhub-paused"], "one job, adopted, no duplicate"
    assert answers(hub, "carol", "paused")
