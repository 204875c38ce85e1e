"""Kernels on compute nodes through the real local Slurm, as alice.

The test bodies run as alice: this file is also a driver script (``python test_kernels_slurm.py SCENARIO ...``)
that pytest starts with ``sudo -u alice``; each scenario prints one JSON line of findings, which the tests
check against what Slurm says (as root). Scratch files live in a world-readable dir under /tmp; alice's Jupyter
data dir there keeps her home clean. The repository comes first on PYTHONPATH (the venv's copy is not
editable), with a tiny dist-info that registers the provisioner's entry point the way setup.cfg does.
"""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import socket
import subprocess
import sys
import sysconfig
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
PYTHON = sys.executable  # the project venv: the job side that alice runs too
USER = "alice"
PROVISIONER_EP = "dkrz-slurm-provisioner = dkrzspawner.kernels.provisioner:SlurmProvisioner\n"


# ======================================================================================================
# The driver: runs as alice
# ======================================================================================================
def _cli(*argv) -> int:
    from dkrzspawner.kernels import cli
    return cli.main(list(argv))


async def _start(name: str):
    from jupyter_client.manager import AsyncKernelManager
    km = AsyncKernelManager(kernel_name=name)
    await km.start_kernel()
    kc = km.client()
    kc.start_channels()
    await kc.wait_for_ready(timeout=120)
    return km, kc


async def _run(kc, code: str, timeout=60) -> dict:
    """Execute ``code``; return the reply's status and the stdout text."""
    out = []

    def hook(msg):
        if msg["msg_type"] == "stream" and msg["content"]["name"] == "stdout":
            out.append(msg["content"]["text"])

    reply = await kc.execute_interactive(code, timeout=timeout, output_hook=hook)
    return {"status": reply["content"]["status"], "ename": reply["content"].get("ename"), "stdout": "".join(out)}


INFO = "import os, socket; print(os.environ.get('SLURM_JOB_ID'), socket.gethostname(), os.getpid())"


def _squeue_state(job_id) -> str:
    done = subprocess.run(["squeue", "-h", "-j", str(job_id), "-o", "%T"], capture_output=True, text=True)
    return done.stdout.strip()


async def scenario_lifecycle(name):
    loop = asyncio.get_running_loop()
    t0 = loop.time()
    km, kc = await _start(name)
    first = await _run(kc, INFO)
    first_reply = loop.time() - t0
    job_id, host, pid = first["stdout"].split()
    result = {"job_id": job_id, "host": host, "first": first, "first_reply_s": round(first_reply, 3),
              "timings": km.provisioner.timings, "kernel_ip": km.ip, "connection_file": km.connection_file}
    # interrupt a long loop
    msg_id = kc.execute("import time\nfor _ in range(3000): time.sleep(0.1)")
    while True:  # the kernel has started on the loop when it says busy for our request
        msg = await kc.get_iopub_msg(timeout=30)
        if msg["parent_header"].get("msg_id") == msg_id and msg["content"].get("execution_state") == "busy":
            break
    await asyncio.sleep(0.5)
    started = loop.time()
    await km.interrupt_kernel()
    while True:
        reply = await kc.get_shell_msg(timeout=60)
        if reply["parent_header"].get("msg_id") == msg_id:
            break
    result["interrupt"] = {"status": reply["content"]["status"], "ename": reply["content"].get("ename"),
                           "seconds": round(loop.time() - started, 3)}
    result["after_interrupt"] = await _run(kc, INFO)
    # restart: a new kernel process in the same allocation
    await km.restart_kernel()
    await kc.wait_for_ready(timeout=120)
    result["after_restart"] = await _run(kc, INFO)
    result["alive_before_shutdown"] = await km.is_alive()
    kc.stop_channels()
    await km.shutdown_kernel()
    result["alive_after_shutdown"] = await km.is_alive()
    return result


async def scenario_share(name, second_name):
    """Kernel A makes the allocation; kernel B joins it by job id; A ends first, then B."""
    km_a, kc_a = await _start(name)
    a = await _run(kc_a, INFO)
    job_id = a["stdout"].split()[0]
    assert _cli("create", "--template", "python-slurm", "--name", second_name, "--job-id", job_id) == 0
    km_b, kc_b = await _start(second_name)
    b = await _run(kc_b, INFO)
    kc_a.stop_channels()
    await km_a.shutdown_kernel()
    after_first = _squeue_state(job_id)
    b_after = await _run(kc_b, INFO)
    kc_b.stop_channels()
    await km_b.shutdown_kernel()
    return {"job_id": job_id, "a": a, "b": b, "state_after_first": after_first, "b_after_first": b_after}


