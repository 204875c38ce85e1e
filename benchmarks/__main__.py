"""Run the benchmarks: ``python -m benchmarks`` (``make bench`` prepares the cluster and both hubs first).

Writes ``benchmarks/results/benchmarks.json``, ``load.png``, ``latency.png`` and ``summary.md``, and copies the
table into README.md. ``--smoke`` runs every measurement at a tiny size into a folder of its own (for tests).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import statistics
from pathlib import Path

from benchmarks import form_render, harness, report, scenarios


def parse_args(argv=None):
    parser = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, nargs="+", default=[10, 100, 300],
                        help="N for the load and restart measurements (default: 10 100 300)")
    parser.add_argument("--interval", type=float, default=30,
                        help="poll interval of both hubs, seconds (default: JupyterHub's 30)")
    parser.add_argument("--window", type=float, default=90, help="seconds of polling to count (default: 90)")
    parser.add_argument("--spawns", type=int, default=10, help="spawns per latency series (default: 10)")
    parser.add_argument("--kinds", nargs="+", default=list(harness.KINDS), choices=harness.KINDS)
    parser.add_argument("--only", nargs="+", default=["seeded", "pending", "latency", "form"],
                        choices=["seeded", "pending", "latency", "form"])
    parser.add_argument("--results", type=Path, default=harness.RESULTS, help="folder for the files")
    parser.add_argument("--smoke", action="store_true",
                        help="tiny sizes, no README update: shows that every measurement runs")
    args = parser.parse_args(argv)
    if args.smoke:
        args.servers, args.interval, args.window, args.spawns = [2], 3, 6, 1
    return args


def run(args, saved=lambda results: None) -> dict:
    """Every measurement asked for; ``saved(results)`` after each, so a failure keeps what was measured."""
    results = {"machine": harness.machine(), "settings": {
        "servers": args.servers, "interval_s": args.interval, "window_s": args.window, "spawns": args.spawns}}
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
    return results


def write(results: dict, folder: Path, readme: Path | None):
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "benchmarks.json").write_text(json.dumps(results, indent=1) + "\n")
    if results.get("seeded"):
        report.plot_load(results["seeded"], folder / "load.png")
    if results.get("latency"):
        report.plot_latency(results["latency"], folder / "latency.png")
    table = report.table(results)
    (folder / "summary.md").write_text(table)
    if readme is not None:
        report.update_readme(readme, table)
    print(table)


def main(argv=None):
    args = parse_args(argv)
    partial = args.results / "benchmarks.partial.json"
    args.results.mkdir(parents=True, exist_ok=True)
    results = run(args, saved=lambda so_far: partial.write_text(json.dumps(so_far, indent=1) + "\n"))
    write(results, args.results, None if args.smoke else harness.REPO / "README.md")
    partial.unlink(missing_ok=True)


if __name__ == "__main__":
    main()
