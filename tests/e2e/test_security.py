"""Attacks of an ordinary user on the real hub and cluster (issue 18), each shown to fail.

1. A user's job output cannot freeze the hub: alice's own Jupyter config (``~/.jupyter/jupyter_server_config.py``, which her server runs as her) turns the
job's output file into 1 GiB without a line break, or into a link to /dev/zero, and fails the server. The hub
then reads the end of that file for the spawn error: it must read at most 64 KiB of it, never follow the link,
stay responsive for everyone meanwhile, and keep its log free of the file.

2. A hub user whose name is no Unix name (``alice,carol``: sacctmgr would read two users) gets no Slurm command
run for it, on the spawn page, through REST and in the accounts service, and sees nobody's accounts.
"""

from __future__ import annotations

import subprocess
import threading
import time
import urllib.parse
from pathlib import Path

import pytest
import requests

from tests.slurmtools import slurm, wait_for

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
        if b"jupyterhub-singleuser" in cmdline and b"dkrzspawner.singleuser" not in cmdline \
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
