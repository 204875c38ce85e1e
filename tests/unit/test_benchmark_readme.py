"""benchmarks/: only a full run (every measurement, the default settings) into the default results folder
rewrites a README table; a partial run writes its files, leaves README.md as it was, and says so."""

from __future__ import annotations

import pytest

from benchmarks import __main__ as bench
from benchmarks import burst, report

MACHINE = {"date": "2026-12-02 01:00 UTC", "host": "bench", "cpus": 2, "memory_gib": 8.0, "slurm": "slurm 23.02",
           "python": "3.11", "kernel": "6.1"}


def sections(*argv) -> set[str]:
    return bench.complete_sections(bench.parse_args(list(argv)))


def test_a_full_run_into_the_results_folder_rewrites_both_tables():
    assert sections() == {"benchmarks", "kernels"}
    assert sections("--servers", "300", "10", "100", "--kinds", "batchspawner", "dkrz") == {"benchmarks", "kernels"}, \
        "the order of the values changes no table"
    assert sections("--only", "kernels") == {"kernels"}
    assert sections("--only", "seeded", "kernels") == {"kernels"}


@pytest.mark.parametrize("argv", [
    ["--only", "latency", "seeded", "--servers", "100", "--results", "/tmp/elsewhere"],  # the run in issue 20
    ["--servers", "100"], ["--spawns", "3"], ["--window", "30"], ["--interval", "5"], ["--kinds", "dkrz"],
    ["--results", "/tmp/elsewhere"], ["--smoke"], ["--class-size", "12"], ["--crowd-users", "100"],
    ["--crowd-servers", "16"], ["--only", "seeded", "pending", "latency", "form", "kernels"], ["--only", "crowd"],
])
def test_a_partial_hub_run_rewrites_no_benchmark_table(argv):
    assert "benchmarks" not in sections(*argv)


@pytest.mark.parametrize("argv", [["--kernel-kinds", "dkrz"], ["--kernel-rounds", "2"], ["--kernel-window", "20"],
                                  ["--kernel-limit", "2"]])
def test_a_partial_kernel_run_rewrites_no_kernel_table(argv):
    assert sections(*argv) == {"benchmarks"}


def test_a_partial_run_writes_its_files_and_says_it_left_the_readme_alone(tmp_path, capsys):
    readme = tmp_path / "README.md"
    readme.write_text(f"intro\n{report.README_BEGIN}\nthe full run's table\n{report.README_END}\n")
    before = readme.read_text()
    results = {"machine": MACHINE, "settings": {"interval_s": 30},
               "form": {"warm_median_ms": 4.0, "cold_median_ms": 90.0}}
    args = bench.parse_args(["--only", "form", "--results", str(tmp_path / "out")])
    bench.write(results, args.results, readme, bench.complete_sections(args))
    assert readme.read_text() == before
    assert "warm 4.00 ms" in (tmp_path / "out" / "summary.md").read_text()
    assert "README.md keeps its benchmark table: this run was partial" in capsys.readouterr().out

    bench.write(results, args.results, readme, {"benchmarks"})
    assert "warm 4.00 ms" in readme.read_text() and "the full run's table" not in readme.read_text()


def class_row(kind, seconds, failed=()):
    return {"kind": kind, "users": 3, "all_ready_s": None if failed else max(seconds), "ready": 3 - len(failed),
            "failed": list(failed), "spawn": burst.distribution(seconds),
            "rpcs": {"job_queries": 4, "submits": 3, "test_only": 3 if kind != "floor" else 0},
            "lag": {"probe": {"n": 2, "p95_ms": 12.0, "max_ms": 30.5, "samples": [(0.0, 0.01), (0.05, 0.0305)]},
                    "logged": None if kind == "floor" else {"threshold_s": 0.1, "count": 1, "max_s": 0.3}},
            **({} if kind == "floor" else {"hub_cpu_s": {"own": 1.5, "children": 0.5}})}


