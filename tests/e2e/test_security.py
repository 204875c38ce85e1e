"""Attacks of an ordinary user on the real hub and cluster (issue 18), each shown to fail.

1. A user's job output cannot freeze the hub: alice's own Jupyter config (``~/.jupyter/jupyter_server_config.py``, which her server runs as her) turns the
job's output file into 1 GiB without a line break, or into a link to /dev/zero, and fails the server. The hub
then reads the end of that file for the spawn error: it must read at most 64 KiB of it, never follow the link,
stay responsive for everyone meanwhile, and keep its log free of the file.

2. A hub user whose name is no Unix name (``alice,carol``: sacctmgr would read two users) gets no Slurm command
run for it, on the spawn page, through REST and in the accounts service, and sees nobody's accounts.

3. A server that dies loses its route at once; with ``internal_ssl`` (a second hub) another user's process that
binds the freed port never gets the user's requests, and the server's key is neither left on the hub nor seen by
the server's environment.

4. With slurmdbd stopped (a third hub, whose policy allows two accounts), a request without an account is refused
rather than charged to Slurm's default account.
"""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import threading
import time
import urllib.parse
from contextlib import contextmanager
from pathlib import Path

import pytest
import requests

from tests.slurmtools import head_address, slurm, wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.slurm]

# Acts only in alice's servers named attack-*; removed again by the fixture.
ATTACK = '''
import os, sys
name = os.environ.get("JUPYTERHUB_SERVER_NAME", "")
if name.startswith("attack-"):
    out = os.path.expanduser("~/.jupyterhub-slurm-%s.log" % os.environ["SLURM_JOB_ID"])
    if name == "attack-huge":
        with open(out, "r+b") as f:
            f.truncate(1 << 30)      # 1 GiB of NUL bytes, no line break (sparse: costs no disk)
    else:
        os.remove(out)
        os.symlink("/dev/zero", out)
    sys.exit(3)
'''


@pytest.fixture
def alice_attacks():
    home = Path(slurm("getent", "passwd", "alice").split(":")[5])
    config = home / ".jupyter" / "jupyter_server_config.py"
    assert not config.exists(), "alice has a Jupyter config of her own: the test would overwrite it"
    subprocess.run(["runuser", "-u", "alice", "--", "/bin/sh", "-c", f"mkdir -p {config.parent} && cat > {config}"],
                   input=ATTACK, text=True, check=True, timeout=60)
    yield home
    config.unlink()


def responsive_while(hub, action) -> list[float]:
    """Run ``action`` while another client asks the hub every 0.2 s; return those requests' times."""
    times, stop = [], threading.Event()

    def ask():
        while not stop.is_set():
            started = time.monotonic()
            requests.get(f"{hub.api_url}/", timeout=60)
            times.append(time.monotonic() - started)
            time.sleep(0.2)

    asker = threading.Thread(target=ask)
    asker.start()
    try:
        action()
    finally:
        stop.set()
        asker.join()
    return times


@pytest.mark.parametrize("name", ["attack-huge", "attack-devzero"])
def test_a_job_output_attack_neither_freezes_the_hub_nor_reaches_its_log(hub, alice_attacks, name):
    log_before = hub.log_path.stat().st_size
    message = {}

    def spawn_and_fail():
        response = hub.spawn("alice", name, options={"preset": "shared", "cores": 1})
        if response.status_code == 202:
            wait_for(lambda: (hub.server("alice", name) or {}).get("pending") is None, timeout=180,
                     what="the attacking spawn to end")
            message["text"] = hub.api("GET", "/users/alice").text
        else:
            message["text"] = response.json()["message"]

    times = responsive_while(hub, spawn_and_fail)
    assert "before its Jupyter server started" in message["text"], message["text"]
    assert "did not start within" not in message["text"]
    grown = hub.log_path.stat().st_size - log_before
    assert grown < 1_000_000, f"the hub's log grew by {grown} bytes: the job's output reached it"
    with open(hub.log_path, "rb") as f:
        f.seek(log_before)
        log = f.read().decode(errors="replace")
    assert "Event loop was unresponsive" not in log
    # every other request was answered while the hub dealt with the attack (no timing rule: they all came back)
    assert times, "the other client got no answer at all"
    print(f"{name}: {len(times)} requests of another client answered meanwhile, slowest {max(times):.3f} s; "
          f"hub log grew {grown} bytes")
    hub.api("DELETE", f"/users/alice/servers/{name}", json={"remove": True})


