"""A site file with presets that are not DKRZ's, through the real local Slurm, as alice.

The site file is the one a hub passes to its jobs (``DKRZSPAWNER_SITE_CONFIG``): ``dkrz-kernel create`` and the
kernel provisioner both go by it. Its preset ``tiny`` (partition prepost, 1 core, 1000M per core) makes a kernel
that starts in Slurm and runs code; DKRZ's ``shared``, which the site does not have, is refused by both; the
group policy applies to alice's real Unix groups. Alice runs the driver of ``test_kernels_slurm.py``.
"""

from __future__ import annotations

import grp
import json
import pwd
from pathlib import Path

import pytest

from tests.integration.test_kernels_slurm import PYTHON, RUN, USER, as_alice, gone, kernel_json, scratch  # noqa: F401
from tests.slurmtools import slurm, wait_for

pytestmark = pytest.mark.timeout(600)
DRIVER = Path(__file__).resolve().parent / "test_kernels_slurm.py"
SITE = """\
[presets.tiny]
display_name = "Tiny"
description = "One core and 1000M on prepost."
partition = "prepost"
cores = [1]
memory_per_core = "1000M"
runtime = "00:10:00"
max_runtime = "00:30:00"

[presets.small]
display_name = "Small"
partition = "shared"
cores = [1]
memory_per_core = "500M"

# alice's own (primary) Unix group: presets only, and only tiny
[policy.groups.{group}]
presets = ["tiny"]
partitions = []
"""


@pytest.fixture(scope="module")
def site(scratch):  # noqa: F811 - the fixture imported above
    path = scratch / "site.toml"
    path.write_text(SITE.format(group=grp.getgrgid(pwd.getpwnam(USER).pw_gid).gr_name))
    path.chmod(0o644)
    return path


def as_alice_with_site(scratch, site, *argv, check=True):  # noqa: F811
    return as_alice(scratch, "env", f"DKRZSPAWNER_SITE_CONFIG={site}", *argv, check=check)


def kernel_cli(scratch, site, *argv, check=True):  # noqa: F811
    return as_alice_with_site(scratch, site, PYTHON, "-m", "dkrzspawner.kernels.cli", *argv, check=check)


def drive(scratch, site, *argv) -> dict:  # noqa: F811
    done = as_alice_with_site(scratch, site, PYTHON, str(DRIVER), *argv)
    lines = [line for line in done.stdout.splitlines() if line.startswith("RESULT ")]
    assert lines, f"no result:\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    return json.loads(lines[-1][len("RESULT "):])


def test_a_site_preset_makes_a_kernel_that_runs_in_slurm(scratch, site):  # noqa: F811
    name = f"{RUN}-tiny"
    done = kernel_cli(scratch, site, "create", "--template", "python-slurm", "--name", name, "--preset", "tiny")
    assert f"Created kernel {name}" in done.stdout
    assert kernel_json(scratch, name)["metadata"]["kernel_provisioner"]["config"] == {"preset": "tiny"}
    found = drive(scratch, site, "env_kernel", name)
    job_id = str(found["job_id"])
    assert found["provisioner"] == "SlurmProvisioner" and found["found"]["env"]["SLURM_JOB_ID"] == job_id
    wait_for(lambda: gone(job_id), timeout=120, what=f"allocation {job_id} to end with its kernel")

    def accounted():  # slurmdbd has the whole record (a fresh one can still lack the partition)
        row = slurm("sacct", "-X", "-n", "-P", "-j", job_id, "-o", "User,Partition,AllocCPUS,ReqMem,Timelimit")
        return row.strip().split("|") if row.split("|")[1:2] != [""] and row.strip() else None

    assert wait_for(accounted, timeout=120, what=f"sacct's record of job {job_id}") == \
        [USER, "prepost", "1", "1000M", "00:10:00"]


@pytest.mark.parametrize("argv, message", [  # the hub's sentences; alice's group may use tiny alone
    (["--preset", "shared"], "Preset 'shared' does not exist; choose one of tiny."),
    (["--preset", "small"], "Preset small is not open to you; yours are tiny."),
    (["--partition", "shared", "--cores", "1"], "Partition shared is not open to you; use a preset."),
])
def test_what_the_site_does_not_offer_alice_is_refused(scratch, site, argv, message):  # noqa: F811
    name = f"{RUN}-refused"
    done = kernel_cli(scratch, site, "create", "--template", "python-slurm", "--name", name, *argv, check=False)
    assert done.returncode == 2 and done.stderr == f"dkrz-kernel: error: {message}\n"
    assert not (scratch / "alice-data" / "kernels" / name).exists()


def test_the_provisioner_refuses_a_dkrz_preset_the_site_does_not_have(scratch, site):  # noqa: F811
    name = f"{RUN}-dkrz"
    folder = scratch / "alice-data" / "kernels" / name
    as_alice(scratch, PYTHON, "-m", "dkrzspawner.kernels.cli", "create", "--template", "python-slurm", "--name", name,
             "--preset", "shared", "--no-check")  # the built-in presets: no site file in this environment
    assert kernel_json(scratch, name)["metadata"]["kernel_provisioner"]["config"] == {"preset": "shared"}
    found = drive(scratch, site, "bad_spec", name)
    assert found["calls"] == [], "refused before any Slurm call"
    assert "Preset 'shared' does not exist; choose one of tiny." in found["error"]
    assert folder.exists()
