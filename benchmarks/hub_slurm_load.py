"""How many Slurm RPCs the hub causes per minute with N running servers (sdiag, real hub, real Slurm).

Usage (as root, cluster up, `make env` done; N servers need N * 2500M of node memory, so enlarge the local
node first, e.g. `SLURM_CPUS=32 SLURM_MEM_MB=64000 bash ci/slurm-up`):

    /opt/dkrzspawner/venv/bin/python -m benchmarks.hub_slurm_load 1 20 --window 120
"""

from __future__ import annotations

import argparse
import json
import re
import subprocess
import tempfile
import time
from pathlib import Path

from tests.e2e.conftest import Hub

RPC_LINE = re.compile(r"^\s+(\S+)\s+\(\s*\d+\)\s+count:(\d+)")


def sdiag_counts() -> dict[str, int]:
    """RPC counts by message type since the last reset."""
    out = subprocess.run(["sdiag"], capture_output=True, text=True, check=True).stdout
    section = out.split("Remote Procedure Call statistics by message type", 1)[1]
    section = section.split("Remote Procedure Call statistics by user", 1)[0]
    return {m.group(1): int(m.group(2)) for line in section.splitlines() if (m := RPC_LINE.match(line))}


def measure(hub: Hub, servers: int, window: float) -> dict:
    names = [f"load{i}" for i in range(servers)]
    for name in names:
        assert hub.spawn("alice", name, options={"preset": "shared"}).status_code in (201, 202)
    for name in names:
        hub.wait_ready("alice", name, timeout=300)
    time.sleep(5)
    subprocess.run(["sdiag", "--reset"], check=True, capture_output=True)
    time.sleep(window)
    counts = sdiag_counts()
    for name in names:
        hub.stop_server("alice", name)
    job_queries = sum(v for k, v in counts.items() if k.startswith("REQUEST_JOB_INFO"))
    return {"servers": servers, "window_s": window, "rpc_by_type": counts,
            "job_info_rpcs_per_minute": round(job_queries * 60 / window, 2),
            "all_rpcs_per_minute": round(sum(counts.values()) * 60 / window, 2)}


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("servers", nargs="+", type=int)
    parser.add_argument("--window", type=float, default=120)
    args = parser.parse_args()
    hub = Hub(Path(tempfile.mkdtemp(prefix="dkrz-load-")), extra_config="c.DKRZSpawner.watch_interval = 30\n")
    hub.start()
    try:
        results = [measure(hub, n, args.window) for n in args.servers]
    finally:
        hub.stop()
    print(json.dumps(results, indent=1))


if __name__ == "__main__":
    main()