def test_a_user_named_alice_comma_carol_sees_no_accounts_and_starts_nothing(hub):
    name = "alice,carol"
    quoted = urllib.parse.quote(name, safe="")
    created = hub.api("POST", f"/users/{quoted}")
    assert created.status_code in (201, 409), created.text
    token = hub.api("POST", f"/users/{quoted}/tokens", json={"expires_in": 600}).json()["token"]
    auth = {"Authorization": f"token {token}"}
    unix_name = "'alice,carol' is not a Unix user name"

    # pages take a login, not a token (the admin made the user: the authenticator lets existing users in)
    form = hub.login(name).get(f"{hub.public_url}/hub/spawn/{quoted}", timeout=60)
    assert unix_name in form.text.replace("&#x27;", "'"), form.text[-2000:]
    assert "bb1234" not in form.text and "ab0000" not in form.text, "nobody's accounts are shown"
    assert 'id="dkrz-preset' not in form.text, "no form for a name Slurm cannot be asked about"

    spawn = requests.post(f"{hub.api_url}/users/{quoted}/servers/x", headers=auth, json={"user_options": {}},
                          timeout=60)
    assert spawn.status_code == 403 and unix_name in spawn.json()["message"]

    accounts = requests.get(f"{hub.public_url}/services/accounts/api/accounts", headers=auth, timeout=60)
    assert accounts.status_code == 403 and unix_name in accounts.json()["message"]
    hub.api("DELETE", f"/users/{quoted}")


def server_process(user: str, server_name: str) -> int:
    """The pid of ``user``'s Jupyter server process of ``server_name`` (not the job-side wrapper around it)."""
    uid = int(slurm("id", "-u", user).strip())
    for proc in Path("/proc").iterdir():
        try:
            if not proc.name.isdigit() or proc.stat().st_uid != uid:
                continue
            cmdline = (proc / "cmdline").read_bytes()
            environ = (proc / "environ").read_bytes().split(b"\0")
        except OSError:
            continue
        if b"jupyterhub-singleuser" in cmdline and b"dkrzspawner-singleuser" not in cmdline \
                and f"JUPYTERHUB_SERVER_NAME={server_name}".encode() in environ:
            return int(proc.name)
    raise AssertionError(f"no server process of {user}/{server_name}")


def test_a_server_that_dies_loses_its_route_at_once_not_at_the_next_poll(hub):
    """The job side tells the hub when its server ends; the hub asks Slurm at once and drops the route, so a
    process of another user that binds the freed port is not reached through the stale route for long."""
    import os
    import signal
    name = "dies"
    assert hub.spawn("alice", name, options={"preset": "shared", "cores": 1}).status_code in (201, 202)
    hub.wait_ready("alice", name)
    log_before = hub.log_path.stat().st_size
    started = time.monotonic()
    os.kill(server_process("alice", name), signal.SIGKILL)
    wait_for(lambda: hub.server("alice", name) is None, timeout=60, what="the dead server to be stopped")
    seconds = time.monotonic() - started
    with open(hub.log_path, "rb") as f:
        f.seek(log_before)
        log = f.read().decode(errors="replace")
    assert "the job side says the server has ended" in log, "the hub learnt it from the job, not from a poll"
    print(f"server killed -> route dropped and server stopped after {seconds:.1f} s")


# -- internal_ssl: the route only ever reaches the user's own server ------------------------------------------
SSL_PORTS = (18200, 18281, 18201)


@contextmanager
def another_hub(hub, name: str, extra: str, ports, through_proxy: bool = False):
    """A second hub beside the session's, with ``extra`` config, its own ports, working dir and log; its users'
    servers stopped at the end. ``through_proxy``: its API is used through its proxy."""
    from tests.e2e.conftest import HUB_ACCOUNT, USERS, Hub
    workdir = Path(tempfile.mkdtemp(prefix=f"dkrz-e2e-{name}-"))
    started = Hub(workdir, extra, ports=ports, run_as=HUB_ACCOUNT, log_path=hub.log_path.with_name(f"{name}.log"))
    if through_proxy:
        started.api_url = f"{started.public_url}/hub/api"
    try:
        started.start()
        yield started
        for user in USERS:
            for server in list(started.servers(user)):
                started.stop_server(user, server)
    finally:
        started.stop()
        shutil.rmtree(workdir, ignore_errors=True)


@pytest.fixture(scope="module")
def ssl_hub(hub):
    """A hub with ``c.JupyterHub.internal_ssl = True`` (its API reached through its proxy: the hub's own port
    wants a client certificate)."""
    proxy_api = SSL_PORTS[2]
    # the hub's own certificate must name the address the jobs on the nodes (and the proxy) reach it at
    extra = ("c.JupyterHub.internal_ssl = True\n"
             f'c.JupyterHub.trusted_alt_names = ["IP:{head_address()}"]\n'
             f'c.ConfigurableHTTPProxy.api_url = "https://127.0.0.1:{proxy_api}"\n')
    with another_hub(hub, "sslhub", extra, SSL_PORTS, through_proxy=True) as started:
        yield started