def test_the_class_rows_put_each_hub_beside_the_floor_and_the_plot_draws(tmp_path):
    result = {"size": 3, "rows": [class_row("dkrz", [4.0, 5.0, 6.0]), class_row("batchspawner", [7.0, 9.0], ["c3"]),
                                  class_row("floor", [3.0, 3.5, 4.0])]}
    assert report.closest_to_floor(result) == "dkrz"  # the other has a server that never answered
    rows = report.class_rows(result)
    assert rows[0] == ("| a class of 3 spawning at once: first request -> all ready | 6.00 s | —; **1 of 3 not ready** | "
                       "floor: 4.00 s; closest to the floor (here: dkrzspawner) |")
    assert "| 5.00 / 6.00 / 6.00 s |" in rows[1] and "floor: 3.50 / 4.00 / 4.00 s" in rows[1]
    assert "3 submits, 3 test-only" in rows[2] and "floor: 4 job queries, 3 submits, 0 test-only" in rows[2]
    assert "p95 12 ms, max 30.5 ms; logged stalls ≥ 0.1 s: 1 (max 0.30 s)" in rows[3]
    assert "| 1.5 s + 0.5 s |" in rows[4] and "floor: —" in rows[4]
    assert report.class_rows(None) == []
    report.plot_class(result, tmp_path / "class.png")
    assert (tmp_path / "class.png").stat().st_size > 0


def test_the_class_percentiles_are_nearest_rank():
    assert burst.percentile([1.0, 2.0, 3.0, 4.0], 0.5) == 2.0
    assert burst.percentile([float(i) for i in range(1, 21)], 0.95) == 19.0
    assert burst.distribution([])["p50_s"] is None


#: one size of benchmarks/crowd.py's measurement, as it writes it
CROWD = {"users": 1000, "interval_s": 30,
         "form": {"users": 1000, "window_s": 60.2, "forms_shown": 1000,
                  "hub_ms": {"n": 1000, "p50": 14.1, "p95": 40.3, "max": 380.0},
                  "client_ms": {"n": 1000, "p50": 19.0, "p95": 52.0, "max": 400.0},
                  "slurm_commands": {"sacctmgr": 1, "scontrol": 2, "sinfo": 1}, "slurm_commands_per_minute": 4.0,
                  "sacctmgr_per_minute": 1.0, "slurmctld_rpcs_per_minute": 30.0, "slurmctld_rpcs": {},
                  "slurmdbd_rpcs_per_minute": 12.0, "slurmdbd_rpcs": {}, "rpc_counts_reset_meanwhile": False},
         "servers": {"servers": 1000, "window_s": 90, "watcher_cycles": 3, "cycle_s": 0.21,
                     "hub_cpu_s_per_cycle": 0.4, "hub_cpu_percent": 1.3, "slurm_commands": {"squeue": 3},
                     "servers_still_ready": 1000}}


def test_the_crowd_has_its_rows_in_the_table_and_a_plot(tmp_path):
    results = {"machine": MACHINE, "settings": {"interval_s": 30}, "crowd": [CROWD, {**CROWD, "users": 10}]}
    bench.write(results, tmp_path)
    table = (tmp_path / "summary.md").read_text()
    assert "| spawn form, N=1000 users within 60.2 s, caches cold: hub's render p50 / p95 (browser's) | " \
           "14.1 / 40.3 ms (19.0 / 52.0 ms), 1000 of 1000 shown |" in table
    assert "| 1; 4; 30, 12 | — | flat in the number of users |" in table
    assert "| N=1000 running servers: one watcher cycle; the hub's CPU per cycle | 0.210 s; 0.400 CPU-s" in table
    assert (tmp_path / "crowd.png").stat().st_size > 0


def test_the_job_side_rows_put_the_lean_start_against_the_default_server():
    def spread(median):
        return {"n": 10, "median_s": median, "min_s": median - 0.5, "max_s": median + 1}

    results = {"machine": MACHINE, "settings": {"interval_s": 30},
               "jobside": {"default": spread(3.5), "lean": spread(2.0), "lean_minus_default_s": -1.5}}
    table = report.table(results)
    assert ("| job side: bare sbatch -> first 200, median (range) | lean start: 2.00 s (1.50–3.00, n=10) | "
            "(not measured) | floor, default jupyterhub-singleuser: 3.50 s (3.00–4.50, n=10) |") in table
    assert "| job side: lean start minus the default | -1.50 s | | below 0 |" in table
    assert "jobside" in bench.parse_args([]).only, "part of the default run"
