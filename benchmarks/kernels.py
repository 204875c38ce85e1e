"""Kernels: dkrzspawner's provisioner against Jülich's ``jupyter-slurm-provisioner`` 0.6.0 and the floor.

Every kernel runs as alice (never as root) against the real local Slurm, with the same ipykernel (the
project environment's) and the same request: one node, one task, one core, 1000 MB on ``shared``.

- ``dkrz``: ``dkrz-slurm-provisioner`` from the repository (first on PYTHONPATH, its entry point registered by
  a small dist-info, as ``tests/integration/test_kernels_slurm.py`` does), in the project's environment;
- ``juelich``: ``slurm-provisioner`` of jupyter-slurm-provisioner 0.6.0 from an environment of its own
  (``kernel-bench-venv``, same jupyter_client, jupyter_server and ipykernel), configured as its README says;
  it asks JSC's ``jutil`` for the budget account, which ``benchmarks/jutil-exe`` stands in for;
- ``floor``: no provisioner: ``salloc --no-shell`` and ``srun`` of ipykernel with a connection file.

Measurements:

- :func:`latency`: start -> first execute reply, ``rounds`` kernels one after the other (``kernel_driver.py``),
  each in a new allocation; :func:`latency_in_allocation`: the same into allocations made beforehand;
- :func:`time_limit`: one kernel started through the REST API of a real ``jupyter server`` (its kernel restarter
  running) with a short allocation time limit; after ``window`` seconds, the allocations that kernel caused
  (sacct) and the kernel's state in the API, and whether it still answers. Both provisioners at once.
"""

from __future__ import annotations

import concurrent.futures
import json
import os
import pwd
import re
import secrets
import shutil
import signal
import subprocess
import tempfile
import time
import uuid
from pathlib import Path

import requests
import websocket

from benchmarks import harness, scenarios
from tests.integration.test_kernels_slurm import PROVISIONER_EP
from tests.slurmtools import slurm, wait_for

KINDS = ("dkrz", "juelich", "floor")
PROVISIONERS = ("dkrz", "juelich")
VENVS = {"dkrz": harness.VENVS["dkrz"], "juelich": harness.PREFIX / "kernel-bench-venv",
         "floor": harness.VENVS["dkrz"]}
#: where jupyter-slurm-provisioner 0.6.0 runs JSC's jutil (an absolute path in its code)
JUTIL = Path("/usr/libexec/jutil-exe")
DRIVER = Path(__file__).resolve().parent / "kernel_driver.py"
USER, ACCOUNT, PARTITION, MEMORY = "alice", "bb1234", "shared", "1000M"
LATENCY_MINUTES = 10
#: 0.6.0 names each allocation with a fresh uuid4().hex
JUELICH_JOB_NAME = re.compile(r"[0-9a-f]{32}")


def juelich_missing() -> str | None:
    """Why Jülich's side cannot run here, or None."""
    if not (VENVS["juelich"] / "bin" / "jupyter-server").exists():
        return (f"jupyter-slurm-provisioner's benchmark environment {VENVS['juelich']} does not exist; "
                "`make bench` creates it.")
    if not os.access(JUTIL, os.X_OK):
        return f"{JUTIL} (the stand-in for JSC's jutil that 0.6.0 calls) is missing; `make bench` installs it."
    return None


