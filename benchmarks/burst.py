"""A class at once: N users POST their default server within one second of each other.

For each hub kind (:data:`benchmarks.harness.KINDS`) and for the floor (N bare ``sbatch`` of the same
``jupyterhub-singleuser``, as :func:`benchmarks.scenarios.floor` submits one): the time from the first request
until every server answers, each spawn's time (p50/p95/max), slurmctld's RPCs during the burst (``sdiag`` reset
before, read after: job queries, submissions, ``--test-only`` checks) and the hub's event-loop lag, both as
JupyterHub logs it (its own ticker, here logging every stall of 0.1 s or more) and measured from outside: a
thread asks ``/hub/health`` every 50 ms and records how long each answer takes; and the hub's CPU seconds
meanwhile (its own, and its Slurm commands').

The class are Unix users ``class01`` ... with homes and Slurm associations in ``bb1234`` (the account alice and
carol use), made by :func:`ensure_users` when missing and never removed.
"""

from __future__ import annotations

import datetime
import math
import os
import re
import subprocess
import threading
import time

from pathlib import Path

import requests

from benchmarks import harness, scenarios
from tests.slurmtools import head_address, jobs_of, slurm, wait_for

#: the Slurm account the class charges (alice's and carol's)
ACCOUNT = "bb1234"
#: the full run's class; ``--class-size`` makes it smaller (the default cluster fits 12 one-core servers)
SIZE = 30
#: how often the probe asks ``/hub/health``
PROBE_INTERVAL_S = 0.05
#: JupyterHub logs an event-loop stall at least this long
LOG_THRESHOLD_S = 0.1
#: how often each floor server is looked for on every node: every 10 ms, 30 servers on 2 nodes made 6,000
#: requests a second on the 2-CPU machine that also runs the servers, and slowed the floor itself
POLL_S = 0.2
LAG_LINE = re.compile(r"Event loop was unresponsive for at least ([0-9.]+)s")

#: the class may log in, the bench service reads the metrics, and the hub logs every stall of its event loop
HUB_CONFIG = """
c.Authenticator.allowed_users = set(c.Authenticator.allowed_users) | {users!r}
c.PeriodicMetricsCollector.event_loop_interval_log_threshold = {threshold!r}
"""

#: RPC types of slurmctld that the table names (the rest is in ``rpcs_by_type``)
SUBMITS, WILL_RUN = "REQUEST_SUBMIT_BATCH_JOB", "REQUEST_JOB_WILL_RUN"


def class_users(size: int) -> list[str]:
    return [f"class{index:02d}" for index in range(1, size + 1)]


def ensure_users(users: list[str]) -> None:
    """Unix users with homes and an association in :data:`ACCOUNT` (its default), for those that lack them."""
    for user in users:
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            subprocess.run(["useradd", "-m", "-s", "/bin/bash", user], check=True)
    listed = set(slurm("sacctmgr", "-n", "-P", "show", "assoc", "where", f"account={ACCOUNT}", "format=user").split())
    missing = [user for user in users if user not in listed]
    if missing:
        slurm("sacctmgr", "-i", "add", "user", ",".join(missing), f"account={ACCOUNT}",
              f"defaultaccount={ACCOUNT}")
        # slurmctld learns of new associations from slurmdbd: a job of the last one shows it has
        wait_for(lambda: subprocess.run(
            ["sudo", "-n", "-u", missing[-1], "--", "sbatch", "--test-only", "-p", "shared", "-c", "1",
             "--mem=16M", "-t", "1", "--chdir=/tmp", "--wrap", "true"], capture_output=True).returncode == 0,
            timeout=60, interval=1, what="slurmctld knowing the class's associations")


def percentile(values: list[float], share: float) -> float:
    """The nearest-rank percentile (``share`` 0.95: p95)."""
    ordered = sorted(values)
    return ordered[max(0, math.ceil(share * len(ordered)) - 1)]


def distribution(seconds: list[float]) -> dict:
    """p50, p95 and max of the spawns, with every sample (what :func:`benchmarks.report.plot_class` draws)."""
    if not seconds:
        return {"n": 0, "p50_s": None, "p95_s": None, "max_s": None, "samples_s": []}
    return {"n": len(seconds), "p50_s": round(percentile(seconds, 0.5), 3),
            "p95_s": round(percentile(seconds, 0.95), 3), "max_s": round(max(seconds), 3),
            "samples_s": [round(s, 3) for s in seconds]}


