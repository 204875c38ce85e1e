"""The JupyterLab extension's server side (dkrzspawner.lab) in a real ``jupyter server`` that runs, as alice, in a
Slurm batch job as the hub starts it: its own job from Slurm, a kernel created through the extension's REST API
(and a refused one), started through jupyter_server's, its allocation listed and cancelled through the extension.
Reuses the server and the helpers of test_kernels_in_server.py."""

from __future__ import annotations

import pytest
import requests

from tests.integration.test_kernels_in_server import Server, running
from tests.integration.test_kernels_slurm import RUN, scratch  # noqa: F401 - the fixture
from tests.slurmtools import slurm, wait_for

pytestmark = [pytest.mark.slurm, pytest.mark.timeout(300)]


@pytest.fixture
def server(scratch):
    started = Server(scratch, "server-lab", batch=True,
                     options=["--ServerApp.jpserver_extensions=dkrzspawner.lab=True"])
    yield started
    started.stop()


def lab(server, method: str, path: str, **kwargs) -> requests.Response:
    return requests.request(method, f"{server.url}/dkrzspawner/api/{path}", headers=server.headers, timeout=300,
                            **kwargs)


def test_job_kernel_allocation_and_its_cancel_through_the_extension(server):
    job = lab(server, "GET", "job").json()
    assert job["in_job"] is True and job["job_id"] == server.job_id and job["state"] == "RUNNING"
    assert job["ends"] == slurm("squeue", "-h", "-j", server.job_id, "-o", "%e").strip()
    assert 0 < job["seconds_left"] <= 20 * 60 and job["partition"] == "shared" and job["cores"] == 1

    name = f"{RUN}-lab"
    options = {"partition": "shared", "cores": 1, "memory": "500M", "runtime": "00:10:00"}
    refused = lab(server, "POST", "kernels", json={"template": "python-slurm", "name": name,
                                                    "options": {**options, "cores": 99}})
    assert refused.status_code == 400 and refused.json()["field"] == "cores", refused.text
    assert name not in [k["name"] for k in lab(server, "GET", "kernels").json()["kernels"]]
    created = lab(server, "POST", "kernels", json={"template": "python-slurm", "name": name, "options": options})
    assert created.status_code == 201, created.text

    kernel_id = server.api("POST", "/kernels", json={"name": name}).json()["id"]
    listed = lab(server, "GET", "allocations").json()["allocations"]
    assert len(listed) == 1 and listed[0]["state"] == "RUNNING" and listed[0]["node"] == job["node"], listed
    job_id = listed[0]["job_id"]
    assert listed[0]["kernels"][0]["id"] == kernel_id and listed[0]["kernels"][0]["name"] == name
    assert running(f"jupyter-kernel-{name}") == [job_id] and job_id != server.job_id

    assert lab(server, "DELETE", f"allocations/{server.job_id}").status_code == 404  # not a kernel's allocation
    assert lab(server, "DELETE", f"allocations/{job_id}").status_code == 204
    wait_for(lambda: not running(f"jupyter-kernel-{name}"), timeout=60, what=f"allocation {job_id} to end")
    wait_for(lambda: lab(server, "GET", "allocations").json()["allocations"] == [], timeout=60,
             what="the allocation to leave the extension's list")
    kernel = server.api("GET", f"/kernels/{kernel_id}").json()
    assert kernel["execution_state"] == "dead" and f"Allocation {job_id} was cancelled (by alice)" in kernel["reason"]
    assert running(f"{RUN}-server"), "the server's own job runs on"
    assert lab(server, "DELETE", f"kernels/{name}").status_code == 204
