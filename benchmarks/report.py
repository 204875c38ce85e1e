"""Turns the measurements into the files a reader looks at: PNG plots, a Markdown table, README's copy of it."""

from __future__ import annotations

import datetime
import re
from pathlib import Path

import matplotlib
import matplotlib.ticker

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402

LABELS = {"dkrz": "dkrzspawner", "batchspawner": "batchspawner 1.3.0", "floor": "floor (bare sbatch)"}
COLOURS = {"dkrz": "tab:blue", "batchspawner": "tab:orange", "floor": "tab:gray"}
README_BEGIN, README_END = "<!-- benchmarks:begin -->", "<!-- benchmarks:end -->"
KERNELS_BEGIN, KERNELS_END = "<!-- kernels:begin -->", "<!-- kernels:end -->"
KERNEL_LABELS = {"dkrz": "dkrzspawner", "juelich": "jupyter-slurm-provisioner 0.6.0",
                 "floor": "floor (salloc + srun)"}
KERNEL_COLOURS = {"dkrz": "tab:blue", "juelich": "tab:green", "floor": "tab:gray"}


def _save(figure, path: Path):
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)


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
    _save(figure, path)


def _distributions(ax, rows: list[dict], names: list[str], colours: dict):
    """Each row's samples as dots over a box, one line per row (an empty row keeps its line)."""
    values = [row["samples_s"] for row in rows]
    ax.boxplot([v or [float("nan")] for v in values], vert=False, widths=0.5)
    for line, (row, points) in enumerate(zip(rows, values), start=1):
        ax.plot(points, [line] * len(points), "o", alpha=0.6, color=colours[row["kind"]])
    ax.set_yticks(range(1, len(rows) + 1), names)
    ax.grid(True, axis="x", alpha=0.3)


def plot_latency(latencies: list[dict], path: Path):
    """Spawn latency distributions: each spawn a dot, over a box."""
    figure, ax = plt.subplots(figsize=(7, 4))
    _distributions(ax, latencies, [LABELS[row["kind"]] for row in latencies], COLOURS)
    ax.set_xlim(left=0)
    ax.set_xlabel("request -> server answers (s)")
    ax.set_title("Spawn latency on an empty node")
    _save(figure, path)


def _sacct_seconds(value: str, origin: datetime.datetime) -> float | None:
    try:
        return (datetime.datetime.strptime(value, "%Y-%m-%dT%H:%M:%S") - origin).total_seconds()
    except ValueError:  # "Unknown": not started, or not ended yet
        return None


