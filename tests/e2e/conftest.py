"""A real JupyterHub process with its real proxy, configured like the demo, on ports of its own."""

from __future__ import annotations

import datetime
import fcntl
import json
import os
import pwd
import secrets
import shlex
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
import requests

from tests.slurmtools import head_address, require_slurm, slurm, wait_for

REPO = Path(__file__).resolve().parents[2]
VENV_BIN = Path(sys.executable).parent
ARTIFACTS = REPO / "test-artifacts"
#: DKRZ_E2E_PORT_OFFSET moves these ports: two checkouts can run their end-to-end tests at once
_OFFSET = int(os.environ.get("DKRZ_E2E_PORT_OFFSET") or 0)
PUBLIC_PORT, HUB_PORT, PROXY_API_PORT = 18000 + _OFFSET, 18081 + _OFFSET, 18001 + _OFFSET
USERS = ("alice", "bob", "carol")
# The e2e hub runs as this unprivileged system account (made by `make env`, with the sudoers drop-in of
# dkrzspawner/share/sudoers.d/), as a site runs it.
HUB_ACCOUNT = "jupyterhub"
#: the budget period of every test hub (the accounts drop-in's $DKRZ_BUDGET_PERIOD_START) starts with this test
#: session: the budget tests see this session's own usage only, not what earlier runs and benchmarks on the same
#: machine charged to bb1234 since 1 January (a machine's accounting outlives a checkout; such usage had left
#: bb1234's 100 core-hours at 0 and failed the budget and extend tests)
BUDGET_PERIOD_START = datetime.datetime.now().isoformat(timespec="seconds")

TEST_CONFIG = """
load_subconfig({repo_config!r})
c.JupyterHub.bind_url = "http://127.0.0.1:{public}"
c.JupyterHub.hub_bind_url = "http://{head}:{hub}"
c.ConfigurableHTTPProxy.api_url = "http://127.0.0.1:{proxy_api}"
c.JupyterHub.log_level = "DEBUG"
# appended: the drop-ins' services (announcements, accounts) and roles stay
c.JupyterHub.services.append({{"name": "e2e-driver", "api_token": {token!r}}})
c.JupyterHub.load_roles.append({{
    "name": "e2e-driver",
    "scopes": ["admin:users", "admin:servers", "tokens", "list:users", "read:users", "admin:groups",
               "read:metrics"],
    "services": ["e2e-driver"],
}})
c.DKRZSpawner.watch_interval = 5
# test_policy_metrics.py: maintenance on while this file (in the hub's working directory) has text, and a
# server limit for the members of a hub group that only that test creates; everyone else: no restriction.
c.DKRZSpawner.maintenance_file = "maintenance.txt"
c.DKRZSpawner.policy = {{"groups": {{"e2e-limited": {{"max_servers": 1}}}}}}


def test_servers(spawner):
    # "broken": a job environment that does not exist, so the job dies at once.
    if spawner.name == "broken":
        spawner.job_prefix = "/nonexistent/env"
    # "hog": reports its port, then takes 4 GB of its 2500M and is killed by Slurm.
    # "requeueable": a site template that lets Slurm requeue the job (test_nodes.py requeues it)
    if spawner.name == "requeueable":
        import pathlib
        pathlib.Path("requeueable.sh.j2").write_text(
            '{{% extends "batch_script.sh.j2" %}}{{% block prologue %}}\\n#SBATCH --requeue\\n{{{{ super() }}}}'
            '{{% endblock %}}')
        spawner.template_paths = [str(pathlib.Path.cwd())]
        spawner.batch_script_template = "requeueable.sh.j2"
    if spawner.name == "hog":
        spawner.cmd = ["/usr/bin/python3", "-c", "import time; x = bytearray(4 << 30); time.sleep(600)"]


c.Spawner.pre_spawn_hook = test_servers
"""