async def scenario_manual(job_id, first, second):
    """Two kernels in an allocation the user made by hand: it survives both."""
    for kernel in (first, second):
        assert _cli("create", "--template", "python-slurm", "--name", kernel, "--job-id", job_id) == 0
    km_1, kc_1 = await _start(first)
    km_2, kc_2 = await _start(second)
    one, two = await _run(kc_1, INFO), await _run(kc_2, INFO)
    for km, kc in ((km_1, kc_1), (km_2, kc_2)):
        kc.stop_channels()
        await km.shutdown_kernel()
    return {"one": one, "two": two, "state_after_both": _squeue_state(job_id)}


async def scenario_env_kernel(name):
    """Start a kernel (Slurm or local) and report what its environment looks like."""
    km, kc = await _start(name)
    code = ("import os, sys, json; print(json.dumps({'prefix': sys.prefix, 'executable': sys.executable, "
            "'env': {k: os.environ.get(k) for k in ('CONDA_PREFIX', 'CONDA_DEFAULT_ENV', 'CONDA_SHLVL', "
            "'VIRTUAL_ENV', 'DKRZ_TEST_VAR', 'SLURM_JOB_ID', 'LOADEDMODULES', 'DKRZ_EXAMPLE', 'DKRZ_TOOLS', "
            "'PROJ_HOME', 'DKRZ_WRAPPED', 'SLURM_NTASKS', 'SLURMD_NODENAME')}, "
            "'path0': os.environ['PATH'].split(':')[0]}))")
    found = await _run(kc, code)
    kc.stop_channels()
    provisioner = type(km.provisioner).__name__
    job_id = getattr(km.provisioner, "job_id", None)
    await km.shutdown_kernel()
    return {"found": json.loads(found["stdout"]), "provisioner": provisioner, "job_id": job_id,
            "kernel_ip": km.ip}


async def scenario_srun_in_a_cell(name):
    """A notebook cell runs `srun hostname` inside the kernel (so the kernel's SLURM_* reach srun)."""
    km, kc = await _start(name)
    cell = await _run(kc, "!srun hostname", timeout=120)
    env = await _run(kc, "import os; print(os.environ['SLURM_JOB_ID'], os.environ['SLURM_NTASKS'], "
                         "os.environ['SLURM_CPUS_PER_TASK'], os.environ.get('SLURM_STEP_ID'))")
    kc.stop_channels()
    job_id = km.provisioner.job_id
    await km.shutdown_kernel()
    return {"cell": cell, "env": env["stdout"].split(), "job_id": job_id}


async def scenario_bad_spec(name):
    """A hand-edited kernelspec with refused options: the start fails before any Slurm call."""
    from dkrzspawner.kernels import provisioner
    from dkrzspawner.slurm import SlurmRunner

    calls = []

    class Recording(SlurmRunner):
        async def run(self, argv, **kw):
            calls.append(list(argv))
            return await super().run(argv, **kw)

    provisioner.SlurmProvisioner.runner_factory = Recording
    from jupyter_client.manager import AsyncKernelManager
    km = AsyncKernelManager(kernel_name=name)
    try:
        await km.start_kernel()
    except Exception as exc:  # noqa: BLE001 - the message is what is checked
        return {"error": f"{type(exc).__name__}: {exc}", "calls": calls}
    await km.shutdown_kernel(now=True)
    return {"error": None, "calls": calls}


async def scenario_time_limit(name):
    """A kernel whose allocation reaches its time limit: poll() reports it dead."""
    loop = asyncio.get_running_loop()
    km, kc = await _start(name)
    first = await _run(kc, INFO)
    started = loop.time()
    polls = 0
    while await km.provisioner.poll() is None and loop.time() - started < 400:
        polls += 1
        await asyncio.sleep(2)
    dead_after = loop.time() - started
    code = await km.provisioner.poll()
    alive = await km.is_alive()
    kc.stop_channels()
    await km.shutdown_kernel(now=True)
    return {"job_id": first["stdout"].split()[0], "poll": code, "is_alive": alive,
            "dead_after_s": round(dead_after, 1), "polls": polls}


async def scenario_measure(name, rounds):
    """Start -> first execute reply, several times: each with a fresh allocation (or none, for a local kernel)."""
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(int(rounds)):
        t0 = loop.time()
        km, kc = await _start(name)
        reply = await _run(kc, "1 + 1")
        samples.append({"first_reply_s": round(loop.time() - t0, 3),
                        "timings": {k: round(v, 3) for k, v in getattr(km.provisioner, "timings", {}).items()},
                        "status": reply["status"]})
        kc.stop_channels()
        await km.shutdown_kernel()
    return {"samples": samples}