class Scratch:
    """One run's world-readable folder under /tmp: alice's Jupyter data dir and home, our entry point."""

    def __init__(self):
        self.tag = f"kb{os.getpid()}"
        self.folder = Path(tempfile.mkdtemp(prefix="dkrz-bench-kernels-", dir="/tmp"))
        self.folder.chmod(0o755)
        dist = self.folder / "ep" / "dkrz_kernels_benchep-0.0.dist-info"
        dist.mkdir(parents=True)
        (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: dkrz-kernels-benchep\nVersion: 0.0\n")
        (dist / "entry_points.txt").write_text("[jupyter_client.kernel_provisioners]\n" + PROVISIONER_EP)
        subprocess.run(["chmod", "-R", "a+rX", str(self.folder)], check=True)
        self.data, self.home = self.folder / "data", self.folder / "home"
        self.account = pwd.getpwnam(USER)
        for folder in (self.data, self.home, self.data / "kernels"):
            folder.mkdir(mode=0o755)
            os.chown(folder, self.account.pw_uid, self.account.pw_gid)

    def env(self, kind: str) -> dict[str, str]:
        """Alice's environment for ``kind``: her Jupyter dirs here; the repository first for ours."""
        env = {"PATH": f"{VENVS[kind]}/bin:/usr/local/bin:/usr/bin:/bin", "HOME": str(self.home), "USER": USER,
               "LOGNAME": USER, "LANG": "C.UTF-8", "JUPYTER_DATA_DIR": str(self.data),
               "PYTHONDONTWRITEBYTECODE": "1"}
        if kind == "dkrz":
            env["PYTHONPATH"] = f"{harness.REPO}:{self.folder / 'ep'}"
        return env

    def popen(self, kind: str, argv: list[str], **kwargs) -> subprocess.Popen:
        """``argv`` as alice (her groups only), in a session of its own."""
        return subprocess.Popen(argv, env=self.env(kind), cwd=self.home, user=self.account.pw_uid,
                                group=self.account.pw_gid, extra_groups=[], start_new_session=True, **kwargs)

    def run(self, kind: str, argv: list[str], timeout: float) -> str:
        """``argv`` as alice; its stdout, or an error with its output."""
        with self.popen(kind, argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) as proc:
            try:
                out, err = proc.communicate(timeout=timeout)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                out, err = proc.communicate()
                raise RuntimeError(f"{argv[:3]} took more than {timeout:g} s:\n{out[-2000:]}\n{err[-3000:]}")
        if proc.returncode != 0:
            raise RuntimeError(f"{argv[:3]} failed ({proc.returncode}):\n{out[-2000:]}\n{err[-3000:]}")
        return out

    def allocate(self, job_name: str) -> str:
        """An allocation of alice's with the common request (``salloc --no-shell``): its job id."""
        with self.popen("floor", ["salloc", "--no-shell", f"--job-name={job_name}", f"--partition={PARTITION}",
                                  "--nodes=1", "--ntasks=1", "--cpus-per-task=1", f"--mem={MEMORY}",
                                  f"--time={LATENCY_MINUTES}"], stderr=subprocess.PIPE, text=True) as proc:
            err = proc.communicate(timeout=120)[1]
        granted = re.search(r"Granted job allocation (\d+)", err)
        if proc.returncode != 0 or not granted:
            raise RuntimeError(f"salloc failed ({proc.returncode}): {err.strip()[:300]}")
        return granted.group(1)

    def kernelspec(self, kind: str, name: str, minutes: int, job_id: str | None = None) -> str:
        """A kernelspec of ``kind`` for the common request with a time limit of ``minutes``, or for the
        allocation ``job_id``."""
        python = str(VENVS["dkrz"] / "bin" / "python")
        if kind == "dkrz":
            request = (["--job-id", job_id] if job_id else
                       ["--partition", PARTITION, "--cores", "1", "--memory", MEMORY,
                        "--runtime", f"{minutes // 60:02d}:{minutes % 60:02d}:00"])
            self.run("dkrz", [python, "-m", "dkrzspawner.kernels.cli", "create", "--template", "python-slurm",
                              "--name", name, *request, "--python", python], timeout=120)
            return name
        # jupyter-slurm-provisioner's README: every option a string, the kernel's own argv in kernel_argv
        argv = [python, "-m", "ipykernel_launcher", "-f", "{connection_file}"]
        config = {"project": ACCOUNT, "partition": PARTITION, "nodes": "1", "runtime": str(minutes), "gpus": "0",
                  "reservation": "None", "jobid": job_id or "None", "node": "None", "kernel_argv": argv}
        spec = {"argv": argv, "display_name": f"Slurm Kernel ({name})", "language": "python",
                "metadata": {"kernel_provisioner": {"provisioner_name": "slurm-provisioner", "config": config}}}
        folder = self.data / "kernels" / name
        folder.mkdir()
        (folder / "kernel.json").write_text(json.dumps(spec, indent=1))
        for path in (folder, folder / "kernel.json"):
            os.chown(path, self.account.pw_uid, self.account.pw_gid)
        return name

    def close(self):
        shutil.rmtree(self.folder, ignore_errors=True)


def _drive(scratch: Scratch, kind: str, *argv: str, timeout: float) -> dict:
    out = scratch.run(kind, [str(VENVS[kind] / "bin" / "python"), str(DRIVER), *argv], timeout=timeout)
    lines = [line for line in out.splitlines() if line.startswith("RESULT ")]
    if not lines:
        raise RuntimeError(f"kernel_driver.py {argv[0]} printed no result:\n{out[-3000:]}")
    return json.loads(lines[-1][len("RESULT "):])


def _row(kind: str, samples: list[dict], **extra) -> dict:
    seconds = [s["first_reply_s"] for s in samples if s["status"] == "ok"]
    failed = [s for s in samples if s["status"] != "ok"]
    spread = scenarios.summary(seconds) if seconds else {"n": 0, "samples_s": []}
    return {"kind": kind, **extra, **spread, "attempts": len(samples), "failed": len(failed),
            "errors": sorted({s.get("error", s["status"]) for s in failed}), "rounds": samples}


def latency(kind: str, rounds: int, scratch: Scratch) -> dict:
    """Start -> first execute reply, ``rounds`` times, each kernel in a fresh allocation."""
    timeout = 60 + rounds * 240
    if kind == "floor":
        found = _drive(scratch, kind, "floor", str(VENVS["dkrz"] / "bin" / "python"), str(rounds),
                       f"{scratch.tag}-floor", PARTITION, MEMORY, str(LATENCY_MINUTES), timeout=timeout)
    else:
        name = scratch.kernelspec(kind, f"{scratch.tag}-{kind}", LATENCY_MINUTES)
        found = _drive(scratch, kind, "latency", name, str(rounds), timeout=timeout)
    return _row(kind, found["samples"], allocation="new")


def latency_in_allocation(kind: str, rounds: int, scratch: Scratch) -> dict:
    """The same, each kernel into an allocation alice made beforehand (each provisioner's job id option)
    that the accounting (sacct) already lists; the allocation is cancelled after each round."""
    samples = []
    for index in range(rounds):
        job_id = scratch.allocate(f"{scratch.tag}-own-{kind}")
        try:
            wait_for(lambda: slurm("sacct", "-X", "-n", "-P", "-j", job_id, "-s", "RUNNING", "-o", "JobID").strip(),
                     timeout=60, interval=0.5, what=f"allocation {job_id} in the accounting")
            name = scratch.kernelspec(kind, f"{scratch.tag}-{kind}-in{index}", LATENCY_MINUTES, job_id=job_id)
            samples += _drive(scratch, kind, "latency", name, "1", "leave", timeout=300)["samples"]
        finally:
            harness.cancel_jobs([job_id])
    return _row(kind, samples, allocation="existing")


# -- the time limit inside a real Jupyter server ---------------------------------------------------------
class Server:
    """``jupyter server`` as alice from ``kind``'s environment, on a port of its own, with a token."""

    def __init__(self, scratch: Scratch, kind: str):
        self.kind, self.port, self.token = kind, scenarios.free_port(), secrets.token_hex(16)
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = scratch.folder / f"server-{kind}.log"
        with open(self.log_path, "wb") as log:
            self.proc = scratch.popen(kind, [
                str(VENVS[kind] / "bin" / "jupyter-server"), "--ServerApp.ip=127.0.0.1",
                f"--ServerApp.port={self.port}", "--ServerApp.port_retries=0", "--ServerApp.open_browser=False",
                f"--IdentityProvider.token={self.token}", f"--ServerApp.root_dir={scratch.home}"],
                stdout=log, stderr=subprocess.STDOUT)
        wait_for(self._answers, timeout=120, interval=0.2, what=f"the {kind} Jupyter server")

    def _answers(self) -> bool:
        if self.proc.poll() is not None:
            raise RuntimeError(f"the {self.kind} Jupyter server exited: {self.log_path.read_text()[-3000:]}")
        try:
            return self.api("GET", "/api/status").ok
        except requests.ConnectionError:
            return False

    def api(self, method: str, path: str, **kwargs) -> requests.Response:
        return requests.request(method, self.url + path, headers={"Authorization": f"token {self.token}"},
                                timeout=kwargs.pop("timeout", 300), **kwargs)

    def state(self, kernel_id: str | None) -> str:
        """The kernel's ``execution_state`` in the API; ``gone`` once the server has dropped it (or never had it)."""
        if kernel_id is None:
            return "gone"
        response = self.api("GET", f"/api/kernels/{kernel_id}", timeout=60)
        return response.json()["execution_state"] if response.ok else "gone"

    def execute(self, kernel_id: str, timeout: float) -> str | None:
        """The status of an ``execute_request`` over the kernel's websocket, None without a reply in time."""
        try:
            ws = websocket.create_connection(
                f"ws://127.0.0.1:{self.port}/api/kernels/{kernel_id}/channels",
                header=[f"Authorization: token {self.token}"], timeout=timeout)
        except (websocket.WebSocketException, OSError):
            return None
        msg_id, deadline = uuid.uuid4().hex, time.monotonic() + timeout
        try:
            ws.send(json.dumps({
                "header": {"msg_id": msg_id, "session": uuid.uuid4().hex, "username": USER,
                           "msg_type": "execute_request", "version": "5.3"},
                "parent_header": {}, "metadata": {}, "channel": "shell", "buffers": [],
                "content": {"code": "1 + 1", "silent": False, "store_history": False, "user_expressions": {},
                            "allow_stdin": False, "stop_on_error": True}}))
            while time.monotonic() < deadline:
                ws.settimeout(max(deadline - time.monotonic(), 0.1))
                msg = json.loads(ws.recv())
                if msg.get("msg_type") == "execute_reply" and msg["parent_header"].get("msg_id") == msg_id:
                    return msg["content"]["status"]
        except (websocket.WebSocketException, OSError, ValueError):
            return None
        finally:
            ws.close()
        return None

    def start_error(self) -> str:
        """The last exception line in the server's log: why a kernel did not start."""
        lines = [line.strip() for line in self.log_path.read_text(errors="replace").splitlines()
                 if re.match(r"\s*\w+(\.\w+)*(Error|Exception): ", line)]
        return lines[-1] if lines else "(no exception in the server's log)"

    def restarter_lines(self) -> dict[str, int]:
        log = self.log_path.read_text(errors="replace")
        return {"restarts": len(re.findall(r"KernelRestarter: restarting kernel \(", log)),
                "restart_failed": len(re.findall(r"KernelRestarter: restart failed", log))}

    def stop(self):
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(60)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()


def _sacct_time(epoch: float) -> str:
    return time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(epoch))


