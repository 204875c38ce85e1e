"""Compute nodes that are hosts of their own (ci/slurm-nodes): a server on two nodes, a node that fails under a
server, and a job that Slurm requeues after its server started. The hub, its proxy and slurmctld run on this
host; every job runs in a node's own network namespace and is reached at that node's address only."""

from __future__ import annotations

import time

import requests

from tests.jupytertools import channels, execute
from tests.slurmtools import job_field, nodes_script, power_on, sacct_state, slurm, wait_for


def job_id_of(hub, user, name):
    return hub.server(user, name)["state"]["job_id"]


def run_in_server(hub, user: str, name: str, code: str) -> str:
    """Run ``code`` in a new kernel of ``user``'s server ``name`` (its own node's Python, the job's environment),
    reached through the proxy as JupyterLab reaches it; its stdout."""
    token = hub.user_token(user)
    base = f"{hub.public_url}/user/{user}/{name}/api"
    headers = {"Authorization": f"token {token}"}
    kernel = requests.post(f"{base}/kernels", json={"name": "python3"}, headers=headers, timeout=120)
    assert kernel.status_code == 201, kernel.text
    ws_url = base.replace("http://", "ws://", 1) + f"/kernels/{kernel.json()['id']}/channels"
    ws = channels(ws_url, token)
    try:
        return execute(ws, code)
    finally:
        ws.close()
        requests.delete(f"{base}/kernels/{kernel.json()['id']}", headers=headers, timeout=60)


def test_a_two_node_server_has_both_nodes_and_srun_reaches_them(hub):
    response = hub.spawn("alice", "two", options={"partition": "shared", "nodes": 2, "cores": 1, "memory": "1G",
                                                  "runtime": "00:30:00"})
    assert response.status_code in (201, 202), response.text
    hub.wait_ready("alice", "two")
    job_id = job_id_of(hub, "alice", "two")
    shown = slurm("scontrol", "show", "job", job_id)
    assert "NumNodes=2 " in shown and "NumCPUs=2 " in shown, shown
    assert sorted(slurm("scontrol", "show", "hostnames", job_field(job_id, "%N")).split()) == ["node1", "node2"]
    out = run_in_server(hub, "alice", "two", "import subprocess\n"
                        "print(subprocess.run(['srun', '-N2', 'hostname'], capture_output=True, text=True,"
                        " timeout=60).stdout)")
    assert sorted(out.split()) == ["node1", "node2"], out


def test_a_failed_node_ends_its_server_with_the_reason_and_frees_it(hub, record_property):
    """Every process of the server's node is killed at once (slurmd too): slurmctld sets the node DOWN after
    SlurmdTimeout (20 s here) and ends the job NODE_FAIL (servers are submitted --no-requeue); the hub says so."""
    assert hub.spawn("alice", "lost", options={"preset": "shared"}).status_code in (201, 202)
    hub.wait_ready("alice", "lost")
    job_id = job_id_of(hub, "alice", "lost")
    node = job_field(job_id, "%B")
    killed = time.monotonic()
    nodes_script("poweroff", node)
    try:
        def freed():
            server = hub.server("alice", "lost")
            return server is None or server.get("stopped")
        wait_for(freed, timeout=180, interval=0.5, what="the hub to free the server of the failed node")
        seconds = time.monotonic() - killed
        record_property("seconds_from_node_failure_to_server_freed", round(seconds, 1))
        down_at = slurm("sinfo", "-h", "-n", node, "-o", "%T %E").strip()
        print(f"{node} powered off -> server freed by the hub in {seconds:.1f} s (node: {down_at})")
        assert wait_for(lambda: sacct_state(job_id) == "NODE_FAIL", timeout=30, what="sacct's NODE_FAIL")
        assert "The node running the job failed." in hub.home("alice")
    finally:
        power_on(node)


def test_a_job_requeued_after_its_server_started_is_cancelled_and_said(hub):
    """A site's template that lets Slurm requeue (``--requeue``); an administrator requeues the running job: the
    same job id waits again, the server is gone. The hub does not wait for a new start nobody asked for: it cancels
    the job and says why."""
    assert hub.spawn("alice", "requeueable", options={"preset": "shared"}).status_code in (201, 202)
    hub.wait_ready("alice", "requeueable")
    job_id = job_id_of(hub, "alice", "requeueable")
    slurm("scontrol", "requeue", job_id)
    wait_for(lambda: hub.server("alice", "requeueable") is None, timeout=90, interval=0.5,
             what="the hub to end the requeued server")
    wait_for(lambda: sacct_state(job_id) == "CANCELLED", timeout=60, what=f"job {job_id} cancelled by the hub")
    home = hub.home("alice")
    assert "was lost: Slurm put it back in the queue (requeued)" in home and f"cancelled job {job_id}" in home
