"""What every benchmark needs: a hub of either spawner on ports of its own, stand-in jobs, sdiag, the hub log.

Two hubs are compared, each run as a real JupyterHub with its real proxy against the real local Slurm:

- ``dkrz``: DKRZSpawner in the project's environment (``/opt/dkrzspawner/venv``), the repository's code first
  on the hub's ``PYTHONPATH`` (what is measured is this checkout, not the copy installed there);
- ``batchspawner``: batchspawner 1.3.0's ``SlurmSpawner`` from an environment of its own
  (``/opt/dkrzspawner/bench-venv``, same JupyterHub and Jupyter server versions), configured as the anchor
  measurement did (``../shared/research/anchor-baseline.md``). The product never imports batchspawner.

"Seeded" servers stand in for many running servers: a sleeping Slurm job each, and a hub database that holds a
server per job, all pointing at one small HTTP responder. The hub then restarts onto them for real: its spawner
objects load their state, poll through Slurm and keep polling, exactly as with live Jupyter servers.
"""

from __future__ import annotations

import concurrent.futures
import datetime
import http.server
import os
import platform
import re
import socket
import subprocess
import sys
import threading
import time
from dataclasses import dataclass
from pathlib import Path

from tests.e2e.conftest import REPO, Hub
from tests.slurmtools import head_address, slurm, wait_for

#: where `make env` built the environments (``PREFIX``; else the one this Python runs from, ``PREFIX/venv``)
PREFIX = Path(os.environ.get("PREFIX") or Path(sys.prefix).parent)
VENVS = {"dkrz": PREFIX / "venv", "batchspawner": PREFIX / "bench-venv"}
KINDS = tuple(VENVS)
PORTS = (18600, 18601, 18602)
USERS = ("alice", "bob", "carol")
RESULTS = REPO / "benchmarks" / "results"

COMMON_CONFIG = """
c.JupyterHub.bind_url = "http://127.0.0.1:{public}"
c.JupyterHub.hub_bind_url = "http://{head}:{hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.JupyterHub.log_level = "DEBUG"
c.JupyterHub.cleanup_servers = False
c.JupyterHub.allow_named_servers = True
c.JupyterHub.named_server_limit_per_user = 0
c.JupyterHub.authenticator_class = "dummy"
c.Authenticator.allowed_users = {{"alice", "bob", "carol"}}
c.JupyterHub.services = [{{"name": "bench", "api_token": {token!r}}}]
c.JupyterHub.load_roles = [{{"name": "bench", "services": ["bench"],
    "scopes": ["admin:users", "admin:servers", "list:users", "read:users", "tokens", "read:metrics"]}}]
c.Spawner.poll_interval = INTERVAL
c.Spawner.http_timeout = 120
c.Spawner.start_timeout = 600
"""

SPAWNER_CONFIG = {
    "dkrz": """
c.JupyterHub.spawner_class = "dkrz"
c.DKRZSpawner.watch_interval = INTERVAL
""",
    # As measured in the anchor: batchspawner's defaults, one core on `shared`.
    "batchspawner": """
c.JupyterHub.spawner_class = "batchspawner.SlurmSpawner"
c.Spawner.cmd = ["BENCH_VENV/bin/jupyterhub-singleuser"]
c.BatchSpawnerBase.batchspawner_singleuser_cmd = "BENCH_VENV/bin/batchspawner-singleuser"
c.SlurmSpawner.req_partition = "shared"
c.SlurmSpawner.req_nprocs = "1"
c.SlurmSpawner.req_memory = "2500M"
c.SlurmSpawner.req_runtime = "02:00:00"
""",
}

# One line in the hub's DEBUG log per Slurm command the spawner runs.
COMMAND_LINE = {
    "dkrz": re.compile(r"Slurm command (\S+)"),
    "batchspawner": re.compile(
        r"(?:Spawner querying job|Spawner submitting command|Cancelling job \S+): (?:sudo -E -u \S+ )?(\S+)"),
}
INIT_LINE = re.compile(r"Initialized (\d+) spawners in ([0-9.]+) seconds")

# What a server's spawn request asks for: one core on `shared`, on both hubs.
SPAWN_OPTIONS = {"dkrz": {"preset": "shared", "cores": 1}, "batchspawner": {}}