def plot_kernels(kernels: dict, path: Path):
    """Start -> first reply per kernel (failed starts as crosses); the time-limit window's allocations."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4), gridspec_kw={"width_ratios": [1, 1.2]})
    rows = kernels.get("latency", [])
    names = [KERNEL_LABELS[row["kind"]] + (",\ninto an existing allocation" if row["allocation"] == "existing" else "")
             for row in rows]
    _distributions(left, rows, names, KERNEL_COLOURS)
    for line, row in enumerate(rows, start=1):
        failed = [r["failed_after_s"] for r in row["rounds"] if r["status"] != "ok"]
        left.plot(failed, [line] * len(failed), "x", color="tab:red", markersize=8)
        if failed:
            left.annotate(f"{len(failed)} of {row['attempts']} starts failed (x: when)", (min(failed), line),
                          xytext=(0, 12), textcoords="offset points", color="tab:red", fontsize=8)
    left.set_xscale("log")  # a failed start may take minutes, a start under a second
    left.xaxis.set_major_locator(matplotlib.ticker.FixedLocator([0.1, 0.2, 0.5, 1, 2, 5, 10, 30, 100, 300]))
    left.xaxis.set_major_formatter(matplotlib.ticker.FuncFormatter(lambda value, _: f"{value:g}"))
    left.xaxis.set_minor_formatter(matplotlib.ticker.NullFormatter())
    left.set_xlabel("kernel start -> first execute reply (s, log scale)")
    left.set_title(f"Kernel start, one core, n={kernels['settings']['rounds']} each")
    windows = kernels.get("time_limit", [])
    for line, window in enumerate(windows, start=1):
        origin = datetime.datetime.strptime(window["window_start"], "%Y-%m-%dT%H:%M:%S")
        for job in window["jobs"]:
            begin = _sacct_seconds(job["start"], origin)
            end = _sacct_seconds(job["end"], origin)
            if begin is None:
                continue
            end = window["window_s"] if end is None else end
            right.barh(line, max(end - begin, 1), left=begin, height=0.5, color=KERNEL_COLOURS[window["kind"]],
                       edgecolor="black", alpha=0.7)
        if window["final_state"] == "gone":
            kernel = "kernel not in the API" + (" (its start failed)" if window["start_error"] else "")
        else:
            answers = "answers" if window["final_execute"] == "ok" else "does not answer"
            kernel = f"kernel {window['final_state']} in the API, {answers}"
        right.annotate(f"{window['allocations']} allocation(s); {kernel}",
                       (2, line + 0.35), fontsize=8)
    right.set_yticks(range(1, len(windows) + 1), [KERNEL_LABELS[w["kind"]] for w in windows])
    right.set_ylim(0.4, len(windows) + 0.8)
    if windows:
        right.set_xlim(0, windows[0]["window_s"])
        right.set_title(f"Allocations of one kernel in a Jupyter server ({windows[0]['time_limit_min']}-min limit)",
                        fontsize=10)
    right.set_xlabel("seconds since the kernel was started")
    right.grid(True, axis="x", alpha=0.3)
    _save(figure, path)


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
    return (f"{counted(steady['job_info_rpcs_per_interval'], 'job query', 'job queries')}, "
            f"{counted(steady['slurm_commands_per_interval'], 'Slurm command')}")


def counted(number: float, one: str, many: str | None = None) -> str:
    """``1 job query``, ``0.67 job queries``, ``9 job queries``."""
    return f"{number:g} {one if number == 1 else many or one + 's'}"


def _queued(result: dict | None) -> str:
    return f"{result['job_info_rpcs_per_minute']:g} job queries/min" if result else "not measured"


def _restart(result: dict | None) -> str:
    if not result:
        return "not measured"
    restart = result["restart"]
    checked = f"{restart['init_spawners_s']:.2f} s" if restart["init_spawners_s"] is not None else "?"
    return (f"{counted(restart['job_info_rpcs'], 'job query', 'job queries')}; spawners checked in {checked}; "
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
    rows += class_rows(results.get("class"))
    form = results.get("form")
    if form:
        rows.append(f"| spawn form, server-side render | warm {form['warm_median_ms']:.2f} ms, cold "
                    f"{form['cold_median_ms']:.0f} ms | (no form) | warm under 30 ms |")
    rows += crowd_rows(results.get("crowd", []))
    rows += _jobside_rows(results.get("jobside"))
    where = (f"Measured {machine['date']} on `{machine['host']}` ({machine['cpus']} cores, "
             f"{machine['memory_gib']} GiB), {machine['slurm']}, Python {machine['python']}, by `make bench`.")
    return where + "\n\n" + "\n".join(rows) + "\n"


# -- crowd: a thousand users (benchmarks/crowd.py) --------------------------------------------------------------
def crowd_rows(crowd: list[dict]) -> list[str]:
    """The main table's rows of the crowd measurement, one set per number of users (dkrzspawner only)."""
    rows = []
    for row in crowd:
        n, form, servers = row["users"], row["form"], row["servers"]
        hub, client = form["hub_ms"], form["client_ms"]
        rows += [
            f"| spawn form, N={n} users within {form['window_s']:g} s, caches cold: hub's render p50 / p95 "
            f"(browser's) | {hub['p50']} / {hub['p95']} ms ({client['p50']} / {client['p95']} ms), "
            f"{form['forms_shown']} of {n} shown | (no form) | flat in the number of users |",
            f"| Slurm calls meanwhile, per minute: the hub's sacctmgr; all its commands; slurmctld, slurmdbd RPCs "
            f"| {form['sacctmgr_per_minute']:g}; {form['slurm_commands_per_minute']:g}; "
            f"{form['slurmctld_rpcs_per_minute']:g}, {form['slurmdbd_rpcs_per_minute']:g} | — | "
            "flat in the number of users |",
            f"| N={servers['servers']} running servers: one watcher cycle; the hub's CPU per cycle | "
            f"{servers['cycle_s']:.3f} s; "
            f"{servers['hub_cpu_s_per_cycle']:.3f} CPU-s ({servers['watcher_cycles']} cycles) | — | "
            f"well inside the interval ({row['interval_s']:g} s) |",
        ]
    return rows