def _driver(argv):
    scenario = globals()[f"scenario_{argv[0]}"]
    result = asyncio.run(scenario(*argv[1:]))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    _driver(sys.argv[1:])
    sys.exit(0)


# ======================================================================================================
# The tests: run by pytest (as root), check what alice's driver found against Slurm
# ======================================================================================================
import pytest  # noqa: E402

from tests.slurmtools import require_slurm, slurm, wait_for  # noqa: E402

pytestmark = pytest.mark.timeout(600)
#: in every kernel and job name of this run, so that concurrent runs never touch each other's jobs, and a run never
#: counts an earlier one's (a fresh machine's process ids repeat from run to run; Slurm's accounting remembers)
RUN = f"kt{os.getpid()}{os.urandom(3).hex()}"


@pytest.fixture(scope="module")
def scratch():
    require_slurm()
    if os.geteuid() != 0:
        pytest.skip(reason="these tests switch to alice with sudo, so they run as root")
    folder = Path(tempfile.mkdtemp(prefix="dkrz-kernels-", dir="/tmp"))
    folder.chmod(0o755)
    dist = folder / "ep" / "dkrz_kernels_testep-0.0.dist-info"
    dist.mkdir(parents=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dkrz-kernels-testep\nVersion: 0.0\n")
    (dist / "entry_points.txt").write_text("[jupyter_client.kernel_provisioners]\n" + PROVISIONER_EP)
    subprocess.run(["chmod", "-R", "a+rX", str(folder)], check=True)
    data = folder / "alice-data"
    subprocess.run(["install", "-d", "-o", USER, "-g", USER, str(data)], check=True)
    yield folder
    # leave no jobs behind: cancel alice's jobs of this run (their names carry RUN)
    for line in slurm("squeue", "-h", "-u", USER, "-o", "%i|%j|%k", check=False).splitlines():
        job_id, name, comment = (line.split("|") + ["", ""])[:3]
        if name.startswith(f"{RUN}-") or f"-{RUN}-" in name:
            slurm("scancel", job_id, check=False)
    shutil.rmtree(folder, ignore_errors=True)


def as_alice(scratch, *argv, timeout=300, check=True, env=()) -> subprocess.CompletedProcess:
    env = ["env", f"PYTHONPATH={REPO}:{scratch / 'ep'}", f"JUPYTER_DATA_DIR={scratch / 'alice-data'}",
           "JUPYTER_RUNTIME_DIR=", f"HOME=/home/{USER}", "PYTHONDONTWRITEBYTECODE=1", *env]
    done = subprocess.run(["sudo", "-n", "-u", USER, *env, *argv], capture_output=True, text=True,
                          timeout=timeout, cwd="/tmp")
    if check and done.returncode != 0:
        raise AssertionError(f"{argv} failed ({done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done


def cli(scratch, *argv, check=True, env=()):
    return as_alice(scratch, PYTHON, "-m", "dkrzspawner.kernels.cli", *argv, check=check, env=env)


def drive(scratch, *argv, timeout=300, env=()) -> dict:
    done = as_alice(scratch, PYTHON, str(Path(__file__).resolve()), *argv, timeout=timeout, env=env)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def gone(job_id) -> bool:
    """The job no longer runs (finished jobs print nothing, purged ones fail)."""
    out = slurm("squeue", "-h", "-j", str(job_id), "-o", "%T", check=False).strip()
    return out in ("", "COMPLETING")


def kernel_json(scratch, name) -> dict:
    return json.loads((scratch / "alice-data" / "kernels" / name / "kernel.json").read_text())


@pytest.fixture(scope="module")
def time_limit_run(scratch):
    """The time-limit kernel takes ~90 s: started first, in the background, checked last."""
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-limit", "--partition", "shared",
        "--cores", "1", "--memory", "500M", "--runtime", "00:01:00")
    env = ["env", f"PYTHONPATH={REPO}:{scratch / 'ep'}", f"JUPYTER_DATA_DIR={scratch / 'alice-data'}",
           "JUPYTER_RUNTIME_DIR=", f"HOME=/home/{USER}"]
    proc = subprocess.Popen(["sudo", "-n", "-u", USER, *env, PYTHON, str(Path(__file__).resolve()),
                             "time_limit", f"{RUN}-limit"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            text=True, cwd="/tmp")
    yield proc
    if proc.poll() is None:
        proc.kill()


def test_time_limit_started(time_limit_run):
    assert time_limit_run.poll() in (None, 0)


def test_lifecycle_start_execute_interrupt_restart_shutdown(scratch, record_property):
    done = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-life", "--preset", "shared",
               "--cores", "1", "--runtime", "00:30:00")
    assert f"Created kernel {RUN}-life" in done.stdout
    spec = kernel_json(scratch, f"{RUN}-life")
    assert spec["metadata"]["kernel_provisioner"] == {
        "provisioner_name": "dkrz-slurm-provisioner",
        "config": {"preset": "shared", "cores": 1, "runtime": "00:30:00"}}

    found = drive(scratch, "lifecycle", f"{RUN}-life")
    job_id = found["job_id"]
    record_property("first_reply_s", found["first_reply_s"])
    print(f"start kernel -> first execute reply: {found['first_reply_s']} s; phases {found['timings']}")
    assert job_id.isdigit()
    assert found["host"] == slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%N").strip()
    assert slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%u").strip() == USER
    assert found["interrupt"]["status"] == "error" and found["interrupt"]["ename"] == "KeyboardInterrupt"
    pid = found["first"]["stdout"].split()[2]
    assert found["after_interrupt"]["stdout"].split()[:3] == [job_id, found["host"], pid]  # same process
    restarted = found["after_restart"]["stdout"].split()
    assert restarted[0] == job_id and restarted[2] != pid  # new process, same allocation
    assert found["alive_before_shutdown"] and not found["alive_after_shutdown"]
    wait_for(lambda: gone(job_id), timeout=60, what=f"allocation {job_id} to end")
    assert found["connection_file"].startswith(str(scratch / "alice-data" / "runtime"))
    assert not os.path.exists(found["connection_file"])


def test_a_slurm_kernel_loads_its_modules_in_order_and_an_unknown_one_is_refused(scratch):
    refused = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-nomod", "--preset", "shared",
                  "--modules", "nosuch/1.0", check=False)
    assert refused.returncode == 2 and "'nosuch/1.0' is not a module of this cluster" in refused.stderr
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-mods", "--preset", "shared",
        "--cores", "1", "--runtime", "00:10:00", "--modules", "tools/1.0,example/2.0")
    found = drive(scratch, "env_kernel", f"{RUN}-mods")
    env = found["found"]["env"]
    assert env["LOADEDMODULES"] == "tools/1.0:example/2.0"
    assert (env["DKRZ_TOOLS"], env["DKRZ_EXAMPLE"]) == ("1.0", "2.0")
    assert env["SLURM_JOB_ID"] == found["job_id"]
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the kernel's allocation to end")