def _caused_by(kind: str, kernel_name: str, job_name: str) -> bool:
    """Whether a job of alice's is an allocation of this kernel (ours: named after the kernelspec)."""
    if kind == "dkrz":
        return job_name == f"jupyter-kernel-{kernel_name}"
    return bool(JUELICH_JOB_NAME.fullmatch(job_name))


def allocations(kind: str, kernel_name: str, since: float) -> list[dict]:
    """The allocations of the kernel submitted since ``since`` (sacct, as root, by user, name and time)."""
    start = _sacct_time(since)
    out = slurm("sacct", "-X", "-n", "-P", "-u", USER, "-S", start, "-o",
                "JobID,JobName,Submit,Start,End,State,Timelimit")
    found = []
    for line in out.splitlines():
        job_id, name, submit, begin, end, state, limit = (line.split("|") + [""] * 7)[:7]
        if submit >= start and _caused_by(kind, kernel_name, name):
            found.append({"job_id": job_id, "submit": submit, "start": begin, "end": end,
                          "state": state.split()[0] if state else "", "time_limit": limit})
    return found


def kernel_steps(jobs: list[dict]) -> int:
    """Kernel processes that ran in these allocations: their job steps (not Slurm's extern/batch ones)."""
    if not jobs:
        return 0
    out = slurm("sacct", "-n", "-P", "-j", ",".join(job["job_id"] for job in jobs), "-o", "JobID")
    return sum(1 for step in out.split() if "." in step and step.split(".", 1)[1].isdigit())


