"""How long the hub takes to render the spawn form, server side, with a cold and a warm cluster-data cache.

Runs against the real local Slurm (``make cluster``), as the hub would: a DKRZSpawner for a user, with the
demo's partition policy. Cold: the cache is empty, so Slurm is asked (scontrol, sinfo, sacctmgr, reservations).
Warm: the answers are cached (the normal case: the cache lives ``cluster_cache_ttl`` seconds, 60 by default).

    /opt/dkrzspawner/venv/bin/python -m benchmarks.form_render [--user carol] [--rounds 20]

``make bench`` runs it too (``python -m benchmarks``).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from types import SimpleNamespace

from dkrzspawner.spawner import DKRZSpawner

DEMO_PARTITIONS = {"*": {"max_gpus": 0}, "gpu": {"max_gpus": 2}}


async def measure(user: str, rounds: int) -> dict[str, list[float]]:
    spawner = DKRZSpawner(user=SimpleNamespace(name=user), partitions=DEMO_PARTITIONS)
    timings: dict[str, list[float]] = {"cold": [], "warm": []}
    for _ in range(rounds):
        spawner.cluster.cache.clear()
        for kind in ("cold", "warm"):
            started = time.perf_counter()
            html = await spawner.render_options_form()
            timings[kind].append((time.perf_counter() - started) * 1000)
            assert 'id="dkrz-form"' in html
    return timings


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user", default="carol", help="Slurm user the form is for (default: carol)")
    parser.add_argument("--rounds", type=int, default=20, help="cold+warm renders to time (default: 20)")
    args = parser.parse_args()
    timings = asyncio.run(measure(args.user, args.rounds))
    for kind, values in timings.items():
        print(f"{kind}: median {statistics.median(values):.2f} ms, min {min(values):.2f} ms, "
              f"max {max(values):.2f} ms ({len(values)} renders)")


if __name__ == "__main__":
    main()