def test_two_kernels_share_an_allocation(scratch):
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-share-a", "--preset", "shared",
        "--cores", "1", "--runtime", "00:30:00")
    found = drive(scratch, "share", f"{RUN}-share-a", f"{RUN}-share-b")
    job_id = found["job_id"]
    assert found["b"]["stdout"].split()[0] == job_id
    assert found["state_after_first"] == "RUNNING"
    assert found["b_after_first"]["status"] == "ok"
    assert kernel_json(scratch, f"{RUN}-share-b")["metadata"]["kernel_provisioner"]["config"] == {"job_id": job_id}
    wait_for(lambda: gone(job_id), timeout=60, what=f"allocation {job_id} to end after the last kernel")


def test_a_hand_made_allocation_survives_both_kernels(scratch):
    done = as_alice(scratch, "salloc", "--no-shell", "-J", f"{RUN}-manual", "-p", "shared", "-c", "1",
                    "--mem=500M", "-t", "00:10:00")
    job_id = done.stderr.split("Granted job allocation")[1].split()[0]
    try:
        found = drive(scratch, "manual", job_id, f"{RUN}-manual-1", f"{RUN}-manual-2")
        assert found["one"]["stdout"].split()[0] == job_id == found["two"]["stdout"].split()[0]
        assert found["state_after_both"] == "RUNNING"
        assert slurm("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING"
    finally:
        slurm("scancel", job_id, check=False)


def test_tasks_give_srun_in_a_notebook_cell_all_of_them(scratch):
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-tasks", "--partition", "shared",
        "--cores", "2", "--memory", "1G", "--tasks", "2", "--runtime", "00:10:00")
    found = drive(scratch, "srun_in_a_cell", f"{RUN}-tasks")
    job_id = found["job_id"]
    assert found["cell"]["status"] == "ok"
    lines = found["cell"]["stdout"].split()  # one line per task, on the allocation's one node
    assert len(lines) == 2 and lines[0] == lines[1] and lines[0] in ("node1", "node2"), lines
    assert found["env"][:3] == [job_id, "2", "1"]  # the allocation's tasks and CPUs per task, not the step's
    assert found["env"][3] not in (None, "None")  # the kernel still knows its own step
    fields = slurm("squeue", "-h", "-t", "all", "-j", job_id, "-O", "NumTasks:|,cpus-per-task:", check=False)
    assert "".join(fields.split()) in ("2|1", "")  # as asked (empty: the job has left squeue already)
    wait_for(lambda: gone(job_id), timeout=60, what="the tasks kernel's allocation to end")