class HealthProbe:
    """A thread asking ``url`` every :data:`PROBE_INTERVAL_S` and recording (time since start, seconds taken)."""

    def __init__(self, url: str):
        self.url = url
        self.samples: list[tuple[float, float]] = []
        self.failures = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self, origin: float):
        """Ask from now on; the samples' times count from ``origin`` (``time.time()``)."""
        self.origin = origin
        self._thread.start()

    def _run(self):
        session = requests.Session()
        while not self._stop.is_set():
            at, sent = time.time(), time.monotonic()
            try:
                session.get(self.url, timeout=10).raise_for_status()
                self.samples.append((round(at - self.origin, 3), round(time.monotonic() - sent, 4)))
            except requests.RequestException:
                self.failures += 1
            self._stop.wait(max(0.0, PROBE_INTERVAL_S - (time.monotonic() - sent)))

    def stop(self) -> dict:
        self._stop.set()
        self._thread.join(15)
        answers = [seconds for _, seconds in self.samples]
        return {"url": self.url, "interval_s": PROBE_INTERVAL_S, "n": len(answers), "failures": self.failures,
                "p50_ms": round(percentile(answers, 0.5) * 1000, 1) if answers else None,
                "p95_ms": round(percentile(answers, 0.95) * 1000, 1) if answers else None,
                "max_ms": round(max(answers) * 1000, 1) if answers else None,
                "samples": self.samples}


def at_once(users: list[str], action) -> dict[str, float]:
    """``action(user)`` in a thread per user, released together; when each was sent (``time.time()``)."""
    barrier = threading.Barrier(len(users))
    sent: dict[str, float] = {}
    errors: list[BaseException] = []

    def one(user):
        barrier.wait()
        sent[user] = time.time()
        try:
            action(user)
        except BaseException as exc:  # noqa: BLE001 (raised in the caller's thread below)
            errors.append(exc)

    threads = [threading.Thread(target=one, args=(user,)) for user in users]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    if errors:
        raise errors[0]
    return sent


def _rpcs(rpcs: dict[str, int]) -> dict:
    return {"job_queries": harness.job_info_rpcs(rpcs), "submits": rpcs.get(SUBMITS, 0),
            "test_only": rpcs.get(WILL_RUN, 0), "all": sum(rpcs.values()), "by_type": rpcs}


