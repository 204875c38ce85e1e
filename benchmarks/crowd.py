"""A thousand users (issue 20, item 2): what the hub costs Slurm and itself when many users come, and stay.

For each size N (``--crowd-users``), on one dkrzspawner hub (the repository's code, see :class:`harness.BenchHub`):

- **forms**: N distinct users open the spawn form within ``form_window`` seconds (evenly spread), right after the
  hub started (caches cold). Each is a browser's ``GET /hub/spawn`` through the proxy, with that user's login
  cookie (the users log in first, through the dummy authenticator's login form, not timed); the render time is
  the hub's own (its request log: the time the hub spent on the page, the options form included), the
  client's time beside it. The form shows each user's budget (``show_budgets``), so those queries count too.
  Meanwhile: the hub's Slurm commands (its DEBUG log), slurmctld's RPCs (``sdiag``) and slurmdbd's
  (``sacctmgr show stats``), per minute. Both RPC counts are the whole cluster's, read before and after (never
  reset: other work on the cluster would lose its counts; a reset by someone else meanwhile is flagged).
- **servers**: N running servers (at most ``most_servers``), one per user: one-core stand-in jobs
  (:func:`harness.start_sleepers`), seeded into the hub's database as :func:`scenarios.seeded` does; the hub
  restarts onto them and runs ``window`` seconds. Then: one watcher cycle's duration (the hub's
  ``dkrzspawner_watcher_cycle_duration_seconds``) and the hub process's CPU seconds (``/proc/PID/stat``) per
  cycle.

The users ``crowd0001``... are made for the measurement and removed afterwards, whatever happened: Unix users
without a home, and their Slurm associations (account ``bb1234``) in one ``sacctmgr`` call each way.
"""

from __future__ import annotations

import concurrent.futures
import os
import re
import statistics
import subprocess
import tempfile
import time
from pathlib import Path

import requests

from benchmarks import harness
from tests.slurmtools import slurm, wait_for

ACCOUNT = "bb1234"
PREFIX = "crowd"
#: JupyterHub's request log line of one spawn page: the user and the milliseconds the hub spent on it
PAGE_LINE = re.compile(r" 200 GET /hub/spawn \((\w+)@[^)]*\) ([0-9.]+)ms")
CYCLE_METRIC = "dkrzspawner_watcher_cycle_duration_seconds"


def names(count: int) -> list[str]:
    return [f"{PREFIX}{index:04d}" for index in range(1, count + 1)]


# -- the users: made idempotently, removed afterwards -----------------------------------------------------------
def add_users(users: list[str]):
    """Unix users without a home, and one association each in ``bb1234`` (one ``sacctmgr`` for all)."""
    for user in users:
        if subprocess.run(["id", "-u", user], capture_output=True).returncode != 0:
            slurm("useradd", "-M", "-N", "-s", "/usr/sbin/nologin", user)
    known = set(slurm("sacctmgr", "-n", "-P", "show", "user", "format=user").split())
    missing = [user for user in users if user not in known]
    if missing:
        slurm("sacctmgr", "-i", "add", "user", ",".join(missing), f"account={ACCOUNT}", f"defaultaccount={ACCOUNT}")


def remove_users():
    """Every ``crowd`` user's jobs, associations and Unix account (also those an earlier, broken run left).

    Each Slurm step is tried again while slurmctld or slurmdbd is slow to answer (a thousand jobs ending at once),
    so one timeout does not leave a thousand users behind."""
    crowd = re.compile(PREFIX + r"\d{4}")
    known = [user for user in harness.patiently(slurm, "sacctmgr", "-n", "-P", "show", "user", "format=user").split()
             if crowd.fullmatch(user)]
    queue = harness.patiently(slurm, "squeue", "-h", "-o", "%i %u").split("\n")
    jobs = [line.split()[0] for line in queue if line.strip() and crowd.fullmatch(line.split()[1])]
    harness.patiently(harness.cancel_jobs, jobs)
    if known:
        harness.patiently(slurm, "sacctmgr", "-i", "delete", "user", ",".join(known))
    for line in Path("/etc/passwd").read_text().splitlines():
        user = line.split(":", 1)[0]
        if crowd.fullmatch(user):
            slurm("userdel", user)