class Hub:
    """Starts, stops and talks to one hub process; its log is kept as a test artifact."""

    def __init__(self, workdir: Path, extra_config: str = "", *, config: str = TEST_CONFIG,
                 ports=(PUBLIC_PORT, HUB_PORT, PROXY_API_PORT), venv_bin: Path = VENV_BIN, log_path=None,
                 run_as: str | None = None):
        """``config`` is a template filled with ``repo_config``, ``public``, ``hub``, ``proxy_api`` and
        ``token``; the benchmarks pass their own, with other ports and another hub environment.

        ``run_as`` names the Unix account the hub runs as; it then owns ``workdir`` (mode 0700: the hub's
        database and cookie secret are there) and its log (mode 0600). None: this process's own account."""
        public, hub, proxy_api = ports
        self.workdir = workdir
        self.account = pwd.getpwnam(run_as) if run_as else None
        self.token = secrets.token_hex(16)
        self.api_url = f"http://{head_address()}:{hub}/hub/api"
        self.public_url = f"http://127.0.0.1:{public}"
        self.venv_bin = venv_bin
        self.proc = None
        self.log_path = log_path or ARTIFACTS / "hub.log"
        #: the hub's whole environment; a job must get none of it (test_unprivileged.py)
        self.environment = {"PATH": f"{venv_bin}:{VENV_BIN}:/usr/local/bin:/usr/bin:/bin:/usr/sbin:/sbin",
                            "LANG": "C.UTF-8", "HOME": str(workdir), "DKRZ_E2E_HUB": "only the hub has this",
                            "DKRZ_BUDGET_PERIOD_START": BUDGET_PERIOD_START}
        # The venv holds the package as `make env` installed it; DKRZ_E2E_HUB_PYTHONPATH (a checkout, readable by
        # the hub's account) puts that checkout's code before it in the hub (the jobs keep the venv's).
        if os.environ.get("DKRZ_E2E_HUB_PYTHONPATH"):
            self.environment["PYTHONPATH"] = os.environ["DKRZ_E2E_HUB_PYTHONPATH"]
        # DKRZ_E2E_JOB_PYTHONPATH (a checkout, readable by the test users) does the same in the jobs, for a change
        # of the job side (the wrapper, the lean start, the Lab extension's server side): a site template exports
        # it in the batch script (sudo passes no PYTHONPATH to sbatch, rightly).
        if os.environ.get("DKRZ_E2E_JOB_PYTHONPATH"):
            (workdir / "job-pythonpath.sh.j2").write_text(
                '{% extends "batch_script.sh.j2" %}{% block prologue %}{{ super() }}'
                f'export PYTHONPATH={shlex.quote(os.environ["DKRZ_E2E_JOB_PYTHONPATH"])}\n{{% endblock %}}')
            extra_config += (f"\nc.DKRZSpawner.template_paths = [{str(workdir)!r}]"
                             "\nc.DKRZSpawner.batch_script_template = 'job-pythonpath.sh.j2'\n")
        # The repository's config (it loads every drop-in beside it), copied: the hub's account may not be able
        # to read a clone under root's home.
        site = workdir / "site"
        shutil.copytree(REPO / "jupyterhub_config.d", site / "jupyterhub_config.d",
                        ignore=shutil.ignore_patterns("__pycache__"), dirs_exist_ok=True)
        shutil.copy(REPO / "jupyterhub_config.py", site)
        (workdir / "jupyterhub_config.py").write_text(config.format(
            repo_config=str(site / "jupyterhub_config.py"), public=public, hub=hub,
            proxy_api=proxy_api, token=self.token, head=head_address()) + extra_config)
        if self.account:
            os.chown(workdir, self.account.pw_uid, self.account.pw_gid)
            workdir.chmod(0o700)

    def start(self):
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        env = self.environment
        log = os.open(self.log_path, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        as_account = {}
        if self.account:  # the hub's own log, private to it; no groups but its own
            os.fchown(log, self.account.pw_uid, self.account.pw_gid)
            os.fchmod(log, 0o600)
            as_account = {"user": self.account.pw_uid, "group": self.account.pw_gid, "extra_groups": [],
                          "umask": 0o077}
        try:
            self.proc = subprocess.Popen([str(self.venv_bin / "jupyterhub"), "-f", "jupyterhub_config.py"],
                                         cwd=self.workdir, env=env, stdout=log, stderr=subprocess.STDOUT,
                                         start_new_session=True, **as_account)
        finally:
            os.close(log)
        wait_for(self._answers, timeout=60, what="the hub API")

    def _answers(self):
        if self.proc.poll() is not None:
            raise AssertionError(f"the hub exited with {self.proc.returncode}; see {self.log_path}")
        try:  # the hub API first; through the proxy only once the hub has added its routes (after its services)
            return (requests.get(self.api_url, timeout=2).ok
                    and requests.get(f"{self.public_url}/hub/api", timeout=2).ok)
        except requests.ConnectionError:
            return False

    def stop(self):
        if self.proc and self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGTERM)
            try:
                self.proc.wait(30)
            except subprocess.TimeoutExpired:
                os.killpg(self.proc.pid, signal.SIGKILL)
                self.proc.wait()
        self.proc = None
        self._stop_leftovers()

    def _stop_leftovers(self):
        """The proxy and the managed services run in sessions of their own, and a stopped hub leaves them
        running: the proxy (its pid file) and this hub's services (their API URL) go with it. Servers stay."""
        for entry in filter(str.isdigit, os.listdir("/proc")):
            try:
                cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
                mine = (b"dkrzspawner.services" in cmdline
                        and f"JUPYTERHUB_API_URL={self.api_url}".encode() in Path(f"/proc/{entry}/environ").read_bytes())
            except OSError:
                continue
            if mine:
                os.kill(int(entry), signal.SIGTERM)
        try:
            pid = int((self.workdir / "jupyterhub-proxy.pid").read_text().strip())
            if b"configurable-http-proxy" in Path(f"/proc/{pid}/cmdline").read_bytes():
                os.kill(pid, signal.SIGTERM)
        except (OSError, ValueError):
            pass

    def api(self, method, path, **kwargs) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.request(method, self.api_url + path, headers=headers, timeout=120, **kwargs)

    def server_path(self, user, name=""):
        return f"/users/{user}/servers/{name}" if name else f"/users/{user}/server"

    def spawn(self, user, name="", options=None) -> requests.Response:
        """POST a spawn with JupyterHub 6's body shape and return the response."""
        if self.api("GET", f"/users/{user}").status_code == 404:
            self.api("POST", f"/users/{user}")
        return self.api("POST", self.server_path(user, name), json={"user_options": options or {}})

    def servers(self, user) -> dict:
        response = self.api("GET", f"/users/{user}")
        return response.json().get("servers", {}) if response.ok else {}

    def server(self, user, name=""):
        return self.servers(user).get(name)

    def wait_ready(self, user, name="", timeout=120):
        def ready():
            server = self.server(user, name)
            if server and server.get("stopped"):
                raise AssertionError(f"{user}/{name} stopped while starting: {server}")
            return server if server and server.get("ready") else None
        return wait_for(ready, timeout=timeout, what=f"{user}/{name} ready")

    def stop_server(self, user, name="", wait=True):
        response = self.api("DELETE", self.server_path(user, name))
        assert response.status_code in (202, 204), response.text
        if wait:
            wait_for(lambda: self.server(user, name) is None, timeout=90, what=f"{user}/{name} stopped")

    def login(self, user) -> requests.Session:
        """A browser-like session of ``user`` (dummy authenticator: any password)."""
        session = requests.Session()
        session.get(f"{self.public_url}/hub/login", timeout=30)
        response = session.post(f"{self.public_url}/hub/login?next=/hub/home",
                                data={"username": user, "password": "x", "_xsrf": session.cookies.get("_xsrf")},
                                timeout=30)
        assert response.ok and "/hub/login" not in response.url, response.url
        return session

    def home(self, user) -> str:
        return self.login(user).get(f"{self.public_url}/hub/home", timeout=30).text

    def progress_messages(self, user, name="", until=None, timeout=60) -> list[str]:
        """Read the spawn's progress events (server-sent events) until one contains ``until``."""
        messages = []
        url = self.api_url + self.server_path(user, name) + "/progress"
        with requests.get(url, headers={"Authorization": f"token {self.token}"}, stream=True,
                          timeout=timeout) as response:
            deadline = time.monotonic() + timeout
            for line in response.iter_lines(decode_unicode=True):
                if line and line.startswith("data:"):
                    event = json.loads(line[5:])
                    messages.append(event.get("message", ""))
                    if until and until in messages[-1]:
                        break
                if time.monotonic() > deadline:
                    break
        return messages

    def user_token(self, user) -> str:
        response = self.api("POST", f"/users/{user}/tokens",
                            json={"scopes": [f"access:servers!user={user}"], "expires_in": 3600})
        assert response.status_code == 201, response.text
        return response.json()["token"]