def test_with_internal_ssl_a_process_on_the_freed_port_never_gets_the_users_requests(ssl_hub):
    import os
    import signal
    name = "tls"
    assert ssl_hub.spawn("alice", name, options={"preset": "shared", "cores": 1}).status_code in (201, 202)
    server = ssl_hub.wait_ready("alice", name)
    assert server["url"] == f"/user/alice/{name}/"
    token = ssl_hub.user_token("alice")
    through_proxy = f"{ssl_hub.public_url}/user/alice/{name}/api/status"
    assert requests.get(through_proxy, headers={"Authorization": f"token {token}"}, timeout=30).status_code == 200
    log = ssl_hub.log_path.read_text(errors="replace")
    port = int(re.findall(rf"/user/alice/{name}/ => https://[^:]+:(\d+)", log)[-1])

    # the key: not left on the hub, not in the server's environment, in a folder only alice can read
    pid = server_process("alice", name)
    assert not list(ssl_hub.workdir.glob("internal-ssl/user-alice*/*.key")), "the hub keeps no copy of the key"
    environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{pid}/environ").read_bytes().split(b"\0") if item)
    assert not any(key.startswith(b"DKRZSPAWNER_SSL") for key in environ), "the PEM texts never reach the server"
    keyfile = Path(environ[b"JUPYTERHUB_SSL_KEYFILE"].decode())
    assert keyfile.stat().st_mode & 0o777 == 0o600 and keyfile.parent.stat().st_mode & 0o777 == 0o700
    assert keyfile.stat().st_uid == int(slurm("id", "-u", "alice"))

    # bob's process binds alice's port as soon as her server is gone, and answers with a page of his own
    impostor_code = ("import http.server, socket, sys, time\n"
                     "class H(http.server.BaseHTTPRequestHandler):\n"
                     "    def do_GET(self):\n"
                     "        self.send_response(200); self.end_headers(); self.wfile.write(b'BOBS PAGE')\n"
                     "    def log_message(self, *a): pass\n"
                     "deadline = time.time() + 60\n"
                     "while True:\n"
                     "    try:\n"
                     f"        s = http.server.HTTPServer(('0.0.0.0', {port}), H); break\n"
                     "    except OSError:\n"
                     "        if time.time() > deadline: sys.exit(1)\n"
                     "        time.sleep(0.005)\n"
                     "s.timeout = 0.5\n"
                     "end = time.time() + 20\n"
                     "while time.time() < end: s.handle_request()\n")
    impostor = subprocess.Popen(["sudo", "-n", "-u", "bob", "/usr/bin/python3", "-c", impostor_code], cwd="/tmp")
    try:
        os.kill(pid, signal.SIGKILL)
        answers = []
        deadline = time.monotonic() + 15
        while time.monotonic() < deadline:
            try:
                response = requests.get(through_proxy, headers={"Authorization": f"token {token}"}, timeout=10,
                                        allow_redirects=False)
                answers.append((response.status_code, response.text[:200]))
            except requests.RequestException as exc:
                answers.append((0, str(exc)[:200]))
            time.sleep(0.05)
        # the attack was real: bob's process holds alice's old port and answers there
        assert requests.get(f"http://127.0.0.1:{port}/", timeout=10).text == "BOBS PAGE"
        assert answers and not any("BOBS PAGE" in text for _, text in answers), answers[:5]
        wait_for(lambda: ssl_hub.server("alice", name) is None, timeout=60, what="the dead server to be stopped")
        print(f"internal_ssl: {len(answers)} requests to alice's URL after her server died, none reached bob's "
              f"process (answers: {sorted({code for code, _ in answers})})")
    finally:
        impostor.kill()
        impostor.wait()


# -- the policy's accounts fail closed when slurmdbd does not answer (issue 18 item 4) ------------------------
@pytest.fixture(scope="module")
def accounts_hub(hub):
    """A hub whose policy lets everyone charge only ab0000 or bb1234, asking Slurm afresh each time, with a short
    Slurm timeout (so that a stopped slurmdbd shows quickly)."""
    extra = ('c.DKRZSpawner.policy = {"default": {"accounts": ["ab0000", "bb1234"]}}\n'
             "c.DKRZSpawner.cluster_cache_ttl = 0\nc.DKRZSpawner.slurm_timeout = 3\n")
    with another_hub(hub, "accountshub", extra, (18300, 18381, 18301)) as started:
        yield started


def test_without_slurmdbd_no_job_is_charged_to_an_account_the_policy_does_not_allow(accounts_hub):
    import os
    import signal
    dbd = int(slurm("pgrep", "-o", "slurmdbd").strip())
    since = time.strftime("%Y-%m-%dT%H:%M:%S", time.localtime(time.time() - 2))
    os.kill(dbd, signal.SIGSTOP)  # sacctmgr gets no answer: which accounts carol has is unknown
    try:
        refused = accounts_hub.spawn("carol", "noacct", options={"preset": "shared"})
        chosen = accounts_hub.spawn("carol", "chosen", options={"preset": "shared", "account": "ab0000"})
    finally:
        os.kill(dbd, signal.SIGCONT)
    assert refused.status_code == 400, refused.text
    assert refused.json()["message"] == ("Account: Slurm did not say which accounts you have, and this hub lets "
                                         "you charge only these: ab0000, bb1234; choose one, or try again in a "
                                         "minute.")
    assert chosen.status_code in (201, 202), chosen.text
    job_id = accounts_hub.wait_ready("carol", "chosen")["state"]["job_id"]
    assert slurm("squeue", "-h", "-j", str(job_id), "-o", "%a").strip() == "ab0000", "the account asked for"
    names = slurm("sacct", "-X", "-n", "-P", "-u", "carol", "-S", since, "-o", "JobName").split()
    assert "jupyterhub-noacct" not in names, "a refused request makes no job"
    accounts_hub.stop_server("carol", "chosen")
