"""A real hub starts real Jupyter servers as Slurm jobs of the real user, and stops them."""

from __future__ import annotations

import datetime
import os
import pwd
import subprocess
from pathlib import Path

import pytest
import requests

from tests.slurmtools import accounted_jobs, job_field, jobs_of, on_node, sacct_state, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def job_id_of(hub, user, name=""):
    return hub.server(user, name)["state"]["job_id"]


def owners_of_job_processes(job_id) -> set[str]:
    """The Unix owners of every process Slurm counts as part of the job."""
    out = on_node(job_field(job_id, "%B"), "scontrol", "listpids", str(job_id))
    pids = [line.split()[0] for line in out.splitlines()[1:] if line.split() and line.split()[0].isdigit()]
    owners = set()
    for pid in pids:
        ps = subprocess.run(["ps", "-o", "user=", "-p", pid], capture_output=True, text=True)
        owners.update(ps.stdout.split())
    return owners


def test_rest_spawn_runs_as_alice_with_the_preset_resources(hub):
    response = hub.spawn("alice", options={"preset": "shared", "cores": 2})
    assert response.status_code in (201, 202), response.text
    server = hub.wait_ready("alice")
    job_id = server["state"]["job_id"]

    assert job_field(job_id, "%u|%C|%m|%P|%j|%T") == "alice|2|5000M|shared|jupyterhub-default|RUNNING"
    assert job_field(job_id, "%k").startswith("dkrzspawner:alice:default:")
    assert owners_of_job_processes(job_id) == {"alice"}, "every process of the job runs as alice"

    token = hub.user_token("alice")
    status = requests.get(f"{hub.public_url}/user/alice/api/status",
                          headers={"Authorization": f"token {token}"}, timeout=30)
    assert status.status_code == 200, status.text
    assert "last_activity" in status.json()

    hub.stop_server("alice")
    assert wait_for(lambda: sacct_state(job_id) in ("CANCELLED", "COMPLETED") and sacct_state(job_id),
                    timeout=60, what=f"sacct to record the end of job {job_id}")
    assert job_id not in jobs_of("alice")


def test_default_and_named_server_run_at_once_and_stop_separately(hub):
    assert hub.spawn("alice", options={"preset": "shared", "cores": 1}).status_code in (201, 202)
    assert hub.spawn("alice", "second", options={"preset": "prepost", "cores": 1}).status_code in (201, 202)
    default_job = hub.wait_ready("alice")["state"]["job_id"]
    second_job = hub.wait_ready("alice", "second")["state"]["job_id"]
    assert default_job != second_job
    assert job_field(second_job, "%j|%P|%T") == "jupyterhub-second|prepost|RUNNING"
    assert sorted(jobs_of("alice")) == sorted([default_job, second_job])

    token = hub.user_token("alice")
    for prefix in ("/user/alice/", "/user/alice/second/"):
        reply = requests.get(f"{hub.public_url}{prefix}api/status", headers={"Authorization": f"token {token}"},
                             timeout=30)
        assert reply.status_code == 200, (prefix, reply.text)

    hub.stop_server("alice", "second")
    assert wait_for(lambda: sacct_state(second_job), timeout=60, what="sacct record") in ("CANCELLED", "COMPLETED")
    assert jobs_of("alice") == [default_job], "stopping the named server leaves the default one running"
    assert hub.server("alice")["ready"]

    hub.stop_server("alice")
    assert wait_for(lambda: sacct_state(default_job), timeout=60, what="sacct record") in ("CANCELLED", "COMPLETED")


@pytest.mark.parametrize(
    "options, field",
    [
        ({"preset": "shared", "cores": 3}, "Cores"),
        ({"preset": "shared", "cores": "2"}, "Cores"),
        ({"preset": "nosuch"}, "Preset"),
        ({"preset": "shared\n#SBATCH --comment=INJECTED"}, "Preset"),
        ({"preset": "shared", "exec_prefix": "touch /tmp/pwned"}, "exec_prefix"),
        ({"partition": "shared", "gpus": 1}, "GPUs"),
        ({"partition": "gpu", "memory": "999G"}, "Memory"),
        ({"preset": "shared", "partition": "gpu"}, "partition"),
        ({"preset": "shared", "runtime": "99:00:00"}, "Runtime"),
    ],
)
def test_refused_options_give_a_clear_message_and_no_job(hub, options, field):
    since = (datetime.datetime.now() - datetime.timedelta(seconds=2)).strftime("%Y-%m-%dT%H:%M:%S")
    response = hub.spawn("bob", options=options)
    assert response.status_code == 400, response.text
    message = response.json()["message"]
    assert field in message, message
    assert "\n" not in message.strip()
    assert hub.server("bob") is None or not hub.server("bob").get("ready")
    assert accounted_jobs("bob", since) == [], "a refused request must not create a job"
    assert not os.path.exists("/tmp/pwned")


def test_job_that_dies_before_its_server_fails_the_spawn_with_its_output(hub):
    response = hub.spawn("carol", "broken", options={"preset": "shared"})
    if response.status_code == 202:  # slower than the hub's slow_spawn_timeout: follow the progress
        wait_for(lambda: (hub.server("carol", "broken") or {}).get("pending") is None, timeout=60,
                 what="the broken spawn to end")
        message = hub.api("GET", "/users/carol").text
    else:
        message = response.json()["message"]
        assert response.status_code >= 400
    assert "before its Jupyter server started" in message, message
    assert "/nonexistent/env/bin/dkrzspawner-singleuser" in message, "the tail of the job's output is shown"
    assert hub.server("carol", "broken") is None or not hub.server("carol", "broken")["ready"]


def test_python_files_in_the_users_home_do_not_replace_the_job_sides_modules(hub):
    """The job starts in the user's home; a ``socket.py`` or ``signal.py`` there (a course's exercise) must not
    be imported instead of the standard library's by the job side (``python -m`` would put the home first)."""
    account = pwd.getpwnam("bob")
    planted = [Path(account.pw_dir) / name for name in ("socket.py", "signal.py", "json.py")]
    for path in planted:
        path.write_text("raise SystemExit(f'{__file__} was imported by the job side')\n")
        os.chown(path, account.pw_uid, account.pw_gid)
    try:
        assert hub.spawn("bob", "homefiles", options={"preset": "shared", "cores": 1}).status_code in (201, 202)
        hub.wait_ready("bob", "homefiles")
        token = hub.user_token("bob")
        status = requests.get(f"{hub.public_url}/user/bob/homefiles/api/status",
                              headers={"Authorization": f"token {token}"}, timeout=30)
        assert status.status_code == 200, status.text
    finally:
        for path in planted:
            path.unlink(missing_ok=True)
    hub.stop_server("bob", "homefiles")
