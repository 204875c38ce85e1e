"""Slurm kernels inside a real ``jupyter server`` (its kernel restarter included), run as alice.

The server is driven as JupyterLab drives it: over its REST API and a kernel websocket. What Slurm did is
counted as root with sacct and squeue, by the kernel's job name (unique to this run). Two facts are measured:

* a kernel whose 1-minute allocation reaches its time limit is reported dead with Slurm's reason, and until 15 s
  after the restarter's refused restart exactly one allocation is made; the user's restart
  (``POST /api/kernels/ID/restart``) then makes exactly one more, and code runs in it;
* when the server is killed with SIGKILL, or when the batch job it runs in (as the hub starts it) is cancelled,
  its kernel's allocation ends (the seconds are printed and recorded as properties).

The first test waits for a time limit by nature (about 2 minutes); the rest is quick. The layout is a centre's:
a batch server runs on node1, its kernels' allocations on node2 (a reservation of node2 for alice steers them
there), and a node that fails mid-kernel is said, not replaced.
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
from tests.jupytertools import channels, execute, outcome, send_execute
from tests.slurmtools import cluster_filled, job_field, nodes_script, power_on, slurm, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(900)]
TOKEN = uuid.uuid4().hex
SINCE = time.strftime("%Y-%m-%dT%H:%M:%S")
CODE = "import os, socket; print(os.environ.get('SLURM_JOB_ID'), socket.gethostname())"


class Server:
    """``jupyter server`` as alice on a free port, with its log in a file: a child of this process, or (``batch``)
    a Slurm batch job of alice's, as the hub starts it; ``options``: more of the server's command-line options."""

    def __init__(self, scratch, name: str, batch: bool = False, options=(), node: str | None = None):
        with socket.socket() as sock:
            sock.bind(("127.0.0.1", 0))
            self.port = sock.getsockname()[1]
        # a batch job's server runs on a compute node, a host of its own: it listens on the node's address and is
        # reached there (nothing of the job shares this host's loopback)
        self.host = (node or "node1") if batch else "127.0.0.1"
        self.url = f"http://{self.host}:{self.port}"
        folder = scratch / name
        subprocess.run(["install", "-d", "-o", USER, "-g", USER, str(folder), str(folder / "root")], check=True)
        self.log_path = folder / "server.log"
        argv = ["env", f"PYTHONPATH={REPO}:{scratch / 'ep'}", f"JUPYTER_DATA_DIR={scratch / 'alice-data'}",
                "JUPYTER_RUNTIME_DIR=", f"HOME=/home/{USER}", "PYTHONDONTWRITEBYTECODE=1",
                sys.executable, "-m", "jupyter_server", "--no-browser", f"--ServerApp.port={self.port}",
                f"--ServerApp.ip={'0.0.0.0' if batch else '127.0.0.1'}", "--ServerApp.port_retries=0", f"--IdentityProvider.token={TOKEN}",
                f"--ServerApp.root_dir={folder / 'root'}", "--ServerApp.log_level=INFO", *options]
        self.sudo = self.job_id = self.pid = None
        if batch:
            script = folder / "server.sh"
            script.write_text("#!/bin/sh\nexec " + " ".join(f"'{arg}'" for arg in argv) + "\n")
            script.chmod(0o755)
            done = subprocess.run(["sudo", "-n", "-u", USER, "sbatch", "--parsable", f"--job-name={RUN}-server",
                                   "--partition=shared", f"--nodelist={self.host}", "--cpus-per-task=1", "--mem=1G",
                                   "--time=00:20:00",
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
        return channels(f"ws://{self.host}:{self.port}/api/kernels/{kernel_id}/channels", TOKEN)

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


def allocations(job_name: str) -> list[str]:
    """Every job of that name that Slurm has accounted since this module was loaded (ended ones too), as ``ID|STATE``."""
    out = slurm("sacct", "-X", "-n", "-P", "-u", USER, "-S", SINCE, f"--name={job_name}", "-o", "JobID,State")
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

    # the allocation reaches its 1-minute limit, the restarter finds the kernel dead and tries once; then a
    # further 15 s in which nothing may try again (the restarter's retries would come 3 s apart: five of them)
    states, reconnect, refused = [], None, None
    ws.settimeout(5)
    while time.monotonic() - started < 300 and not (refused and time.monotonic() - refused > 15):
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
                refused = time.monotonic()
    waited = time.monotonic() - started
    model = server.api("GET", f"/kernels/{kernel_id}").json()
    found = allocations(job_name)
    print(f"in {waited:.0f} s: allocations {found}; kernel {model}; websocket statuses {states}")
    record_property("allocations_until_15_s_after_the_refusal", len(found))
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
    with cluster_filled():
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


@pytest.fixture
def node2_for_alice():
    """A reservation of node2 for alice: kernels created with it get their allocation there, while the batch
    server runs on node1 (the Jülich layout: the server on one node, its kernels on others)."""
    name = f"{RUN}-node2"
    slurm("scontrol", "create", "reservation", f"ReservationName={name}", "Nodes=node2", f"Users={USER}",
          "StartTime=now", "Duration=30", "Flags=IGNORE_JOBS")
    yield name
    slurm("scontrol", "delete", f"ReservationName={name}", check=False)


@pytest.fixture
def node1_server(scratch, request):
    started = Server(scratch, f"server-{request.node.name[5:45]}", batch=True, node="node1")
    yield started
    started.stop()


def kernel_on(server, scratch, name: str, reservation: str):
    """A Slurm kernel of ``server`` in ``reservation``; (kernel id, websocket, job name, its allocation's id)."""
    cli(scratch, "create", "--template", "python-slurm", "--name", name, "--partition", "shared", "--cores", "1",
        "--memory", "500M", "--runtime", "00:20:00", "--reservation", reservation)
    kernel_id = server.api("POST", "/kernels", json={"name": name}).json()["id"]
    ws = server.channels(kernel_id)
    job_id, host = execute(ws, CODE).split()
    assert host == "node2" and job_field(server.job_id, "%B") == "node1"
    return kernel_id, ws, f"jupyter-kernel-{name}", job_id


def test_a_kernel_on_another_node_than_its_server_runs_interrupts_and_shuts_down(scratch, node1_server,
                                                                                    node2_for_alice):
    kernel_id, ws, job_name, job_id = kernel_on(node1_server, scratch, f"{RUN}-apart", node2_for_alice)
    asked = send_execute(ws, "import time; time.sleep(120)")
    time.sleep(2)
    interrupted = time.monotonic()
    assert node1_server.api("POST", f"/kernels/{kernel_id}/interrupt").status_code == 204
    reply, _ = outcome(ws, asked, timeout=60)
    print(f"interrupt across nodes answered in {time.monotonic() - interrupted:.2f} s")
    assert reply["status"] == "error" and reply["ename"] == "KeyboardInterrupt", reply
    assert execute(ws, CODE).split() == [job_id, "node2"]  # still the same kernel, same allocation
    ws.close()
    assert node1_server.api("DELETE", f"/kernels/{kernel_id}").status_code == 204
    wait_for(lambda: not running(job_name), timeout=60, what=f"allocation {job_id} to end with its kernel")


def test_a_failed_kernel_node_is_said_and_nothing_replaces_its_allocation(scratch, node1_server, node2_for_alice,
                                                                            record_property):
    """node2 dies (every process of it killed at once, slurmd with them): Slurm sets it DOWN after SlurmdTimeout;
    the kernel is reported dead with that reason, and no new allocation is made behind alice's back."""
    kernel_id, ws, job_name, job_id = kernel_on(node1_server, scratch, f"{RUN}-nodefail", node2_for_alice)
    ws.close()
    killed = time.monotonic()
    nodes_script("poweroff", "node2")
    try:
        def dead():
            model = node1_server.api("GET", f"/kernels/{kernel_id}").json()
            return model if model.get("execution_state") == "dead" else None
        model = wait_for(dead, timeout=180, interval=0.5, what="the kernel to be reported dead")
        seconds = time.monotonic() - killed
        record_property("seconds_from_node_failure_to_kernel_dead", round(seconds, 1))
        print(f"node2 powered off -> kernel dead in {seconds:.1f} s: {model.get('reason')}")
        assert model["reason"].startswith(f"Allocation {job_id} ended because its node failed"), model
        time.sleep(10)  # the restarter's retries would come seconds apart
        assert allocations(job_name) == [f"{job_id}|NODE_FAIL"], "a new allocation was asked for unasked"
    finally:
        power_on("node2")
