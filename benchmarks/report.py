"""Turns the measurements into the files a reader looks at: PNG plots, a Markdown table, README's copy of it."""

from __future__ import annotations

import re
from pathlib import Path

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"dkrz": "dkrzspawner", "batchspawner": "batchspawner 1.3.0", "floor": "floor (bare sbatch)"}
COLOURS = {"dkrz": "tab:blue", "batchspawner": "tab:orange", "floor": "tab:gray"}
README_BEGIN, README_END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"


def plot_load(seeded: list[dict], path: Path):
    """slurmctld job queries and the hub's Slurm commands per poll interval, against N servers."""
    figure, axes = plt.subplots(1, 2, figsize=(10, 4))
    for kind in ("dkrz", "batchspawner"):
        rows = sorted((r for r in seeded if r["kind"] == kind), key=lambda r: r["servers"])
        if not rows:
            continue
        n = [r["servers"] for r in rows]
        axes[0].plot(n, [max(r["steady"]["job_info_rpcs_per_interval"], 0.1) for r in rows], "o-",
                     color=COLOURS[kind], label=LABELS[kind])
        axes[1].plot(n, [r["restart"]["job_info_rpcs"] or 0.1 for r in rows], "o-", color=COLOURS[kind],
                     label=LABELS[kind])
    axes[0].set_title("slurmctld job queries per poll interval")
    axes[1].set_title("slurmctld job queries for a hub restart")
    for ax in axes:
        ax.set_xlabel("servers known to the hub (N)")
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend()
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def plot_latency(latencies: list[dict], path: Path):
    """Spawn latency distributions: each spawn a dot, over a box."""
    figure, ax = plt.subplots(figsize=(7, 4))
    kinds = [r["kind"] for r in latencies]
    ax.boxplot([r["samples_s"] for r in latencies], vert=False, widths=0.5)
    for row, result in enumerate(latencies, start=1):
        ax.plot(result["samples_s"], [row] * result["n"], "o", alpha=0.6, color=COLOURS[result["kind"]])
    ax.set_yticks(range(1, len(kinds) + 1), [LABELS[k] for k in kinds])
    ax.set_xlabel("request -> server answers (s)")
    ax.set_xlim(left=0)
    ax.grid(True, axis="x", alpha=0.3)
    ax.set_title("Spawn latency on an empty node")
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


def _by(results: list[dict], kind: str, **match) -> dict | None:
    for result in results:
        if result["kind"] == kind and all(result.get(k) == v for k, v in match.items()):
            return result
    return None


def _spread(result: dict | None) -> str:
    if not result:
        return "not measured"
    return f"{result['median_s']:.2f} s ({result['min_s']:.2f}–{result['max_s']:.2f}, n={result['n']})"


def _load(result: dict | None) -> str:
    if not result:
        return "not measured"
    steady = result["steady"]
    return (f"{steady['job_info_rpcs_per_interval']:g} job queries, "
            f"{steady['slurm_commands_per_interval']:g} Slurm commands")


def _queued(result: dict | None) -> str:
    return f"{result['job_info_rpcs_per_minute']:g} job queries/min" if result else "not measured"


def _restart(result: dict | None) -> str:
    if not result:
        return "not measured"
    restart = result["restart"]
    checked = f"{restart['init_spawners_s']:.2f} s" if restart["init_spawners_s"] is not None else "?"
    return (f"{restart['job_info_rpcs']} job queries; spawners checked in {checked}; "
            f"all ready {restart['launch_to_all_ready_s']:.1f} s after launch")


def _over_floor(result: dict | None, floor: dict) -> str:
    return f"{result['median_s'] - floor['median_s']:+.2f} s" if result else "not measured"


def table(results: dict) -> str:
    """The Markdown table README.md quotes."""
    seeded, machine = results.get("seeded", []), results["machine"]
    sizes = sorted({r["servers"] for r in seeded})
    interval = results["settings"]["interval_s"]
    rows = ["| measure | dkrzspawner | batchspawner 1.3.0 | goal |", "|---|---|---|---|"]
    for n in sizes:
        rows.append(f"| slurmctld load, N={n} servers, per poll interval ({interval:g} s) | "
                    f"{_load(_by(seeded, 'dkrz', servers=n))} | {_load(_by(seeded, 'batchspawner', servers=n))} "
                    "| one query per interval |")
    pending = results.get("pending", [])
    if pending:
        rows.append(f"| slurmctld load, one spawn waiting in the queue | {_queued(_by(pending, 'dkrz'))} | "
                    f"{_queued(_by(pending, 'batchspawner'))} | one query per interval |")
    latencies = results.get("latency", [])
    if latencies:
        ours, theirs, bare = (_by(latencies, k) for k in ("dkrz", "batchspawner", "floor"))
        rows.append(f"| spawn: request -> ready, median (range) | {_spread(ours)} | {_spread(theirs)} | "
                    f"floor: {_spread(bare)} |")
        if bare:
            rows.append(f"| spawn: median minus the floor | {_over_floor(ours, bare)} | "
                        f"{_over_floor(theirs, bare)} | at most +0.20 s |")
    for n in sizes:
        rows.append(f"| hub restart with N={n} servers | {_restart(_by(seeded, 'dkrz', servers=n))} | "
                    f"{_restart(_by(seeded, 'batchspawner', servers=n))} | one Slurm call, under 1 s |")
    form = results.get("form")
    if form:
        rows.append(f"| spawn form, server-side render | warm {form['warm_median_ms']:.2f} ms, cold "
                    f"{form['cold_median_ms']:.0f} ms | (no form) | warm under 30 ms |")
    where = (f"Measured {machine['date']} on `{machine['host']}` ({machine['cpus']} cores, "
             f"{machine['memory_gib']} GiB), {machine['slurm']}, Python {machine['python']}, by `make bench`.")
    return where + "\n\n" + "\n".join(rows) + "\n"


def update_readme(readme: Path, text: str):
    """Replace README's benchmark section (between its markers) with ``text``."""
    content = readme.read_text()
    pattern = re.compile(re.escape(README_BEGIN) + ".*?" + re.escape(README_END), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme} has no {README_BEGIN} ... {README_END} section to fill")
    readme.write_text(pattern.sub(lambda _: f"{README_BEGIN}\n{text}{README_END}", content))