# -- what the hub process costs ---------------------------------------------------------------------------------
def cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def cycles(hub: harness.BenchHub) -> tuple[int, float]:
    """The watcher's cycles so far and their seconds in total (the hub's metrics)."""
    text = requests.get(hub.api_url.removesuffix("/api") + "/metrics", timeout=60,
                        headers={"Authorization": f"token {hub.token}"}).text
    found = dict(re.findall(rf"^{CYCLE_METRIC}_(count|sum) ([0-9.e+-]+)$", text, re.M))
    return int(float(found.get("count", 0))), float(found.get("sum", 0))


def difference(after: dict[str, int], before: dict[str, int]) -> dict[str, int]:
    """RPC counts between two readings, by type; a type whose count fell was reset by someone else: left out."""
    return {name: count - before.get(name, 0) for name, count in after.items() if count >= before.get(name, 0)}


def was_reset(after: dict[str, int], before: dict[str, int]) -> bool:
    """Whether someone reset the counts between two readings (then the difference undercounts)."""
    return any(after.get(name, 0) < count for name, count in before.items())


def _per_minute(counts: dict[str, int], seconds: float) -> float:
    return round(sum(counts.values()) * 60 / seconds, 1)


# -- the measurement ------------------------------------------------------------------------------------------
def logged_in(hub: harness.BenchHub, user: str) -> requests.Session:
    """A browser's session of ``user``: the login page's form posted (the dummy authenticator), cookies kept."""
    browser = requests.Session()
    browser.get(f"{hub.public_url}/hub/login", timeout=60).raise_for_status()
    answer = browser.post(f"{hub.public_url}/hub/login", allow_redirects=False, timeout=60,
                          data={"username": user, "password": "crowd", "_xsrf": browser.cookies.get("_xsrf", "")})
    if answer.status_code != 302:
        raise AssertionError(f"{user} could not log in: {answer.status_code}")
    return browser


def forms(hub: harness.BenchHub, users: list[str], window: float) -> dict:
    """Every user (logged in beforehand) opens the spawn form once, spread evenly over ``window`` seconds."""
    with concurrent.futures.ThreadPoolExecutor(max_workers=8) as pool:
        browsers = dict(zip(users, pool.map(lambda user: logged_in(hub, user), users)))
    ctld, dbd, offset = harness.sdiag_rpcs(), harness.slurmdbd_rpcs(), hub.log_offset()
    started = time.monotonic()

    def visit(index: int, user: str):
        time.sleep(max(0.0, started + index * window / len(users) - time.monotonic()))
        begun = time.monotonic()
        page = browsers[user].get(f"{hub.public_url}/hub/spawn", allow_redirects=False, timeout=120)
        ok = page.status_code == 200 and 'id="dkrz-form"' in page.text
        return (time.monotonic() - begun) * 1000, ok

    with concurrent.futures.ThreadPoolExecutor(max_workers=64) as pool:
        visits = list(pool.map(visit, range(len(users)), users))
    elapsed = max(time.monotonic() - started, window)
    ctld_after, dbd_after = harness.sdiag_rpcs(), harness.slurmdbd_rpcs()
    reset = was_reset(ctld_after, ctld) or was_reset(dbd_after, dbd)
    ctld, dbd = difference(ctld_after, ctld), difference(dbd_after, dbd)
    commands = hub.slurm_commands(offset)
    rendered = [float(ms) for user, ms in PAGE_LINE.findall(hub.log_since(offset)) if user in browsers]
    return {
        "users": len(users), "window_s": round(elapsed, 1),
        "forms_shown": sum(1 for _, ok in visits if ok),
        "hub_ms": quantiles(rendered), "client_ms": quantiles([ms for ms, _ in visits]),
        "slurm_commands": commands, "slurm_commands_per_minute": _per_minute(commands, elapsed),
        "sacctmgr_per_minute": round(commands.get("sacctmgr", 0) * 60 / elapsed, 1),
        "slurmctld_rpcs_per_minute": _per_minute(ctld, elapsed), "slurmctld_rpcs": ctld,
        "slurmdbd_rpcs_per_minute": _per_minute(dbd, elapsed), "slurmdbd_rpcs": dbd,
        "rpc_counts_reset_meanwhile": reset,
    }


