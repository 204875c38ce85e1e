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
    ["--results", "/tmp/elsewhere"], ["--smoke"],
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
