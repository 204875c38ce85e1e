"""Run the benchmarks: ``python -m benchmarks`` (``make bench`` prepares the cluster and the peers first).

Writes ``benchmarks/results/benchmarks.json``, ``load.png``, ``latency.png``, ``class.png``, ``crowd.png`` and
``summary.md`` (the hubs), and ``kernels.json``, ``kernels.png`` and ``kernels.md`` (the kernel provisioners), and
copies each table into README.md when its measurements ran in full, at the default sizes, into that folder; a
partial run leaves README.md as it was and says so. ``--smoke`` runs every measurement at a tiny size into a folder
of its own (for tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import statistics
import sys
from pathlib import Path

from benchmarks import burst, crowd, form_render, harness, jobside, kernels, report, scenarios

#: the hub measurements: README's main table is theirs, and only a run of all of them rewrites it
HUB_MEASUREMENTS = ("seeded", "pending", "latency", "form", "class", "crowd", "jobside")
#: the settings README's tables were measured with: a run with any other value is partial
HUB_SETTINGS = ("servers", "interval", "window", "spawns", "kinds", "class_size", "crowd_users", "crowd_window",
                "crowd_servers")
KERNEL_SETTINGS = ("kernel_kinds", "kernel_rounds", "kernel_limit", "kernel_window")
LEFT_ALONE = ("{readme} keeps its {table} table: this run was partial (--only, --servers or another setting, "
              "--results or --smoke); its figures are in {folder}")


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 100, 300],
                        help="N for the load and restart measurements (default: 10 100 300)")
    parser.add_argument("--interval", type=float, default=30,
                        help="poll interval of both hubs, seconds (default: JupyterHub's 30)")
    parser.add_argument("--window", type=float, default=90, help="seconds of polling to count (default: 90)")
    parser.add_argument("--spawns", type=int, default=10,
                        help="spawns per latency series, and job-side starts of each kind (default: 10)")
    parser.add_argument("--class-size", type=int, default=burst.SIZE,
                        help=f"class: users who spawn at once (default: {burst.SIZE})")
    parser.add_argument("--kinds", nargs="+", default=list(harness.KINDS), choices=harness.KINDS)
    parser.add_argument("--only", nargs="+", default=[*HUB_MEASUREMENTS, "kernels"],
                        choices=[*HUB_MEASUREMENTS, "kernels"], help="the measurements to run (default: all)")
    parser.add_argument("--kernel-kinds", nargs="+", default=list(kernels.KINDS), choices=kernels.KINDS,
                        help="kernels: dkrzspawner's provisioner, Jülich's 0.6.0, the bare floor (default: all)")
    parser.add_argument("--kernel-rounds", type=int, default=8,
                        help="kernels: starts per latency series (default: 8)")
    parser.add_argument("--kernel-limit", type=int, default=1,
                        help="kernels: the allocation's time limit in the server, minutes (default: 1)")
    parser.add_argument("--kernel-window", type=float, default=300,
                        help="kernels: seconds the server runs its kernel with that limit (default: 300)")
    parser.add_argument("--crowd-users", type=int, nargs="+", default=[10, 100, 1000],
                        help="crowd: N users opening the form, then N running servers (default: 10 100 1000)")
    parser.add_argument("--crowd-window", type=float, default=60,
                        help="crowd: seconds over which the N users open the form (default: 60)")
    parser.add_argument("--crowd-servers", type=int, default=None,
                        help="crowd: at most this many running servers (default: N; a small cluster holds fewer)")
    parser.add_argument("--results", type=Path, default=harness.RESULTS, help="folder for the files")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no README update: shows that every measurement runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.servers, args.interval, args.window, args.spawns = [2], 3, 6, 1
        args.class_size = 2
        args.kernel_rounds, args.kernel_window = 2, 20
        args.crowd_users, args.crowd_window = [3], 5
    return args


def run(args, saved=lambda results: None) -> dict:
    """Every measurement asked for; ``saved(results)`` after each, so a failure keeps what was measured."""
    results = {"machine": harness.machine(), "settings": {
        "servers": args.servers, "interval_s": args.interval, "window_s": args.window, "spawns": args.spawns,
        "class_size": args.class_size, "crowd_users": args.crowd_users, "crowd_window_s": args.crowd_window}}
    # the class clears its own users' jobs, the crowd has users of its own, the job side alone cancels no one's
    if (set(HUB_MEASUREMENTS) - {"class", "crowd", "jobside"}) & set(args.only):
        harness.clear_queue()
    if "seeded" in args.only:
        responder = harness.Responder()
        results["seeded"] = []
        try:
            for n in args.servers:
                for kind in args.kinds:
                    results["seeded"].append(scenarios.seeded(kind, n, args.window, args.interval, responder))
                    saved(results)
        finally:
            responder.close()
    if "pending" in args.only:
        results["pending"] = [scenarios.pending(kind, args.window, args.interval) for kind in args.kinds]
        saved(results)
    if "latency" in args.only:
        results["latency"] = [scenarios.latency(kind, args.spawns) for kind in args.kinds]
        results["latency"].append(scenarios.floor(args.spawns))
        saved(results)
    if "form" in args.only:
        timings = asyncio.run(form_render.measure("carol", 3 if args.smoke else 20))
        results["form"] = {f"{kind}_median_ms": round(statistics.median(values), 3)
                           for kind, values in timings.items()}
        saved(results)
    if "class" in args.only:
        results["class"] = burst.run(args.kinds, args.class_size)
        saved(results)
    if "crowd" in args.only and "dkrz" in args.kinds:  # batchspawner has no form to measure
        results["crowd"] = crowd.run(args.crowd_users, args.crowd_window, args.window, args.interval,
                                     args.crowd_servers)
        saved(results)
    if "jobside" in args.only and "dkrz" in args.kinds:  # default jupyterhub-singleuser vs our lean start
        results["jobside"] = jobside.run(args.spawns)
        saved(results)
    if "kernels" in args.only:
        results["kernels"] = kernels.run(args.kernel_kinds, args.kernel_rounds, args.kernel_limit,
                                         args.kernel_window)
    return results


def write(results: dict, folder: Path, readme: Path | None = None, sections=()):
    """The files of what ran; README.md's ``sections`` (``benchmarks``, ``kernels``) from them, if ``readme``."""
    folder.mkdir(parents=True, exist_ok=True)
    if any(name in results for name in HUB_MEASUREMENTS):
        hubs = {key: value for key, value in results.items() if key != "kernels"}
        (folder / "benchmarks.json").write_text(json.dumps(hubs, indent=1) + "\n")
        if results.get("seeded"):
            report.plot_load(results["seeded"], folder / "load.png")
        if results.get("latency"):
            report.plot_latency(results["latency"], folder / "latency.png")
        if results.get("class"):
            report.plot_class(results["class"], folder / "class.png")
        if results.get("crowd"):
            report.plot_crowd(results["crowd"], folder / "crowd.png")
        table = report.table(hubs)
        (folder / "summary.md").write_text(table)
        print(table)
        if readme is not None and "benchmarks" in sections:
            report.update_readme(readme, table)
        elif readme is not None:
            print(LEFT_ALONE.format(readme=readme.name, table="benchmark", folder=folder))
    if "kernels" in results:
        (folder / "kernels.json").write_text(json.dumps(results["kernels"], indent=1) + "\n")
        report.plot_kernels(results["kernels"], folder / "kernels.png")
        table = report.kernel_table(results["kernels"])
        (folder / "kernels.md").write_text(table)
        print(table)
        if readme is not None and "kernels" in sections:
            report.update_readme(readme, table, report.KERNELS_BEGIN, report.KERNELS_END)
        elif readme is not None:
            print(LEFT_ALONE.format(readme=readme.name, table="kernel", folder=folder))


