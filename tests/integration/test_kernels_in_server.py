"""Slurm kernels inside a real ``jupyter server`` (its kernel restarter included), run as alice.

The server is driven as JupyterLab drives it: over its REST API and a kernel websocket. What Slurm did is
counted as root with sacct and squeue, by the kernel's job name (unique to this run). Two facts are measured:

* a kernel whose 1-minute allocation reaches its time limit is reported dead with Slurm's reason, and in 5
  minutes exactly one allocation is made; the user's restart (``POST /api/kernels/ID/restart``) then makes
  exactly one more, and code runs in it;
* when the server is killed with SIGKILL, or when the batch job it runs in (as the hub starts it) is cancelled,
  its kernel's allocation ends (the seconds are printed and recorded as properties).

The first test waits 5 minutes by nature; the rest is quick.
"""

from __future__ import annotations

import json
import os
import re
import signal
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

import pytest
import requests
import websocket

from tests.integration.test_kernels_slurm import REPO, RUN, USER, cli, scratch  # noqa: F401 - the fixture
from tests.slurmtools import node_filled, slurm, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]
TOKEN = uuid.uuid4().hex
CODE = "import os, socket; print(os.environ.get('SLURM_JOB_ID'), socket.gethostname())"


class Server:
    """``jupyter server`` as alice on a free port, with its log in a file: a child of this process, or (``batch``)
    a Slurm batch job of alice's, as the hub starts it; ``options``: more of the server's command-line options."""

    def __init__(self, scratch, name: str, batch: bool = False, options=()):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}"
        folder = scratch / name
        subprocess.run(["install", "-d", "-o", USER, "-g", USER, str(folder), str(folder / "root")], check=True)
        self.log_path = folder / "server.log"
        argv = ["env", f"PYTHONPATH={REPO}:{scratch / 'ep'}", f"JUPYTER_DATA_DIR={scratch / 'alice-data'}",
                "JUPYTER_RUNTIME_DIR=", f"HOME=/home/{USER}", "PYTHONDONTWRITEBYTECODE=1",
                sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={self.port}",
                "--ServerApp.ip=127.0.0.1", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={folder / 'root'}", "--ServerApp.log_level=INFO", *options]
        self.sudo = self.job_id = self.pid = None
        if batch:
            script = folder / "server.sh"
            script.write_text("#!/bin/sh\nexec " + " ".join(f"'{arg}'" for arg in argv) + "\n")
            script.chmod(0o755)
            done = subprocess.run(["sudo", "-n", "-u", USER, "sbatch", "--parsable", f"--job-name={RUN}-server",
                                   "--partition=shared", "--cpus-per-task=1", "--mem=1G", "--time=00:20:00",
                                   f"--output={self.log_path}", str(script)],
                                  capture_output=True, text=True, check=True, cwd="/tmp")
            self.job_id = done.stdout.strip().split(";")[0]
        else:
            self.log_file = open(self.log_path, "w")
            self.sudo = subprocess.Popen(["sudo", "-n", "-u", USER, *argv], stdout=self.log_file,
                                         stderr=subprocess.STDOUT, cwd="/tmp")
        wait_for(self._up, timeout=180, interval=0.5, what="the jupyter server to answer")
        if self.sudo is not None:  # the server's own process (sudo's child): the one SIGKILL is for
            self.pid = int(Path(f"/proc/{self.sudo.pid}/task/{self.sudo.pid}/children").read_text().split()[0])

    def _up(self) -> bool:
        if self.sudo is not None and self.sudo.poll() is not None:
            raise AssertionError(f"the server exited:\n{self.log()[-3000:]}")
        if self.job_id is not None and not running(f"{RUN}-server"):
            raise AssertionError(f"the server's job {self.job_id} is not running:\n{self.log()[-3000:]}")
        try:
            return requests.get(f"{self.url}/api/status", headers=self.headers, timeout=5).ok
        except requests.ConnectionError:
            return False

    @property
    def headers(self) -> dict:
        return {"Authorization": f"token {TOKEN}"}

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, f"{self.url}/api{path}", headers=self.headers, timeout=300, **kwargs)

    def log(self) -> str:
        return self.log_path.read_text(errors="replace") if self.log_path.exists() else ""

    def channels(self, kernel_id: str) -> websocket.WebSocket:
        """A kernel websocket, as JupyterLab opens one (the server answers 500 for a kernel that failed)."""
        url = f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels?session_id={uuid.uuid4().hex}"
        return websocket.create_connection(url, header=[f"Authorization: token {TOKEN}"], timeout=120)

    def stop(self) -> None:
        if self.job_id is not None:
            slurm("scancel", self.job_id, check=False)
            return
        if self.sudo.poll() is None:
            try:
                os.kill(self.pid, signal.SIGTERM)
            except ProcessLookupError:
                pass
            try:
                self.sudo.wait(60)
            except subprocess.TimeoutExpired:
                os.kill(self.pid, signal.SIGKILL)
                self.sudo.wait(30)
        self.log_file.close()