#: the jobs the end-to-end tests make: the hub's servers and the tests' own helper jobs (jobs of the test users
#: with other names, such as the kernel tests' allocations, are none of their business)
E2E_JOB_NAMES = ("jupyterhub-", "e2e-")


def e2e_jobs() -> str:
    """``ID USER NAME STATE`` lines of the test users' queued or running jobs that the e2e tests made."""
    out = slurm("squeue", "-h", "-u", ",".join(USERS), "-o", "%i %u %j %T")
    return "\n".join(line for line in out.splitlines() if line.split()[2].startswith(E2E_JOB_NAMES))


#: one end-to-end session at a time on a machine: they share the cluster's users, and each checks that no job of
#: theirs is left behind (another checkout's run waits here instead of failing on this one's jobs)
SESSION_LOCK = Path("/tmp/dkrzspawner-e2e.lock")


def one_session_at_a_time():
    """An exclusive lock on :data:`SESSION_LOCK`, held until the returned file is closed."""
    lock = open(SESSION_LOCK, "a")
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        print(f"another end-to-end run holds {SESSION_LOCK}: waiting for it to end")
        fcntl.flock(lock, fcntl.LOCK_EX)
    return lock


@pytest.fixture(scope="session")
def hub(tmp_path_factory):
    require_slurm()
    lock = one_session_at_a_time()
    if not shutil.which("configurable-http-proxy", path=str(VENV_BIN)):
        pytest.fail("configurable-http-proxy is missing from the environment: run `make env`")
    stale = [line.split()[0] for line in e2e_jobs().splitlines()]
    if stale:  # left by an earlier, interrupted run: its hub is gone, so nobody else will cancel them
        print(f"cancelling stale jobs of the test users from an earlier run: {stale}")
        slurm("scancel", *stale, check=False)
    try:
        pwd.getpwnam(HUB_ACCOUNT)
    except KeyError:
        pytest.fail(f"the hub's account {HUB_ACCOUNT!r} is missing: run `make env`")
    # Not under pytest's own temporary folder: that one is private to root, and the hub must reach its own.
    workdir = Path(tempfile.mkdtemp(prefix="dkrz-e2e-hub-"))
    hub = Hub(workdir, run_as=HUB_ACCOUNT)
    try:
        hub.start()
        yield hub
        for user in USERS:  # servers are Slurm jobs: they would outlive the hub
            for name in list(hub.servers(user)):
                hub.stop_server(user, name)
    finally:
        hub.stop()
        shutil.rmtree(workdir, ignore_errors=True)
        lock.close()


@pytest.fixture(autouse=True)
def no_leftover_jobs(hub):
    """Every e2e test starts and ends with no job of the test users in the queue."""
    yield
    for user in USERS:
        for name in list(hub.servers(user)):
            hub.stop_server(user, name)

    # A cancelled job may stay COMPLETING for a few seconds while slurmd cleans up: that one is ending, not left.
    deadline = time.monotonic() + 30
    while (leftover := e2e_jobs()) and time.monotonic() < deadline:
        if any(not line.endswith("COMPLETING") for line in leftover.splitlines()):
            break
        time.sleep(1)
    assert not leftover, f"jobs left behind: {leftover}"