def test_a_two_node_kernel_has_a_task_on_each_node_and_srun_in_a_cell_reaches_both(scratch):
    """--nodes 2 --cores 1: two nodes of one core each, one task per node (salloc --ntasks-per-node=1)."""
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-nodes", "--partition", "shared",
        "--nodes", "2", "--cores", "1", "--memory", "500M", "--runtime", "00:10:00")
    found = drive(scratch, "srun_in_a_cell", f"{RUN}-nodes")
    assert found["cell"]["status"] == "ok"
    assert sorted(found["cell"]["stdout"].split()) == ["node1", "node2"], found["cell"]
    assert found["env"][1:3] == ["2", "1"]  # the allocation's two tasks of one core each
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the two-node kernel's allocation to end")


def test_a_kernel_runs_on_the_chosen_node_of_an_existing_allocation(scratch):
    done = as_alice(scratch, "salloc", "--no-shell", "-J", f"{RUN}-node", "-p", "shared", "-N", "2",
                    "--ntasks-per-node=1", "-c", "1", "--mem=500M", "-t", "00:10:00")
    job_id = done.stderr.split("Granted job allocation")[1].split()[0]
    try:
        refused = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-badnode", "--job-id",
                      job_id, "--node", "nosuch", check=False)
        assert refused.returncode == 2
        assert f"Node 'nosuch' is not one of allocation {job_id}'s nodes (node1, node2)." in refused.stderr
        assert not (scratch / "alice-data" / "kernels" / f"{RUN}-badnode").exists()
        alone = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-badnode", "--preset",
                    "shared", "--node", "node2", check=False)
        assert alone.returncode == 2 and "Node picks a node of an existing allocation" in alone.stderr
        cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-node", "--job-id", job_id,
            "--node", "node2")
        assert kernel_json(scratch, f"{RUN}-node")["metadata"]["kernel_provisioner"]["config"] == {
            "job_id": job_id, "node": "node2"}
        found = drive(scratch, "env_kernel", f"{RUN}-node")
        assert found["job_id"] == job_id == found["found"]["env"]["SLURM_JOB_ID"]
        assert found["found"]["env"]["SLURMD_NODENAME"] == "node2"  # not the allocation's first node
        assert found["kernel_ip"] == socket.gethostbyname("node2")  # the node's own address, where it binds
        assert slurm("squeue", "-h", "-j", job_id, "-o", "%T").strip() == "RUNNING"  # never cancelled
    finally:
        slurm("scancel", job_id, check=False)


def test_env_variables_reach_the_kernel_and_bad_ones_are_refused(scratch):
    for bad, words in ((["--env", "SLURM_NTASKS=4"], "Slurm's variables come from Slurm"),
                       (["--env", "2X=1"], "is not a variable name"),
                       (["--env", "DKRZ_MODULES=x"], "set by the kernel's provisioner"),
                       (["--env", "A=1\nB=2"], "one line of text"),
                       (["--env", "A=1\x07"], "without control characters")):
        argv = [arg.encode().decode("unicode_escape") for arg in bad]
        done = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-badenv", "--preset", "shared",
                   *argv, check=False)
        assert done.returncode == 2 and words in done.stderr, done.stderr
        assert not (scratch / "alice-data" / "kernels" / f"{RUN}-badenv").exists()
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-proj", "--preset", "shared",
        "--runtime", "00:10:00", "--env", "PROJ_HOME=/work/bb1234/proj", "--env", "DKRZ_TEST_VAR=a=b c")
    assert kernel_json(scratch, f"{RUN}-proj")["env"] == {"PROJ_HOME": "/work/bb1234/proj",
                                                          "DKRZ_TEST_VAR": "a=b c"}
    found = drive(scratch, "env_kernel", f"{RUN}-proj")
    env = found["found"]["env"]
    assert env["SLURM_JOB_ID"] == found["job_id"]  # on the compute node
    assert env["PROJ_HOME"] == "/work/bb1234/proj" and env["DKRZ_TEST_VAR"] == "a=b c"
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the env kernel's allocation to end")


