"""The hub runs as the unprivileged ``jupyterhub`` account: alice cannot act as bob, and no other user can read a
server's API token (command lines, the batch script, the job's output and working directory, the hub's log)."""

from __future__ import annotations

import os
import pwd
import stat
import subprocess
from pathlib import Path

import pytest
import requests

from tests.e2e.conftest import HUB_ACCOUNT
from tests.slurmtools import jobs_of, slurm

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]


def uids_of(pid: int) -> set[int]:
    """The real, effective, saved and filesystem uids of a process."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("Uid:"):
            return {int(uid) for uid in line.split()[1:]}
    raise AssertionError(f"no Uid line for process {pid}")


def children_of(pid: int) -> list[int]:
    """The processes ``pid`` started (the hub: its proxy and services, each in a session of its own)."""
    children = []
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1]) == pid:
                children.append(int(entry))
        except (OSError, ValueError, IndexError):
            continue
    return children


def own_token(hub, user) -> str:
    """A token of ``user`` that may start and stop servers, as the user gets from the hub's token page."""
    if hub.api("GET", f"/users/{user}").status_code == 404:
        hub.api("POST", f"/users/{user}")
    response = hub.api("POST", f"/users/{user}/tokens",
                       json={"scopes": [f"servers!user={user}", f"read:users!user={user}"], "expires_in": 3600})
    assert response.status_code == 201, response.text
    return response.json()["token"]


def as_user(user, *argv) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", user, "--", *argv], capture_output=True, text=True, timeout=30)


def output_file(user, job_id) -> Path:
    """The job's output file (the spawner's default ``output_path``)."""
    return Path(pwd.getpwnam(user).pw_dir) / f".jupyterhub-slurm-{job_id}.log"


def server_process(user) -> tuple[int, dict[str, str]]:
    """The process id and environment of ``user``'s Jupyter server (read as root)."""
    for entry in filter(str.isdigit, os.listdir("/proc")):
        try:
            if os.stat(f"/proc/{entry}").st_uid != pwd.getpwnam(user).pw_uid:
                continue
            raw = Path(f"/proc/{entry}/environ").read_bytes()
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        if b"jupyterhub-singleuser" in cmdline or b"dkrzspawner-singleuser" in cmdline:
            env = dict(item.split("=", 1) for item in raw.decode(errors="replace").split("\0") if "=" in item)
            if "JUPYTERHUB_API_TOKEN" in env:
                return int(entry), env
    raise AssertionError(f"no Jupyter server process of {user}")


@pytest.fixture
def bobs_server(hub):
    """bob's running server: its job id, process id and environment."""
    assert hub.spawn("bob", options={"preset": "shared"}).status_code in (201, 202)
    job_id = hub.wait_ready("bob")["state"]["job_id"]
    return (job_id, *server_process("bob"))


def test_the_hub_and_its_children_run_as_the_hub_account(hub):
    account = pwd.getpwnam(HUB_ACCOUNT)
    assert uids_of(hub.proc.pid) == {account.pw_uid}
    children = children_of(hub.proc.pid)
    assert len(children) >= 3, "the hub started its proxy and its services"
    for pid in children:
        assert uids_of(pid) == {account.pw_uid}, Path(f"/proc/{pid}/cmdline").read_bytes()
    workdir = hub.workdir.stat()
    assert (workdir.st_uid, stat.S_IMODE(workdir.st_mode)) == (account.pw_uid, 0o700)
    log = hub.log_path.stat()
    assert (log.st_uid, stat.S_IMODE(log.st_mode)) == (account.pw_uid, 0o600), "the hub's log is its own"


def test_alice_cannot_spawn_with_bobs_account(hub):
    token = own_token(hub, "alice")
    response = requests.post(f"{hub.api_url}/users/alice/servers/borrowed",
                             json={"user_options": {"preset": "shared", "account": "ab0000"}},
                             headers={"Authorization": f"token {token}"}, timeout=60)
    assert response.status_code == 400, response.text
    assert response.json()["message"].startswith("Account ab0000 is not one of yours"), response.text
    assert jobs_of("alice") == [], "no job was submitted"


def test_alice_cannot_stop_bobs_server_nor_read_his_job(hub, bobs_server):
    job_id, _, _ = bobs_server
    token = own_token(hub, "alice")
    response = requests.delete(f"{hub.api_url}/users/bob/server", headers={"Authorization": f"token {token}"},
                               timeout=60)
    assert response.status_code in (403, 404), response.text
    assert hub.server("bob")["ready"] and jobs_of("bob") == [job_id], "bob's server still runs"

    output = output_file("bob", job_id)
    assert output.exists()
    assert stat.S_IMODE(output.stat().st_mode) & 0o077 == 0, "the job's output is bob's alone"
    read = as_user("alice", "cat", str(output))
    assert read.returncode != 0 and "Permission denied" in read.stderr
    script = as_user("alice", "scontrol", "write", "batch_script", job_id, "-")
    # scontrol exits 0 here, saying "job script retrieval failed: Invalid user id"
    assert "#SBATCH" not in script.stdout, "Slurm keeps bob's batch script from alice"
    cancel = as_user("alice", "scancel", job_id)
    assert jobs_of("bob") == [job_id], f"alice's scancel left bob's job alone: {cancel.stderr}"


def test_the_token_is_not_readable_by_another_user(hub, bobs_server):
    job_id, pid, env = bobs_server
    token = env["JUPYTERHUB_API_TOKEN"]
    assert len(token) >= 32

    for entry in filter(str.isdigit, os.listdir("/proc")):  # no command line carries it (ps shows them to all)
        try:
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
        except OSError:
            continue
        assert token.encode() not in cmdline, f"process {entry}: {cmdline!r}"
    assert token not in slurm("scontrol", "write", "batch_script", job_id, "-"), "not in the batch script"
    assert token not in output_file("bob", job_id).read_text(errors="replace"), "not in the job's output"
    assert token not in hub.log_path.read_text(errors="replace"), "not in the hub's log"

    home = Path(env["HOME"])  # the job's working directory: a file there that holds it is bob's alone
    holding = []
    for path in home.rglob("*"):
        try:
            info = path.lstat()
            if stat.S_ISREG(info.st_mode) and info.st_size < 1 << 20 and token in path.read_text(errors="replace"):
                holding.append(path)
        except OSError:
            continue
    for path in holding:  # e.g. jupyter_server's jpserver-*-open.html, in its 0700 runtime folder
        read = as_user("alice", "cat", str(path))
        assert read.returncode != 0 and token not in read.stdout, f"alice can read {path}"
    environ = as_user("alice", "cat", f"/proc/{pid}/environ")
    assert environ.returncode != 0 and token not in environ.stdout, "nor in the server's environment"


def test_nothing_of_the_hubs_environment_reaches_the_job(hub, bobs_server):
    _, _, env = bobs_server
    assert env["HOME"] == pwd.getpwnam("bob").pw_dir and env["USER"] == env["LOGNAME"] == "bob"
    leaked = {name for name, value in hub.environment.items() if env.get(name) == value} - {"LANG"}
    assert not leaked, f"the hub's own {leaked} reached the job"
    assert not any(name.startswith("SUDO_") for name in env), "sudo's own variables stay out of the job"