def cpu_seconds(pid: int) -> dict:
    """CPU time of process ``pid`` so far: its own, and its ended children's (the hub's Slurm commands, sudo)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf("SC_CLK_TCK")
    return {"own": (int(fields[11]) + int(fields[12])) / ticks, "children": (int(fields[13]) + int(fields[14])) / ticks}


def _lag_logged(log: str) -> dict:
    stalls = [float(value) for value in LAG_LINE.findall(log)]
    return {"threshold_s": LOG_THRESHOLD_S, "count": len(stalls), "max_s": max(stalls) if stalls else 0.0}


def hub_burst(kind: str, users: list[str], timeout: float = 600) -> dict:
    """The class POSTs its default servers on one hub of ``kind``; stopped and their jobs gone afterwards."""
    config = HUB_CONFIG.format(users=set(users), threshold=LOG_THRESHOLD_S)
    hub = harness.BenchHub(kind, scenarios.workdir(f"class-{kind}"), extra_config=config)
    hub.start()
    probe = HealthProbe(f"http://{head_address()}:{harness.PORTS[1]}/hub/health")
    try:
        for user in users:
            hub.api("POST", f"/users/{user}")
        options = {"user_options": harness.SPAWN_OPTIONS[kind]}
        harness.sdiag_reset()
        offset = hub.log_offset()
        cpu_before = cpu_seconds(hub.proc.pid)
        probe.start(time.time())
        sent = at_once(users, lambda user: _accepted(hub.api("POST", f"/users/{user}/server", json=options)))
        failed = _await_ready(hub, users, timeout)
        ready = ready_times(hub.log_since(offset), users)
        rpcs = harness.sdiag_rpcs()
        commands = hub.slurm_commands(offset)
        cpu = {key: round(value - cpu_before[key], 2) for key, value in cpu_seconds(hub.proc.pid).items()}
        lag = {"probe": probe.stop(), "logged": _lag_logged(hub.log_since(offset))}
        at_once(users, lambda user: hub.api("DELETE", f"/users/{user}/server"))
        wait_for(lambda: not any(jobs_of(user) for user in users), timeout=300, interval=1,
                 what="the class's jobs gone")
    finally:
        probe.stop()
        hub.stop()
        harness.cancel_jobs([job for user in users for job in jobs_of(user)])
    return _row(kind, users, sent, ready, failed, rpcs, lag, slurm_commands=commands, hub_cpu_s=cpu)


def _accepted(response: requests.Response):
    assert response.status_code in (201, 202), response.text


def _await_ready(hub: harness.BenchHub, users: list[str], timeout: float) -> list[str]:
    """Wait until every server is ready or gone (one ``GET /users`` a second: the harness must not be what loads
    the hub); the users whose server is not ready."""
    ready: set[str] = set()
    failed: set[str] = set()
    deadline = time.monotonic() + timeout
    while len(ready) + len(failed) < len(users) and time.monotonic() < deadline:
        for user in hub.api("GET", "/users").json():
            name, server = user["name"], (user.get("servers") or {}).get("")
            if name in users and server and server.get("ready"):
                ready.add(name)
            elif name in users and not server:
                failed.add(name)
        time.sleep(1)
    return sorted(set(users) - ready)


#: JupyterHub's line when a server is up, just before its route is added (both hubs log it)
READY_LINE = re.compile(r"^\[I (\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d+) JupyterHub \S+\] User (\S+) took [0-9.]+ seconds to start",
                        re.M)


def ready_times(log: str, users: list[str]) -> dict[str, float]:
    """When each of ``users``'s servers was up (``time.time()``), from the hub's log (its clock is this host's)."""
    times = {}
    for stamp, user in READY_LINE.findall(log):
        if user in users:
            times[user] = datetime.datetime.strptime(stamp, "%Y-%m-%d %H:%M:%S.%f").timestamp()
    return times


def _row(kind, users, sent, ready, failed, rpcs, lag, **extra) -> dict:
    first = min(sent.values())
    spawns = [ready[user] - sent[user] for user in users if user in ready]
    return {
        "kind": kind, "users": len(users),
        "requests_spread_s": round(max(sent.values()) - first, 3),
        "all_ready_s": round(max(ready.values()) - first, 3) if not failed else None,
        "ready": len(ready), "failed": failed,
        "spawn": distribution(spawns),
        "rpcs": _rpcs(rpcs), "lag": lag, **extra,
    }


# -- the floor: bare sbatch, no spawner ------------------------------------------------------------------------
def floor_script(user: str, port: int) -> str:
    """:data:`benchmarks.scenarios.FLOOR_SCRIPT` as ``user``, placed by Slurm like the spawners' jobs (no node
    named)."""
    script = scenarios.FLOOR_SCRIPT.replace("#SBATCH --nodelist={node}\n", "").replace("alice", user)
    return script.format(venv=harness.VENVS["dkrz"], port=port, hub_port=harness.PORTS[1], head=head_address())


def floor_burst(users: list[str], timeout: float = 600) -> dict:
    """The class's servers as bare ``sbatch`` jobs, all at once, each until its ``/user/NAME/api`` answers 200.

    An idle hub runs meanwhile (the server asks the hub's API for its version before it listens); the probe is
    on it too. Each server is looked for on every node (by its port), so the harness asks Slurm nothing.
    """
    nodes = sorted(set(slurm("sinfo", "-h", "-N", "-p", "shared", "-o", "%n").split()))
    ports = {user: scenarios.free_port() for user in users}
    hub = harness.BenchHub("dkrz", scenarios.workdir("class-floor"))
    hub.start()
    probe = HealthProbe(f"http://{head_address()}:{harness.PORTS[1]}/hub/health")
    ready: dict[str, float] = {}
    job_ids: list[str] = []
    try:
        harness.sdiag_reset()
        probe.start(time.time())

        def submit_and_wait(user):
            done = subprocess.run(["sudo", "-n", "-u", user, "--", "sbatch", "--parsable"],
                                  input=floor_script(user, ports[user]), capture_output=True, text=True,
                                  timeout=120, check=True)
            job_ids.append(done.stdout.strip().split(";")[0])
            urls = [f"http://{node}:{ports[user]}/user/{user}/api" for node in nodes]
            deadline = time.monotonic() + timeout
            while time.monotonic() < deadline:
                if any(scenarios.answers(url) for url in urls):
                    ready[user] = time.time()
                    return
                time.sleep(POLL_S)

        sent = at_once(users, submit_and_wait)
        rpcs = harness.sdiag_rpcs()
        lag = {"probe": probe.stop(), "logged": None}
    finally:
        probe.stop()
        harness.cancel_jobs(job_ids)
        hub.stop()
    failed = sorted(set(users) - set(ready))
    return _row("floor", users, sent, ready, failed, rpcs, lag)


def run(kinds, size: int) -> dict:
    """The class on every hub of ``kinds``, then the floor."""
    users = class_users(size)
    ensure_users(users)
    harness.cancel_jobs([job for user in users for job in jobs_of(user)])  # a failed run's, if any
    rows = [hub_burst(kind, users) for kind in kinds]
    rows.append(floor_burst(users))
    return {"size": size, "account": ACCOUNT, "rows": rows}
