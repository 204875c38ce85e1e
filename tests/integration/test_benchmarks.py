"""Every benchmark runs, at a tiny size, on the real cluster and real hubs: figures are written, none judged."""

from __future__ import annotations

import json

import pytest

from benchmarks import __main__ as bench
from benchmarks import harness, kernels
from tests.slurmtools import require_slurm

BATCHSPAWNER_MISSING = (
    f"batchspawner's benchmark environment {harness.VENVS['batchspawner']} does not exist; `make bench` "
    "creates it. Only dkrzspawner's side of the benchmarks was run."
)


@pytest.fixture(autouse=True)
def cluster():
    require_slurm()


def run_smoke(tmp_path, kinds):
    args = bench.parse_args(["--smoke", "--results", str(tmp_path), "--kinds", *kinds,
                             "--only", *bench.HUB_MEASUREMENTS])
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
    assert [(r["kind"], r["ready"], r["failed"]) for r in results["class"]["rows"]] == [("dkrz", 2, []), ("floor", 2, [])]
    assert results["class"]["rows"][0]["rpcs"]["submits"] >= 2 and results["class"]["rows"][0]["lag"]["probe"]["n"]
    (crowd,) = results["crowd"]
    assert crowd["form"]["forms_shown"] == 3 and crowd["servers"]["servers_still_ready"] == 3
    commands = crowd["form"]["slurm_commands"]
    assert (commands.get("sacctmgr"), commands.get("sacct")) == (2, 1), \
        "for every user: one association table, one budget limits and one usage query"
    jobside = results["jobside"]
    assert (jobside["default"]["n"], jobside["lean"]["n"]) == (1, 1)
    assert "bin/dkrzspawner-leanstart" in jobside["commands"]["lean"]
    for name in ("load.png", "latency.png", "class.png", "crowd.png", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert "N=2 servers" in (tmp_path / "summary.md").read_text()
    assert "| job side: bare sbatch -> first 200" in (tmp_path / "summary.md").read_text()


def test_batchspawner_side_runs_too(tmp_path):
    if not (harness.VENVS["batchspawner"] / "bin" / "jupyterhub").exists():
        pytest.skip(reason=BATCHSPAWNER_MISSING)
    results = run_smoke(tmp_path, ["batchspawner"])
    seeded = results["seeded"][0]
    assert seeded["steady"]["servers_still_ready"] == 2
    assert seeded["steady"]["slurm_commands"].get("squeue", 0) >= 2  # one query per server per interval
    assert results["pending"][0]["job_state_during_window"].startswith("PENDING")


def run_kernels_smoke(tmp_path, kinds):
    args = bench.parse_args(["--smoke", "--only", "kernels", "--results", str(tmp_path), "--kernel-kinds", *kinds])
    bench.write(bench.run(args), args.results)
    return json.loads((tmp_path / "kernels.json").read_text())


def test_kernel_benchmark_runs_for_ours_and_the_floor(tmp_path):
    results = run_kernels_smoke(tmp_path, ["dkrz", "floor"])
    assert [(row["kind"], row["allocation"]) for row in results["latency"]] == [
        ("dkrz", "new"), ("floor", "new"), ("dkrz", "existing")]
    for row in results["latency"]:
        assert (row["attempts"], row["failed"]) == (2, 0), row
        assert all(r["job_id"] and not r.get("cancelled_by_benchmark") for r in row["rounds"]), row
    [window] = results["time_limit"]
    assert window["kind"] == "dkrz" and window["start_error"] is None and window["first_execute"] == "ok"
    assert window["allocations"] >= 1 and window["jobs"][0]["time_limit"] == "00:01:00"
    assert window["final_state"] != "gone"
    for name in ("kernels.png", "kernels.md"):
        assert (tmp_path / name).stat().st_size > 0
    assert not (tmp_path / "benchmarks.json").exists()  # a kernels-only run leaves the hubs' files alone
    assert "| kernel start -> first execute reply" in (tmp_path / "kernels.md").read_text()


def test_juelich_side_of_the_kernel_benchmark_runs_too(tmp_path):
    missing = kernels.juelich_missing()
    if missing:
        pytest.skip(reason=missing + " Only dkrzspawner's side and the floor of the kernel benchmark were run.")
    results = run_kernels_smoke(tmp_path, ["juelich"])
    assert [(row["kind"], row["allocation"]) for row in results["latency"]] == [
        ("juelich", "new"), ("juelich", "existing")]
    for row in results["latency"]:
        assert row["attempts"] == 2 and all(r["job_id"] for r in row["rounds"])  # an allocation each
    [window] = results["time_limit"]
    assert window["kind"] == "juelich" and window["allocations"] >= 1
