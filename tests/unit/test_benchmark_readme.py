"""benchmarks/: only a full run (every measurement, the default settings) into the default results folder
rewrites a README table; a partial run writes its files, leaves README.md as it was, and says so."""

from __future__ import annotations

import pytest

from benchmarks import __main__ as bench
from benchmarks import report

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
    ["--results", "/tmp/elsewhere"], ["--smoke"], ["--crowd-users", "100"], ["--crowd-servers", "16"],
    ["--only", "crowd"],
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