def _cancel_left(kind: str, kernel_name: str):
    left = [job_id for job_id, _, name in
            (line.partition("|") for line in slurm("squeue", "-h", "-u", USER, "-o", "%i|%j").splitlines())
            if _caused_by(kind, kernel_name, name)]
    harness.cancel_jobs(left)


def time_limit(kind: str, scratch: Scratch, minutes: int, window: float) -> dict:
    """One kernel through a real server's REST API, its allocation limited to ``minutes``; ``window`` s."""
    name = scratch.kernelspec(kind, f"{scratch.tag}-{kind}-limit", minutes)
    server = Server(scratch, kind)
    try:
        since = time.time() - 1  # sacct's Submit has whole seconds
        started = time.monotonic()
        response = server.api("POST", "/api/kernels", json={"name": name})
        start_s = time.monotonic() - started
        kernel_id = response.json()["id"] if response.ok else None
        start_error = None if response.ok else f"{response.status_code} {response.reason}: {server.start_error()}"
        first = server.execute(kernel_id, timeout=120) if kernel_id else None
        timeline = [{"t_s": round(time.monotonic() - started, 1), "state": server.state(kernel_id)}]
        while time.monotonic() - started < window:
            time.sleep(min(5.0, max(window - (time.monotonic() - started), 0)))
            state = server.state(kernel_id)
            if state != timeline[-1]["state"]:
                timeline.append({"t_s": round(time.monotonic() - started, 1), "state": state})
        final = server.state(kernel_id)
        answers = server.execute(kernel_id, timeout=30) if final != "gone" else None
        time.sleep(2)  # slurmdbd has the last submissions
        jobs = allocations(kind, name, since)
        steps = kernel_steps(jobs)
        lines = server.restarter_lines()
        if final != "gone":
            server.api("DELETE", f"/api/kernels/{kernel_id}", timeout=120)
    finally:
        server.stop()
        _cancel_left(kind, name)
    return {"kind": kind, "time_limit_min": minutes, "window_s": window, "window_start": _sacct_time(since + 1),
            "post_kernel_s": round(start_s, 3),
            "start_error": start_error, "first_execute": first, "allocations": len(jobs), "kernel_steps": steps,
            "jobs": jobs, "final_state": final,
            "final_execute": answers, "timeline": timeline, **lines}


