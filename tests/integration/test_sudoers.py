"""The shipped sudoers drop-in, with the real sudo (issue 18 item 5): the hub's account may run exactly the command
lines the spawner builds, as the hub's users, and nothing a wildcard would have let through.

``sudo -n -l -u USER CMD ARGS`` asks sudo whether the rule allows that very command line, without running it.
``make env`` installs the drop-in as /etc/sudoers.d/dkrzspawner and makes the account ``jupyterhub``.
"""

from __future__ import annotations

import asyncio
import filecmp
import pwd
import subprocess
from pathlib import Path

import pytest

from dkrzspawner import slurm

SHIPPED = Path(__file__).resolve().parents[2] / "dkrzspawner" / "share" / "sudoers.d" / "dkrzspawner"
INSTALLED = Path("/etc/sudoers.d/dkrzspawner")
OUTPUT = "/home/alice/.jupyterhub-slurm-42.log"
TAIL = slurm.OUTPUT_TAIL_BYTES


@pytest.fixture(scope="module", autouse=True)
def installed():
    try:
        pwd.getpwnam("jupyterhub")
    except KeyError:
        pytest.fail("no account jupyterhub: `make env` makes it")
    if not INSTALLED.exists() or not filecmp.cmp(SHIPPED, INSTALLED, shallow=False):
        pytest.fail(f"{INSTALLED} is not the shipped {SHIPPED}: run `make env`")


def allowed(user: str, *argv: str) -> bool:
    done = subprocess.run(["runuser", "-u", "jupyterhub", "--", "sudo", "-n", "-l", "-u", user, "--", *argv],
                          capture_output=True, text=True, timeout=60)
    return done.returncode == 0


# What the spawner runs as the user (the argv it builds, see slurm.py, spawner.py, watcher.py)
ALLOWED = [
    ["/usr/bin/sbatch", "--parsable"],
    ["/usr/bin/sbatch", "--test-only"],
    ["/usr/bin/scancel", "4711"],
    ["/usr/bin/find", OUTPUT, "-maxdepth", "0", "-type", "f", "-printf", "%s"],
    ["/usr/bin/dd", f"if={OUTPUT}", "iflag=nofollow,nonblock,skip_bytes,count_bytes", "skip=0", f"count={TAIL}",
     f"bs={TAIL}", "status=none"],
    ["/usr/bin/squeue", "-h", "-t", "all", "-j", "11,12,13", "-o", slurm.SQUEUE_FORMAT],
    ["/usr/bin/sacct", "-X", "-n", "-P", "-j", "11,12", "-o", slurm.SACCT_FORMAT],
]

# Each one an attack that the old wildcards (``scancel [0-9]*``, ``tail -n [0-9]* /*``, ``squeue *``,
# ``sacct *``) let through, or another way around the rule.
REFUSED = [
    ["/usr/bin/scancel", "1", "--user=alice"],
    ["/usr/bin/scancel", "1", "2"],
    ["/usr/bin/scancel", "--signal=KILL", "1"],
    ["/usr/bin/tail", "-n", "1", "-f", "/home/alice/x"],
    ["/usr/bin/sacct", "--batch-script", "-j", "5"],
    ["/usr/bin/sacct", "-X", "-n", "-P", "-j", "5", "-o", slurm.SACCT_FORMAT, "--batch-script"],
    ["/usr/bin/squeue", "-h", "-t", "all", "-j", "1", "-o", slurm.SQUEUE_FORMAT, "-u", "bob"],
    ["/usr/bin/squeue", "-h", "-t", "all", "-j", "1", "-o", "%iX%T|%B|%r|%S|%e|%P|%u"],
    ["/usr/bin/squeue", "--json"],
    ["/usr/bin/sbatch", "--parsable", "--wrap", "id"],
    ["/usr/bin/sbatch", "--test-only", "--wrap", "id"],
    ["/usr/bin/find", OUTPUT, "-maxdepth", "0", "-type", "f", "-printf", "%s", "-delete"],
    ["/usr/bin/find", "/home/alice", "-exec", "id", ";"],
    ["/usr/bin/dd", f"if={OUTPUT}", "of=/home/alice/.bashrc", "status=none"],
    ["/usr/bin/dd", f"if={OUTPUT}", "iflag=nofollow,nonblock,skip_bytes,count_bytes", "skip=0", "count=999999999",
     f"bs={TAIL}", "status=none"],
    ["/usr/bin/dd", f"if={OUTPUT} of=/tmp/x", "iflag=nofollow,nonblock,skip_bytes,count_bytes", "skip=0",
     f"count={TAIL}", f"bs={TAIL}", "status=none"],
    ["/bin/sh", "-c", "id"],
]


@pytest.mark.parametrize("argv", ALLOWED, ids=lambda argv: " ".join(argv)[:60])
def test_what_the_spawner_runs_is_allowed(argv):
    assert allowed("alice", *argv)


@pytest.mark.parametrize("argv", REFUSED, ids=lambda argv: " ".join(argv)[:60])
def test_everything_else_is_refused(argv):
    assert not allowed("alice", *argv)


@pytest.mark.parametrize("user", ["root", "jupyterhub", "nobody"])
def test_only_the_hubs_users_never_root(user):
    assert not allowed(user, "/usr/bin/scancel", "4711")


def test_the_spawners_own_argv_for_the_output_matches_the_rule():
    """The argv output_tail builds is the one the rule allows (the test above spells it out by hand)."""
    calls = []

    class Recorder:
        async def run(self, argv, *, user=None, **kwargs):
            calls.append(list(argv))
            return slurm.Result("123", "", 0.0)

    asyncio.run(slurm.output_tail(Recorder(), "alice", OUTPUT, 5))
    find, dd = calls
    assert allowed("alice", "/usr/bin/" + find[0], *find[1:])
    assert allowed("alice", "/usr/bin/" + dd[0], *dd[1:])