def test_wrap_runs_an_installed_kernels_command_through_slurm(scratch):
    plain = scratch / "alice-data" / "kernels" / f"{RUN}-plain"
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": "Plain Python", "language": "python", "env": {"DKRZ_WRAPPED": "from-the-original"},
            "metadata": {"debugger": True}}
    as_alice(scratch, "mkdir", "-p", str(plain))
    subprocess.run(["sudo", "-n", "-u", USER, "tee", str(plain / "kernel.json")], input=json.dumps(spec),
                   text=True, check=True, capture_output=True)
    done = cli(scratch, "create", "--wrap", f"{RUN}-plain", "--name", f"{RUN}-wrapped", "--preset", "shared",
               "--runtime", "00:10:00", "--env", "PROJ_HOME=/work/bb1234/proj")
    assert f"running kernel {RUN}-plain through Slurm" in done.stdout
    wrapped = kernel_json(scratch, f"{RUN}-wrapped")
    assert wrapped["argv"] == spec["argv"] and wrapped["language"] == "python"
    assert wrapped["env"] == {"DKRZ_WRAPPED": "from-the-original", "PROJ_HOME": "/work/bb1234/proj"}
    assert wrapped["display_name"].startswith("Plain Python (Slurm: preset shared")
    assert wrapped["metadata"]["dkrzspawner"]["wraps"] == f"{RUN}-plain"
    found = drive(scratch, "env_kernel", f"{RUN}-wrapped")
    env = found["found"]["env"]
    assert found["provisioner"] == "SlurmProvisioner" and env["SLURM_JOB_ID"] == found["job_id"]
    assert (env["DKRZ_WRAPPED"], env["PROJ_HOME"]) == ("from-the-original", "/work/bb1234/proj")
    assert found["found"]["executable"] == sys.executable
    again = cli(scratch, "create", "--wrap", f"{RUN}-wrapped", "--name", f"{RUN}-twice", "--preset", "shared",
                check=False)
    assert again.returncode == 2 and "runs through Slurm already" in again.stderr
    missing = cli(scratch, "create", "--wrap", "nosuch-kernel", "--name", f"{RUN}-twice", "--preset", "shared",
                  check=False)
    assert missing.returncode == 2 and "no kernel named 'nosuch-kernel' is installed" in missing.stderr
    assert not (scratch / "alice-data" / "kernels" / f"{RUN}-twice").exists()
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the wrapped kernel's allocation to end")


SYSTEM_KERNELS = """
[[kernel]]
name = "{run}-sys-local"
display_name = "Python 3 (jobpython/3.11, example/1.0)"
modules = ["jobpython/3.11", "example/1.0"]
argv = ["python", "-m", "ipykernel_launcher", "-f", "{{connection_file}}"]
env = {{PROJ_HOME = "/pool/data/proj"}}

[[kernel]]
name = "{run}-sys-slurm"
display_name = "Python 3 (jobpython/3.11, example/2.0) on a compute node"
modules = ["jobpython/3.11", "example/2.0"]
argv = ["python", "-m", "ipykernel_launcher", "-f", "{{connection_file}}"]
slurm = true
options = {{preset = "shared", cores = 1, runtime = "00:10:00"}}
"""


def install_system(scratch, config: Path, prefix: Path, check=True) -> subprocess.CompletedProcess:
    """``dkrz-kernel install-system`` as root (what an admin runs), into a temporary prefix."""
    done = subprocess.run([sys.executable, "-m", "dkrzspawner.kernels.cli", "install-system", "--config",
                           str(config), "--prefix", str(prefix)], capture_output=True, text=True, timeout=120,
                          env={**os.environ, "PYTHONPATH": str(REPO)}, cwd="/tmp")
    if check and done.returncode != 0:
        raise AssertionError(f"install-system failed ({done.returncode}):\n{done.stdout}\n{done.stderr}")
    return done