def plot_crowd(crowd: list[dict], path: Path):
    """Against the number of users: the form's render time, the Slurm calls per minute meanwhile, and the
    watcher's cycle and the hub's CPU per cycle with that many servers."""
    figure, axes = plt.subplots(1, 3, figsize=(14, 4))
    n = [row["users"] for row in crowd]
    for quantile, style in (("p50", "o-"), ("p95", "s--")):
        axes[0].plot(n, [row["form"]["hub_ms"][quantile] for row in crowd], style, color=COLOURS["dkrz"],
                     label=f"hub's render, {quantile}")
    axes[0].set_title("spawn form, caches cold (ms)")
    for key, label, colour in (("sacctmgr_per_minute", "hub's sacctmgr", "tab:blue"),
                               ("slurm_commands_per_minute", "hub's Slurm commands", "tab:cyan"),
                               ("slurmctld_rpcs_per_minute", "slurmctld RPCs", "tab:gray"),
                               ("slurmdbd_rpcs_per_minute", "slurmdbd RPCs", "tab:brown")):
        axes[1].plot(n, [max(row["form"][key], 0.1) for row in crowd], "o-", color=colour, label=label)
    axes[1].set_title("Slurm calls per minute while they open it")
    running = [row["servers"]["servers"] for row in crowd]
    axes[2].plot(running, [row["servers"]["cycle_s"] for row in crowd], "o-", color=COLOURS["dkrz"],
                 label="watcher cycle (s)")
    axes[2].plot(running, [row["servers"]["hub_cpu_s_per_cycle"] for row in crowd], "s--", color="tab:red",
                 label="hub CPU per cycle (s)")
    axes[2].set_title("running servers, one per user")
    for ax in axes:
        ax.set_xlabel("users (N)")
        ax.set_xscale("log")
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    axes[1].set_yscale("log")
    axes[2].set_xlabel("running servers")
    axes[0].set_ylim(bottom=0)
    axes[2].set_ylim(bottom=0)
    _save(figure, path)


def _jobside_rows(jobside: dict | None) -> list[str]:
    """The job side's rows (benchmarks/jobside.py): our lean start against a default jupyterhub-singleuser."""
    if not jobside:
        return []
    return [f"| job side: bare sbatch -> first 200, median (range) | lean start: {_spread(jobside['lean'])} | "
            f"(not measured) | floor, default jupyterhub-singleuser: {_spread(jobside['default'])} |",
            f"| job side: lean start minus the default | {jobside['lean_minus_default_s']:+.2f} s | | below 0 |"]


def _kernel_start(row: dict | None) -> str:
    if not row:
        return "not measured"
    text = _spread(row) if row["n"] else "no kernel started"
    if row["failed"]:
        rounds = [r for r in row["rounds"] if r["status"] != "ok"]
        failed = sorted(r["failed_after_s"] for r in rounds)
        left = sum(1 for r in rounds if r.get("cancelled_by_benchmark"))
        text += (f"; **{row['failed']} of {row['attempts']} starts failed** (after "
                 f"{failed[len(failed) // 2]:.2f} s median, {failed[0]:.2f}–{failed[-1]:.2f}): "
                 f"{'; '.join(row['errors']).replace('|', '/')}")
        if row["allocation"] == "new":
            text += f"; {left} of them left their allocation running"
    return text