class BenchHub(Hub):
    """A hub of one spawner kind, polling every ``interval`` seconds (JupyterHub's default: 30); ``extra_config``
    is appended to its configuration. dkrzspawner's hub runs this checkout's code (first on its PYTHONPATH)."""

    def __init__(self, kind: str, workdir: Path, interval: float = 30, extra_config: str = ""):
        config = (COMMON_CONFIG + SPAWNER_CONFIG[kind]).replace("INTERVAL", repr(interval))
        config = config.replace("BENCH_VENV", str(VENVS["batchspawner"]))
        super().__init__(workdir, extra_config, config=config, ports=PORTS, venv_bin=VENVS[kind] / "bin",
                         log_path=workdir / "hub.log")
        self.kind = kind
        if kind == "dkrz":  # the checkout being measured, not the copy installed in the venv (its jobs keep that)
            self.environment["PYTHONPATH"] = os.pathsep.join(
                filter(None, [str(REPO), self.environment.get("PYTHONPATH")]))

    def start(self):
        """Start the hub once :data:`PORTS` are free (a stopped hub's proxy may take a moment; another benchmark's
        hub would answer in this one's place, so a port still taken after 15 s is an error)."""
        wait_for(_ports_free, timeout=15, interval=0.2, what=f"ports {PORTS} free (no other benchmark hub)")
        super().start()

    @property
    def db_url(self) -> str:
        return f"sqlite:///{self.workdir / 'jupyterhub.sqlite'}"

    def log_offset(self) -> int:
        return self.log_path.stat().st_size if self.log_path.exists() else 0

    def log_since(self, offset: int) -> str:
        with open(self.log_path, errors="replace") as log:
            log.seek(offset)
            return log.read()

    def slurm_commands(self, offset: int) -> dict[str, int]:
        """Slurm commands the hub ran since ``offset`` of its log, by program."""
        counts: dict[str, int] = {}
        for match in COMMAND_LINE[self.kind].finditer(self.log_since(offset)):
            program = os.path.basename(match.group(1))
            counts[program] = counts.get(program, 0) + 1
        return counts


def _ports_free() -> bool:
    for port in PORTS:
        with socket.socket() as sock:
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
            try:
                sock.bind((head_address() if port == PORTS[1] else "127.0.0.1", port))
            except OSError:
                return False
    return True


# -- sdiag: what slurmctld was asked ------------------------------------------------------------------
_RPC_LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)")


def sdiag_reset():
    slurm("sdiag", "--reset")


def rpcs_by_type(report: str) -> dict[str, int]:
    """RPC counts by message type from ``sdiag`` or ``sacctmgr show stats`` (both print the same section)."""
    section = report.split("Remote Procedure Call statistics by message type", 1)[1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return {m.group(1): int(m.group(2)) for line in section.splitlines() if (m := _RPC_LINE.match(line))}


def sdiag_rpcs() -> dict[str, int]:
    """slurmctld's RPC counts by message type since the last reset."""
    return rpcs_by_type(slurm("sdiag"))


def slurmdbd_rpcs() -> dict[str, int]:
    """slurmdbd's RPC counts by message type since it started (``sacctmgr show stats``; never reset here)."""
    return rpcs_by_type(slurm("sacctmgr", "show", "stats"))


def job_info_rpcs(rpcs: dict[str, int]) -> int:
    """Job queries (one per squeue or scontrol show job), the load the spawners differ in."""
    return sum(count for name, count in rpcs.items() if name.startswith("REQUEST_JOB_INFO"))


# -- stand-in servers ---------------------------------------------------------------------------------
class Responder:
    """One HTTP server that answers every request with 200: where all seeded servers "listen"."""

    def __init__(self):
        class Answer(http.server.BaseHTTPRequestHandler):
            def do_GET(self):  # noqa: N802 (http.server's naming)
                self.send_response(200)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, *args):
                pass

        class Server(http.server.ThreadingHTTPServer):
            request_queue_size = 1024  # a restarted hub checks every server at once: no refused connections

        self.server = Server(("127.0.0.1", 0), Answer)
        self.port = self.server.server_address[1]
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def close(self):
        self.server.shutdown()
        self.server.server_close()


@dataclass(frozen=True)
class Sleeper:
    """A running Slurm job that stands in for one server."""

    user: str
    name: str
    job_id: str
    host: str = ""  # the node it runs on (squeue's batch host)


def patiently(step, *args, attempts: int = 5):
    """``step(*args)``, tried again (up to ``attempts`` times, a little longer apart each time) when it fails:
    with a thousand stand-ins slurmctld and slurmdbd are sometimes slow to answer."""
    for attempt in range(attempts):
        try:
            return step(*args)
        except (RuntimeError, TimeoutError, subprocess.TimeoutExpired):
            if attempt == attempts - 1:
                raise
            time.sleep(2 * (attempt + 1))