def complete_sections(args) -> set[str]:
    """README tables this run may rewrite: those whose measurements all ran, with the default settings, into the
    default folder."""
    if args.smoke or args.results.resolve() != harness.RESULTS.resolve():
        return set()
    defaults = parse_args([])
    sections = set()
    if set(HUB_MEASUREMENTS) <= set(args.only) and settings(args, HUB_SETTINGS) == settings(defaults, HUB_SETTINGS):
        sections.add("benchmarks")
    if "kernels" in args.only and settings(args, KERNEL_SETTINGS) == settings(defaults, KERNEL_SETTINGS):
        sections.add("kernels")
    return sections


def settings(args, names) -> list:
    """The values of ``names`` in ``args``; lists as sets (the order of --servers or --kinds changes no table)."""
    return [frozenset(value) if isinstance(value, list) else value for value in (getattr(args, n) for n in names)]


def stop_on_signals():
    """SIGTERM and SIGHUP end the run as an exception would: every measurement's clean-up runs (its hubs stop,
    its users and jobs go), where the default action would leave hubs holding the benchmark's ports."""
    def stop(signum, _frame):
        sys.exit(128 + signum)
    for signum in (signal.SIGTERM, signal.SIGHUP):
        signal.signal(signum, stop)


def main(argv=None):
    stop_on_signals()
    args = parse_args(argv)
    partial = args.results / "benchmarks.partial.json"
    args.results.mkdir(parents=True, exist_ok=True)
    results = run(args, saved=lambda so_far: partial.write_text(json.dumps(so_far, indent=1) + "\n"))
    write(results, args.results, harness.REPO / "README.md", complete_sections(args))
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