def _window_state(window: dict | None) -> str:
    if not window:
        return "not measured"
    if window["start_error"]:
        state = f"start failed ({window['start_error'].replace('|', '/')}); not in the API"
    else:
        state = f"`{window['final_state']}` in the API"
    if window["final_state"] != "gone":
        state += "; answers an execute request" if window["final_execute"] == "ok" else "; does not answer"
    return state


def kernel_table(kernels: dict) -> str:
    """The Markdown table of the kernel measurements (README.md's kernels section)."""
    machine, settings = kernels["machine"], kernels["settings"]
    latency = {(row["kind"], row["allocation"]): row for row in kernels.get("latency", [])}
    windows = {row["kind"]: row for row in kernels.get("time_limit", [])}
    ours, theirs, bare = (latency.get((kind, "new")) for kind in ("dkrz", "juelich", "floor"))
    rows = [f"| measure | {KERNEL_LABELS['dkrz']} | {KERNEL_LABELS['juelich']} | floor |", "|---|---|---|---|",
            f"| kernel start -> first execute reply, new allocation, median (range) | {_kernel_start(ours)} | "
            f"{_kernel_start(theirs)} | {_spread(bare) if bare else 'not measured'} |"]
    if bare and bare["n"]:
        over = [_over_floor(row, bare) if row and row["n"] else "—" for row in (ours, theirs)]
        rows.append(f"| median minus the floor | {over[0]} | {over[1]} | |")
    ours_in, theirs_in = (latency.get((kind, "existing")) for kind in ("dkrz", "juelich"))
    if ours_in or theirs_in:
        rows.append(f"| kernel start -> first execute reply into an existing allocation (one `sacct` already lists; "
                    f"each one's job id option), median (range) | {_kernel_start(ours_in)} | "
                    f"{_kernel_start(theirs_in)} | — |")
    if windows:
        first = next(iter(windows.values()))
        seconds = first["window_s"]
        span = f"{seconds / 60:g} min" if seconds % 60 == 0 else f"{seconds:g} s"
        pair = [windows.get("dkrz"), windows.get("juelich")]

        def row(measure: str, text, floor: str = "") -> str:
            cells = [text(window) if window else "not measured" for window in pair]
            return f"| {measure} | {cells[0]} | {cells[1]} | {floor} |"

        rows += [
            row(f"allocations one kernel caused in {span} (a {first['time_limit_min']}-min "
                "time limit; `jupyter server`, its restarter on)", lambda w: f"**{w['allocations']}**",
                "—"),
            row("kernel processes (job steps) that ran in them", lambda w: str(w["kernel_steps"])),
            row("restarter: restarts; gave up", lambda w: f"{w['restarts']}; {w['restart_failed']}"),
            row(f"the kernel after {span}", _window_state),
        ]
    where = (f"Measured {machine['date']} on `{machine['host']}` ({machine['cpus']} cores), {machine['slurm']}, "
             f"by `make bench` (its kernels part, `benchmarks/run --only kernels`): as `{settings['user']}`, "
             f"one node, one task, one core, {settings['request']['memory']} on `{settings['request']['partition']}`, "
             f"the same ipykernel; {settings['other_jobs_running_at_start']} other jobs were running on the node.")
    return where + "\n\n" + "\n".join(rows) + "\n"


# -- a class at once (benchmarks/burst.py) ---------------------------------------------------------------------
def plot_class(result: dict, path: Path):
    """Each spawn of the class (dots over a box) per hub and the floor; the hub's /hub/health answers over time."""
    figure, (left, right) = plt.subplots(1, 2, figsize=(13, 4))
    rows = [{"kind": row["kind"], "samples_s": row["spawn"]["samples_s"]} for row in result["rows"]]
    _distributions(left, rows, [LABELS[row["kind"]] for row in rows], COLOURS)
    left.set_xlim(left=0)
    left.set_xlabel("request -> server answers (s)")
    left.set_title(f"A class of {result['size']} spawning at once")
    for row in result["rows"]:
        samples = row["lag"]["probe"]["samples"]
        right.plot([t for t, _ in samples], [s * 1000 for _, s in samples], ".", markersize=3, alpha=0.6,
                   color=COLOURS[row["kind"]], label=LABELS[row["kind"]] + (" (idle hub)" if row["kind"] == "floor"
                                                                           else ""))
    right.set_yscale("log")
    right.set_xlabel("seconds since the first request")
    right.set_ylabel("/hub/health answered in (ms, log scale)")
    right.set_title("The hub's event loop: a probe every 50 ms")
    right.grid(True, which="both", alpha=0.3)
    right.legend()
    _save(figure, path)