def test_system_kernels_from_modules_are_installed_for_every_user(scratch):
    config = scratch / "system-kernels.toml"
    config.write_text(SYSTEM_KERNELS.format(run=RUN))
    config.chmod(0o644)
    prefix = scratch / "system"
    bad = scratch / "bad-kernels.toml"
    bad.write_text(SYSTEM_KERNELS.format(run=RUN).replace("example/1.0", "example/9.9"))
    refused = install_system(scratch, bad, prefix, check=False)
    assert refused.returncode == 2
    assert f"System kernel '{RUN}-sys-local': Modules: 'example/9.9' is not a module of this cluster" in \
        refused.stderr
    assert not (prefix / "share" / "jupyter" / "kernels").exists() or \
        not any((prefix / "share" / "jupyter" / "kernels").iterdir())
    not_root = cli(scratch, "install-system", "--config", str(config), "--prefix", str(prefix), check=False)
    assert not_root.returncode == 2 and "runs as root" in not_root.stderr

    done = install_system(scratch, config, prefix)
    assert done.stdout.count("Installed system kernel") == 2
    kernels = prefix / "share" / "jupyter" / "kernels"
    for name in (f"{RUN}-sys-local", f"{RUN}-sys-slurm"):
        assert (kernels / name).stat().st_mode & 0o777 == 0o755
        assert (kernels / name / "kernel.json").stat().st_mode & 0o777 == 0o644
    local = json.loads((kernels / f"{RUN}-sys-local" / "kernel.json").read_text())
    assert local["argv"][:2] == ["/bin/bash", "-c"] and local["argv"][4:6] == ["python", "-m"]
    assert local["env"]["DKRZ_MODULES"] == "jobpython/3.11 example/1.0"
    assert "kernel_provisioner" not in local["metadata"]
    remote = json.loads((kernels / f"{RUN}-sys-slurm" / "kernel.json").read_text())
    assert remote["metadata"]["kernel_provisioner"]["config"] == {
        "preset": "shared", "cores": 1, "runtime": "00:10:00", "modules": ["jobpython/3.11", "example/2.0"]}
    assert install_system(scratch, config, prefix).returncode == 0  # its own kernels are replaced

    jupyter_path = [f"JUPYTER_PATH={prefix / 'share' / 'jupyter'}"]  # never the real /usr/local/share/jupyter
    found = drive(scratch, "env_kernel", f"{RUN}-sys-local", env=jupyter_path)
    env = found["found"]["env"]
    assert found["provisioner"] == "LocalProvisioner" and env["SLURM_JOB_ID"] is None
    assert env["DKRZ_EXAMPLE"] == "1.0" and env["LOADEDMODULES"] == "jobpython/3.11:example/1.0"
    assert env["PROJ_HOME"] == "/pool/data/proj"
    assert found["found"]["executable"] == sys.executable  # `python` from jobpython/3.11
    found = drive(scratch, "env_kernel", f"{RUN}-sys-slurm", env=jupyter_path)
    env = found["found"]["env"]
    assert found["provisioner"] == "SlurmProvisioner" and env["SLURM_JOB_ID"] == found["job_id"]
    assert env["DKRZ_EXAMPLE"] == "2.0" and env["LOADEDMODULES"] == "jobpython/3.11:example/2.0"
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the system kernel's allocation to end")


def make_env(scratch, name: str, conda: bool) -> Path:
    """A virtualenv (alice's) that sees the project venv's ipykernel; with ``conda`` it gets conda-meta/state."""
    prefix = scratch / "alice-data" / name
    as_alice(scratch, "/usr/bin/python3", "-m", "venv", "--without-pip", str(prefix))
    site = prefix / "lib" / f"python{sys.version_info.major}.{sys.version_info.minor}" / "site-packages"
    as_alice(scratch, "/bin/sh", "-c", f"echo {sysconfig.get_path('purelib')} > {site}/venv.pth")
    if conda:
        as_alice(scratch, "/bin/mkdir", str(prefix / "conda-meta"))
        as_alice(scratch, "/bin/sh", "-c",
                 f"echo '{{\"env_vars\": {{\"DKRZ_TEST_VAR\": \"from-conda\"}}}}' > {prefix}/conda-meta/state")
    return prefix


def test_conda_slurm_kernel_activates_the_environment(scratch):
    prefix = make_env(scratch, "condaenv", conda=True)
    cli(scratch, "create", "--template", "conda-slurm", "--name", f"{RUN}-conda", "--environment", str(prefix),
        "--preset", "shared", "--runtime", "00:10:00")
    spec = kernel_json(scratch, f"{RUN}-conda")
    assert spec["argv"][0] == f"{prefix}/bin/python"
    found = drive(scratch, "env_kernel", f"{RUN}-conda")
    env = found["found"]["env"]
    assert found["provisioner"] == "SlurmProvisioner" and env["SLURM_JOB_ID"] == found["job_id"]
    assert found["found"]["prefix"] == str(prefix)
    assert env["CONDA_PREFIX"] == str(prefix) and env["CONDA_SHLVL"] == "1"
    assert env["CONDA_DEFAULT_ENV"] == str(prefix)
    assert env["DKRZ_TEST_VAR"] == "from-conda"
    assert found["found"]["path0"] == f"{prefix}/bin"
    wait_for(lambda: gone(found["job_id"]), timeout=60, what="the conda kernel's allocation to end")