def execute(ws: websocket.WebSocket, code: str, timeout: float = 120) -> str:
    """Run ``code`` through the websocket; its stdout."""
    msg_id = uuid.uuid4().hex
    ws.send(json.dumps({
        "header": {"msg_id": msg_id, "msg_type": "execute_request", "username": USER, "session": msg_id,
                   "version": "5.3", "date": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime())},
        "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
        "content": {"code": code, "silent": False, "store_history": False, "user_expressions": {},
                    "allow_stdin": False, "stop_on_error": True}}))
    out, replied, idle, deadline = [], False, False, time.monotonic() + timeout
    while not (replied and idle):  # the reply (shell) and the output (iopub) come in either order
        assert time.monotonic() < deadline, f"no execute_reply and idle status within {timeout} s"
        msg = json.loads(ws.recv())
        if msg.get("parent_header", {}).get("msg_id") != msg_id:
            continue
        if msg["msg_type"] == "stream":
            out.append(msg["content"]["text"])
        elif msg["msg_type"] == "execute_reply":
            assert msg["content"]["status"] == "ok", msg["content"]
            replied = True
        elif msg["msg_type"] == "status" and msg["content"]["execution_state"] == "idle":
            idle = True
    return "".join(out)


def allocations(job_name: str) -> list[str]:
    """Every job of that name that Slurm has accounted (ended ones too), as ``ID|STATE``."""
    out = slurm("sacct", "-X", "-n", "-P", "-u", USER, "-S", "now-1days", f"--name={job_name}", "-o", "JobID,State")
    return [line for line in out.splitlines() if line.strip()]


def running(job_name: str) -> list[str]:
    return slurm("squeue", "-h", "-u", USER, "-n", job_name, "-o", "%i").split()


def create_kernel(scratch, name: str, runtime: str) -> str:
    cli(scratch, "create", "--template", "python-slurm", "--name", name, "--partition", "shared", "--cores", "1",
        "--memory", "500M", "--runtime", runtime)
    return f"jupyter-kernel-{name}"


@pytest.fixture
def server(scratch, request):
    started = Server(scratch, f"server-{request.node.name[5:45]}")
    yield started
    started.stop()


@pytest.fixture
def batch_server(scratch, request):
    started = Server(scratch, f"server-{request.node.name[5:45]}", batch=True)
    yield started
    started.stop()


def test_an_ended_allocation_is_never_replaced_behind_the_users_back(scratch, server, record_property):
    job_name = create_kernel(scratch, f"{RUN}-limit", "00:01:00")
    started = time.monotonic()
    kernel = server.api("POST", "/kernels", json={"name": f"{RUN}-limit"}).json()
    kernel_id = kernel["id"]
    ws = server.channels(kernel_id)
    job_id, _host = execute(ws, CODE).split()
    wait_for(lambda: allocations(job_name) == [f"{job_id}|RUNNING"], timeout=60, what="sacct to list the allocation")

    # 5 minutes: the allocation reaches its 1-minute limit, the restarter finds the kernel dead
    states, reconnect = [], None
    ws.settimeout(5)
    while time.monotonic() - started < 300:
        try:
            msg = json.loads(ws.recv())
        except websocket.WebSocketTimeoutException:
            continue
        except websocket.WebSocketConnectionClosedException:
            break
        if msg["msg_type"] == "status":
            states.append(msg["content"]["execution_state"])
            if msg["content"]["execution_state"] == "restarting" and reconnect is None:
                # JupyterLab reconnects on "restarting"; the server answers that the kernel is dead
                time.sleep(5)
                try:
                    server.channels(kernel_id).close()
                    reconnect = "connected"
                except websocket.WebSocketBadStatusException as exc:
                    reconnect = exc.status_code
    waited = time.monotonic() - started
    model = server.api("GET", f"/kernels/{kernel_id}").json()
    found = allocations(job_name)
    print(f"in {waited:.0f} s: allocations {found}; kernel {model}; websocket statuses {states}")
    record_property("allocations_in_5_min", len(found))
    assert found == [f"{job_id}|TIMEOUT"], "an automatic restart asked Slurm for an allocation"
    assert model["execution_state"] == "dead"
    assert model["reason"].startswith(f"Allocation {job_id} reached its time limit of 0:01:00. The kernel was "
                                      "not restarted automatically")
    assert states.count("restarting") == 1 and reconnect == 500
    log = server.log()
    assert log.count("Asking Slurm for an allocation") == 1
    assert log.count("restarting kernel") == 1  # the restarter tried once and then stopped: no retries
    assert "Traceback" not in log, log[log.index("Traceback") - 500:][:3000]  # the refusal in words, once

    # the user's restart gets exactly one fresh allocation, and code runs in it
    restarted = server.api("POST", f"/kernels/{kernel_id}/restart")
    assert restarted.status_code == 200, restarted.text
    ws = server.channels(kernel_id)
    new_job, _host = execute(ws, CODE).split()
    assert new_job != job_id
    wait_for(lambda: allocations(job_name) == [f"{job_id}|TIMEOUT", f"{new_job}|RUNNING"], timeout=60,
             what=f"sacct to list exactly one more allocation ({allocations(job_name)})")
    model = server.api("GET", f"/kernels/{kernel_id}").json()
    assert model["execution_state"] != "dead" and "reason" not in model
    ws.close()
    assert server.api("DELETE", f"/kernels/{kernel_id}").status_code == 204
    wait_for(lambda: not running(job_name), timeout=60, what=f"allocation {new_job} to end with its kernel")