def run(kinds, rounds: int, minutes: int, window: float) -> dict:
    """Latency of every kind, then the time-limit windows of both provisioners at once.

    Nobody's jobs are cancelled first: the cluster may be shared; how many jobs ran beside is recorded."""
    scratch, started = Scratch(), time.monotonic()
    try:
        results = {"machine": harness.machine(), "settings": {
            "rounds": rounds, "time_limit_min": minutes, "window_s": window,
            "request": {"partition": PARTITION, "nodes": 1, "tasks": 1, "cores": 1, "memory": MEMORY},
            "kernel": f"{VENVS['dkrz']}/bin/python -m ipykernel_launcher", "user": USER,
            "other_jobs_running_at_start": len(slurm("squeue", "-h", "-t", "R", "-o", "%i").split())}}
        results["latency"] = [latency(kind, rounds, scratch) for kind in kinds]
        results["latency"] += [latency_in_allocation(kind, rounds, scratch) for kind in kinds if kind in PROVISIONERS]
        provisioners = [kind for kind in kinds if kind in PROVISIONERS]
        with concurrent.futures.ThreadPoolExecutor(len(provisioners) or 1) as pool:
            futures = [pool.submit(time_limit, kind, scratch, minutes, window) for kind in provisioners]
            results["time_limit"] = [future.result() for future in futures]
        results["duration_s"] = round(time.monotonic() - started, 1)
        return results
    finally:
        scratch.close()