def start_sleepers(count: int, users=USERS) -> list[Sleeper]:
    """``count`` one-core jobs spread over ``users`` (the test users), all running when this returns.

    Each is an allocation with nothing running in it (``salloc --no-shell``): Slurm holds its core and lists it
    RUNNING like a server's job, and no process runs for it on the node, so a thousand stand-ins cost the compute
    nodes nothing (a thousand batch jobs of ``sleep`` had the 2-CPU machine's load at 900 and slurmctld's
    answers timing out). They are asked for eight at a time, each retried when slurmctld is slow to answer."""
    def allocate(index: int) -> Sleeper:
        user = users[index % len(users)]
        argv = ["sudo", "-n", "-u", user, "--", "salloc", "--no-shell", "-p", "shared", "-c", "1", "--mem=16M",
                "-t", "120", "-J", "bench-sleeper"]
        def ask() -> Sleeper:
            said = subprocess.run(argv, capture_output=True, text=True, timeout=120).stderr
            granted = re.search(r"Granted job allocation (\d+)", said)
            if not granted:
                raise RuntimeError(f"salloc for {user}: {said.strip()}")
            return Sleeper(user, f"s{index}", granted.group(1))
        return patiently(ask)

    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        sleepers = list(pool.map(allocate, range(count)))
    ids = ",".join(s.job_id for s in sleepers)
    if ids:
        wait_for(lambda: len(slurm("squeue", "-h", "-t", "R", "-j", ids, "-o", "%i").split()) == count,
                 timeout=300, interval=1, what=f"{count} stand-in jobs running")
        hosts = dict(line.split() for line in slurm("squeue", "-h", "-j", ids, "-o", "%i %B").splitlines())
        sleepers = [Sleeper(s.user, s.name, s.job_id, hosts[s.job_id]) for s in sleepers]
    return sleepers


def cancel_jobs(job_ids):
    """Cancel jobs and wait until Slurm has let go of them (no COMPLETING left)."""
    ids = ",".join(job_ids)
    if not ids:
        return
    slurm("scancel", *job_ids, check=False)
    wait_for(lambda: not slurm("squeue", "-h", "-j", ids, "-o", "%i", check=False).strip(),
             timeout=300, interval=1, what="cancelled jobs gone")


def clear_queue():
    """No job of the test users may disturb a measurement."""
    stale = slurm("squeue", "-h", "-u", ",".join(USERS), "-o", "%i").split()
    cancel_jobs(stale)


def seed_servers(hub: BenchHub, sleepers: list[Sleeper], port: int):
    """Write a running server per sleeper into the (stopped) hub's database, as the spawner would have."""
    from jupyterhub import orm

    session = orm.new_session_factory(hub.db_url)()
    users = {}
    for name in {sleeper.user for sleeper in sleepers}:
        users[name] = session.query(orm.User).filter_by(name=name).first() or orm.User(name=name)
        session.add(users[name])
    now = datetime.datetime.now(datetime.timezone.utc).replace(tzinfo=None)
    for sleeper in sleepers:
        if hub.kind == "dkrz":
            state = {"job_id": sleeper.job_id, "job_host": sleeper.host, "job_port": port}
        else:
            state = {"job_id": sleeper.job_id, "job_status": f"RUNNING {sleeper.host}"}
        spawner = orm.Spawner(name=sleeper.name, user=users[sleeper.user], state=state, started=now,
                              last_activity=now)
        spawner.server = orm.Server(ip="127.0.0.1", port=port,
                                    base_url=f"/user/{sleeper.user}/{sleeper.name}/")
        session.add(spawner)
    session.commit()
    session.close()


def forget_servers(hub: BenchHub):
    """Remove every server from the (stopped) hub's database, so its next start begins empty."""
    from jupyterhub import orm

    session = orm.new_session_factory(hub.db_url)()
    for spawner in session.query(orm.Spawner).all():
        if spawner.server is not None:
            session.delete(spawner.server)
        session.delete(spawner)
    session.commit()
    session.close()


def machine() -> dict:
    """Where the figures were measured."""
    meminfo = Path("/proc/meminfo").read_text().split()
    return {
        "date": datetime.datetime.now(datetime.timezone.utc).strftime("%Y-%m-%d %H:%M UTC"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "memory_gib": round(int(meminfo[meminfo.index("MemTotal:") + 1]) / 2**20, 1),
        "python": platform.python_version(),
        "slurm": slurm("sinfo", "--version").strip(),
        "kernel": platform.release(),
    }
