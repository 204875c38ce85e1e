"""Every benchmark runs, at a tiny size, on the real cluster and real hubs: figures are written, none judged."""

from __future__ import annotations

import json

import pytest

from benchmarks import __main__ as bench
from benchmarks import harness
from tests.slurmtools import require_slurm

BATCHSPAWNER_MISSING = (
    f"batchspawner's benchmark environment {harness.VENVS['batchspawner']} does not exist; `make bench` "
    "creates it. Only dkrzspawner's side of the benchmarks was run."
)


@pytest.fixture(autouse=True)
def cluster():
    require_slurm()


def run_smoke(tmp_path, kinds):
    args = bench.parse_args(["--smoke", "--results", str(tmp_path), "--kinds", *kinds])
    bench.write(bench.run(args), args.results, readme=None)
    return json.loads((tmp_path / "benchmarks.json").read_text())


def test_dkrzspawner_side_of_every_benchmark_runs_and_writes_its_files(tmp_path):
    results = run_smoke(tmp_path, ["dkrz"])
    seeded = results["seeded"][0]
    assert seeded["steady"]["servers_still_ready"] == 2
    assert seeded["restart"]["init_spawners_s"] is not None
    assert "squeue" in seeded["steady"]["slurm_commands"]
    assert results["pending"][0]["job_state_during_window"].startswith("PENDING")
    assert [r["kind"] for r in results["latency"]] == ["dkrz", "floor"]
    assert results["form"]["warm_median_ms"] > 0
    for name in ("load.png", "latency.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert "N=2 servers" in (tmp_path / "summary.md").read_text()


def test_batchspawner_side_runs_too(tmp_path):
    if not (harness.VENVS["batchspawner"] / "bin" / "jupyterhub").exists():
        pytest.skip(reason=BATCHSPAWNER_MISSING)
    results = run_smoke(tmp_path, ["batchspawner"])
    seeded = results["seeded"][0]
    assert seeded["steady"]["servers_still_ready"] == 2
    assert seeded["steady"]["slurm_commands"].get("squeue", 0) >= 2  # one query per server per interval
    assert results["pending"][0]["job_state_during_window"].startswith("PENDING")