def _class_cell(row: dict | None, text) -> str:
    if not row:
        return "not measured"
    if row["failed"]:
        return f"{text(row)}; **{len(row['failed'])} of {row['users']} not ready**"
    return text(row)


def _class_ready(row: dict) -> str:
    return f"{row['all_ready_s']:.2f} s" if row["all_ready_s"] is not None else "—"


def _class_spawn(row: dict) -> str:
    spawn = row["spawn"]
    return f"{spawn['p50_s']:.2f} / {spawn['p95_s']:.2f} / {spawn['max_s']:.2f} s" if spawn["n"] else "—"


def _class_rpcs(row: dict) -> str:
    rpcs = row["rpcs"]
    return f"{rpcs['job_queries']} job queries, {rpcs['submits']} submits, {rpcs['test_only']} test-only"


def _class_lag(row: dict) -> str:
    probe, logged = row["lag"]["probe"], row["lag"]["logged"]
    text = f"p95 {probe['p95_ms']:g} ms, max {probe['max_ms']:g} ms" if probe["n"] else "no answer"
    if logged is not None:
        text += f"; logged stalls ≥ {logged['threshold_s']:g} s: {logged['count']}"
        text += f" (max {logged['max_s']:.2f} s)" if logged["count"] else ""
    return text


def _class_cpu(row: dict) -> str:
    cpu = row.get("hub_cpu_s")
    return f"{cpu['own']:.1f} s + {cpu['children']:.1f} s" if cpu else "—"


def closest_to_floor(result: dict) -> str | None:
    """The hub kind whose class was all ready closest to the floor's time (None without both figures)."""
    timed = {row["kind"]: row["all_ready_s"] for row in result["rows"] if row["all_ready_s"] is not None}
    floor = timed.pop("floor", None)
    if floor is None or not timed:
        return None
    return min(timed, key=lambda kind: abs(timed[kind] - floor))


def class_rows(result: dict | None) -> list[str]:
    """The table's rows for a class at once: both hubs, the floor in the goal column."""
    if not result:
        return []
    by_kind = {row["kind"]: row for row in result["rows"]}
    ours, theirs, bare = (by_kind.get(kind) for kind in ("dkrz", "batchspawner", "floor"))
    size, closest = result["size"], closest_to_floor(result)

    def row(measure: str, text, goal: str) -> str:
        return (f"| {measure} | {_class_cell(ours, text)} | {_class_cell(theirs, text)} | "
                f"floor: {_class_cell(bare, text)}; {goal} |")

    return [
        row(f"a class of {size} spawning at once: first request -> all ready", _class_ready,
            f"closest to the floor (here: {LABELS[closest] if closest else 'neither'})"),
        row(f"a class of {size}: each spawn p50 / p95 / max", _class_spawn, "closest to the floor"),
        row(f"a class of {size}: slurmctld RPCs during the burst", _class_rpcs, "one submit and one test-only each"),
        row(f"a class of {size}: hub event loop (/hub/health every 50 ms; JupyterHub's log)", _class_lag,
            "no stall over 0.25 s"),
        row(f"a class of {size}: the hub's CPU until all were ready (its own + its Slurm commands')", _class_cpu,
            "least"),
    ]


def update_readme(readme: Path, text: str, begin: str = README_BEGIN, end: str = README_END):
    """Replace the README's section between the markers ``begin`` and ``end`` with ``text``."""
    content = readme.read_text()
    pattern = re.compile(re.escape(begin) + ".*?" + re.escape(end), re.S)
    if not pattern.search(content):
        raise SystemExit(f"{readme} has no {begin} ... {end} section to fill")
    readme.write_text(pattern.sub(lambda _: f"{begin}\n{text}{end}", content))