def servers(hub: harness.BenchHub, users: list[str], window: float, responder: harness.Responder) -> dict:
    """A running server for each of ``users``; the hub restarts onto them, then runs ``window`` seconds."""
    hub.stop()
    sleepers = harness.start_sleepers(len(users), users)
    try:
        harness.seed_servers(hub, sleepers, responder.port)
        hub.start()
        wait_for(lambda: ready(hub) == len(users), timeout=600, interval=0.5, what=f"{len(users)} servers ready")
        (count, total), cpu, offset = cycles(hub), cpu_seconds(hub.proc.pid), hub.log_offset()
        time.sleep(window)
        (count_after, total_after), cpu_after = cycles(hub), cpu_seconds(hub.proc.pid)
        commands = hub.slurm_commands(offset)
        still_ready = ready(hub)
    finally:
        hub.stop()
        harness.cancel_jobs([s.job_id for s in sleepers])
    done = max(count_after - count, 1)
    return {
        "servers": len(users), "window_s": window, "watcher_cycles": count_after - count,
        "cycle_s": round((total_after - total) / done, 4),
        "hub_cpu_s_per_cycle": round((cpu_after - cpu) / done, 4),
        "hub_cpu_percent": round((cpu_after - cpu) * 100 / window, 1),
        "slurm_commands": commands, "servers_still_ready": still_ready,
    }


def ready(hub: harness.BenchHub, page: int = 200) -> int:
    """Servers ready in the hub's API, page by page (JupyterHub answers at most 200 users at a time)."""
    count, offset = 0, 0
    while True:
        users = hub.api("GET", "/users", params={"state": "ready", "offset": offset, "limit": page}).json()
        count += sum(1 for user in users for server in (user.get("servers") or {}).values() if server.get("ready"))
        if len(users) < page:
            return count
        offset += len(users)


def measure(count: int, form_window: float, window: float, interval: float, responder: harness.Responder,
            most_servers: int | None = None) -> dict:
    """Both parts for ``count`` users (servers for the first ``most_servers`` of them, None: all); the users are
    gone again afterwards."""
    users = names(count)
    config = f"\nc.Authenticator.allowed_users |= {set(users)!r}\nc.DKRZSpawner.show_budgets = True\n"
    hub = harness.BenchHub("dkrz", Path(tempfile.mkdtemp(prefix="dkrz-bench-crowd-")), interval, config)
    try:
        add_users(users)
        hub.start()
        hub.api("POST", "/users", json={"usernames": users})
        return {"users": count, "interval_s": interval, "form": forms(hub, users, form_window),
                "servers": servers(hub, users[:most_servers], window, responder)}
    finally:
        hub.stop()
        remove_users()


def run(sizes: list[int], form_window: float, window: float, interval: float,
        most_servers: int | None = None) -> list[dict]:
    """:func:`measure` for each number of users in ``sizes``."""
    responder = harness.Responder()
    try:
        return [measure(count, form_window, window, interval, responder, most_servers) for count in sizes]
    finally:
        responder.close()


def quantiles(values: list[float]) -> dict:
    """p50, p95 and max in milliseconds (None without values)."""
    if not values:
        return {"n": 0, "p50": None, "p95": None, "max": None}
    ordered = sorted(values)
    p95 = statistics.quantiles(ordered, n=20)[-1] if len(ordered) > 1 else ordered[0]
    return {"n": len(ordered), "p50": round(statistics.median(ordered), 1), "p95": round(p95, 1),
            "max": round(ordered[-1], 1)}