def test_register_env_gives_a_working_local_kernel(scratch):
    prefix = make_env(scratch, "myvenv", conda=False)
    done = cli(scratch, "register-env", str(prefix), "--name", f"{RUN}-local")
    assert "Registered venv environment" in done.stdout
    spec = kernel_json(scratch, f"{RUN}-local")
    assert "kernel_provisioner" not in spec["metadata"]
    assert spec["env"]["VIRTUAL_ENV"] == str(prefix)
    found = drive(scratch, "env_kernel", f"{RUN}-local")
    assert found["provisioner"] == "LocalProvisioner"
    assert found["found"]["prefix"] == str(prefix)
    assert found["found"]["env"]["VIRTUAL_ENV"] == str(prefix)
    assert found["found"]["env"]["SLURM_JOB_ID"] is None
    assert found["found"]["path0"] == f"{prefix}/bin"
    listed = json.loads(cli(scratch, "list", "--json").stdout)
    assert {f"{RUN}-local", f"{RUN}-conda"} <= {k["name"] for k in listed}
    assert cli(scratch, "remove", f"{RUN}-local").returncode == 0
    assert not (scratch / "alice-data" / "kernels" / f"{RUN}-local").exists()


def test_measure_start_to_first_reply(scratch, record_property):
    """No threshold: the numbers are printed (pytest -s) and recorded as properties (junit XML)."""
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-measure", "--preset", "shared",
        "--runtime", "00:10:00")
    slurm_run = drive(scratch, "measure", f"{RUN}-measure", "3")
    local = make_env(scratch, "measurevenv", conda=False)
    cli(scratch, "register-env", str(local), "--name", f"{RUN}-measure-local")
    local_run = drive(scratch, "measure", f"{RUN}-measure-local", "3")
    for label, run in (("slurm", slurm_run), ("local", local_run)):
        values = [s["first_reply_s"] for s in run["samples"]]
        assert all(s["status"] == "ok" for s in run["samples"])
        record_property(f"first_reply_{label}_s", values)
        print(f"{label}: start kernel -> first execute reply {values} s; "
              f"phases {[s['timings'] for s in run['samples']]}")


@pytest.mark.parametrize("argv, field", [
    (["--preset", "shared", "--cores", "3"], "Cores must be one of 1, 2, 4"),
    (["--partition", "shared", "--memory", "lots"], "Memory must be a size"),
    (["--partition", "shared", "--runtime", "1 hour"], "Runtime must look like"),
    (["--preset", "shared", "--account", "bb1234\n#SBATCH -p gpu"], "Account must be a Slurm account name"),
    (["--preset", "nosuch"], "Preset 'nosuch' does not exist"),
    (["--job-id", "12; rm -rf ~"], "Job id must be the number"),
    (["--modules", "netcdf 4"], "not a module name"),
    (["--partition", "shared", "--cores", "99"], "Cores must be between 1 and"),  # needs Slurm's limits
    (["--partition", "gpu", "--account", "ab0000"], "Account ab0000 is not one of yours"),
])
def test_bad_options_are_refused_and_nothing_is_written(scratch, argv, field):
    done = cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-bad", *argv, check=False)
    assert done.returncode == 2, done.stderr
    assert field in done.stderr and done.stderr.startswith("dkrz-kernel: error: ")
    assert not (scratch / "alice-data" / "kernels" / f"{RUN}-bad").exists()
    assert f"jupyter-kernel-{RUN}-bad" not in slurm("squeue", "-h", "-t", "all", "-u", USER, "-o", "%j")


def test_a_hand_edited_bad_kernelspec_fails_before_any_slurm_call(scratch):
    cli(scratch, "create", "--template", "python-slurm", "--name", f"{RUN}-edited", "--preset", "shared")
    path = scratch / "alice-data" / "kernels" / f"{RUN}-edited" / "kernel.json"
    spec = json.loads(path.read_text())
    spec["metadata"]["kernel_provisioner"]["config"] = {"preset": "shared", "cores": 3, "walltime": "1"}
    text = json.dumps(spec)
    subprocess.run(["sudo", "-n", "-u", USER, "tee", str(path)], input=text, text=True, check=True,
                   capture_output=True)
    found = drive(scratch, "bad_spec", f"{RUN}-edited")
    assert found["calls"] == []
    assert "Unknown option 'walltime'" in found["error"]


def test_time_limit_kernel_is_reported_dead(scratch, time_limit_run):
    out, err = time_limit_run.communicate(timeout=500)
    assert time_limit_run.returncode == 0, err[-3000:]
    found = json.loads([line for line in out.splitlines() if line.startswith("RESULT ")][-1][7:])
    assert found["poll"] is not None and found["is_alive"] is False
    print(f"time-limit kernel reported dead {found['dead_after_s']} s after its first reply")
    assert sacct_or_squeue_state(found["job_id"]) == "TIMEOUT"


def sacct_or_squeue_state(job_id) -> str:
    state = slurm("squeue", "-h", "-t", "all", "-j", job_id, "-o", "%T", check=False).strip()
    if state:
        return state
    from tests.slurmtools import sacct_state
    return sacct_state(job_id)