def kernel_running_in(server, scratch, name: str) -> tuple[str, str]:
    """A Slurm kernel started in ``server`` that has run code: its allocation's job name and job id."""
    job_name = create_kernel(scratch, name, "00:30:00")
    kernel_id = server.api("POST", "/kernels", json={"name": name}).json()["id"]
    ws = server.channels(kernel_id)
    job_id, _host = execute(ws, CODE).split()
    ws.close()
    assert running(job_name) == [job_id]
    return job_name, job_id


def test_a_killed_server_leaves_no_allocation_behind(scratch, server, record_property):
    job_name, job_id = kernel_running_in(server, scratch, f"{RUN}-orphan")
    assert re.search(rf"Slurm granted allocation {job_id}", server.log())

    os.kill(server.pid, signal.SIGKILL)
    killed = time.monotonic()
    wait_for(lambda: not running(job_name), timeout=120, interval=0.1,
             what=f"allocation {job_id} to end after its server was killed")
    seconds = time.monotonic() - killed
    record_property("seconds_from_sigkill_to_allocation_gone", round(seconds, 2))
    ended = wait_for(lambda: allocations(job_name), timeout=60, what="sacct to record the allocation's end")
    print(f"SIGKILL of the server -> allocation {job_id} gone in {seconds:.2f} s ({ended})")
    assert ended == [f"{job_id}|COMPLETED"]  # given back by its salloc, not cancelled at its time limit
    wait_for(lambda: _no_step_left(job_id), timeout=60, what=f"the kernel's job step in {job_id} to end")


def _no_step_left(job_id: str) -> bool:
    return not slurm("squeue", "-h", "-s", "-j", job_id, "-o", "%i", check=False).strip()


def test_a_server_whose_job_ends_leaves_no_allocation_behind(scratch, batch_server, record_property):
    """The hub's case: the server runs in a batch job; its kernel's allocation ends with that job."""
    job_name, job_id = kernel_running_in(batch_server, scratch, f"{RUN}-injob")
    assert job_id != batch_server.job_id

    slurm("scancel", batch_server.job_id)
    cancelled = time.monotonic()
    wait_for(lambda: not running(job_name), timeout=120, interval=0.1,
             what=f"allocation {job_id} to end with its server's job {batch_server.job_id}")
    seconds = time.monotonic() - cancelled
    record_property("seconds_from_server_job_end_to_allocation_gone", round(seconds, 2))
    print(f"scancel of the server's job {batch_server.job_id} -> allocation {job_id} gone in {seconds:.2f} s")
    print("".join(line for line in batch_server.log().splitlines(keepends=True)
                  if "llocation" in line or "hut" in line or "CANCELLED" in line))


def test_a_kernel_that_waits_in_the_queue_says_why_and_starts_when_slurm_lets_it(scratch, server):
    """While the kernel's allocation waits, the server's log says why in words (one line per change); the job id
    is known before the allocation is granted; once the node is free, the kernel starts and runs code."""
    import threading
    name = f"{RUN}-queued"
    job_name = create_kernel(scratch, name, "00:10:00")
    started = {}
    with node_filled(8):
        posting = threading.Thread(target=lambda: started.update(
            server.api("POST", "/kernels", json={"name": name}).json()))
        posting.start()
        wait_for(lambda: "is waiting in the queue" in server.log(), timeout=60,
                 what="the server's log to say why the kernel waits")
        line = next(line for line in server.log().splitlines() if "is waiting in the queue" in line)
        job_id = running(job_name)[0]
        assert f"Slurm job {job_id} is its allocation" in server.log(), "the job id before the grant"
        assert f"Job {job_id} is waiting in the queue: it waits for cores, memory or GPUs to become free" in line
        assert not started, "the kernel cannot have started while the node is full"
    posting.join(timeout=180)
    assert started.get("id"), started
    ws = server.channels(started["id"])
    assert execute(ws, CODE).split()[0] == job_id
    ws.close()
    assert server.api("DELETE", f"/kernels/{started['id']}").status_code == 204
    wait_for(lambda: not running(job_name), timeout=60, what=f"allocation {job_id} to end with its kernel")
