"""The user's side of the kernel benchmark (:mod:`benchmarks.kernels` starts it as alice, never as root).

    python kernel_driver.py latency KERNEL_NAME ROUNDS [leave]
    python kernel_driver.py floor PYTHON ROUNDS JOB_NAME PARTITION MEMORY MINUTES

``latency``: ROUNDS kernels of a kernelspec, one after the other, each from ``start_kernel`` (a kernel manager
made as a Jupyter server makes it) to the reply of its first ``execute_request``; then shut down, and the
allocation's end awaited before the next round (``leave``: not awaited; the allocation is not the kernel's).
A start that fails is recorded with its error.
``floor``: the same kernel without a provisioner: ``salloc --no-shell``, the node from ``squeue``, a
connection file, ``srun`` of ipykernel.

Prints one line ``RESULT {json}``. It imports only the standard library and jupyter_client, so it runs in
either provisioner's environment; the Slurm commands are argument lists run by asyncio subprocesses.
"""

from __future__ import annotations

import asyncio
import json
import os
import re
import socket
import sys
import tempfile
import uuid

from jupyter_client import AsyncKernelClient, AsyncKernelManager
from jupyter_client.connect import write_connection_file
from jupyter_core.paths import jupyter_runtime_dir

CODE = "1 + 1"
TIMEOUT = 120.0
GRANTED = re.compile(r"Granted job allocation (\d+)")


async def command(*argv: str, timeout: float = 60.0) -> tuple[int, str, str]:
    """Run a program (an argument list, no shell); its exit status, stdout and stderr."""
    proc = await asyncio.create_subprocess_exec(*argv, stdin=asyncio.subprocess.DEVNULL,
                                                stdout=asyncio.subprocess.PIPE, stderr=asyncio.subprocess.PIPE)
    try:
        out, err = await asyncio.wait_for(proc.communicate(), timeout)
    except asyncio.TimeoutError:
        proc.kill()
        await proc.wait()
        raise RuntimeError(f"{argv[0]} took more than {timeout:g} s") from None
    return proc.returncode, out.decode(errors="replace"), err.decode(errors="replace")


async def first_reply(kc: AsyncKernelClient) -> str:
    """What a frontend waits for: kernel_info answered, then the reply to the first execute request."""
    await kc.wait_for_ready(timeout=TIMEOUT)
    reply = await kc.execute(CODE, reply=True, timeout=TIMEOUT)
    return reply["content"]["status"]


async def until_gone(job_id: str | None, timeout: float = 90.0) -> dict:
    """Seconds until the allocation no longer runs; one still there after ``timeout`` is cancelled (and so
    marked: the provisioner left it behind)."""
    loop = asyncio.get_running_loop()
    started = loop.time()
    while job_id:
        _, out, _ = await command("squeue", "-h", "-j", job_id, "-o", "%T")
        if out.strip() in ("", "COMPLETING", "COMPLETED", "CANCELLED", "TIMEOUT", "FAILED"):
            return {"gone_after_s": round(loop.time() - started, 3), "cancelled_by_benchmark": False}
        if loop.time() - started > timeout:
            await command("scancel", job_id)
            return {"gone_after_s": None, "cancelled_by_benchmark": True}
        await asyncio.sleep(0.5)
    return {"gone_after_s": None, "cancelled_by_benchmark": False}


def allocation_of(provisioner) -> str | None:
    """The kernel's job id: dkrzspawner's provisioner calls it ``job_id``, 0.6.0 ``slurm_allocation_id``."""
    job_id = getattr(provisioner, "job_id", None) or getattr(provisioner, "slurm_allocation_id", None)
    return str(job_id) if job_id else None


async def latency(kernel_name: str, rounds: str, after: str = "await-end") -> dict:
    loop = asyncio.get_running_loop()
    samples = []
    for _ in range(int(rounds)):
        # as a Jupyter server's kernel manager makes it: the connection file named in the runtime dir
        kernel_id = str(uuid.uuid4())
        km = AsyncKernelManager(kernel_name=kernel_name,
                                connection_file=os.path.join(jupyter_runtime_dir(), f"kernel-{kernel_id}.json"))
        started = loop.time()
        try:
            await km.start_kernel(kernel_id=kernel_id)
            kc = km.client()
            kc.start_channels()
            sample = {"status": await first_reply(kc)}
            sample["first_reply_s"] = round(loop.time() - started, 3)
            kc.stop_channels()
        except Exception as exc:  # noqa: BLE001 - a failed start is a finding: recorded, and the round ends
            sample = {"status": "failed", "error": f"{type(exc).__name__}: {exc}"[:300],
                      "failed_after_s": round(loop.time() - started, 3)}
        sample["job_id"] = allocation_of(km.provisioner)
        stopping = loop.time()
        try:
            await km.shutdown_kernel(now=sample["status"] == "failed")
        except Exception as exc:  # noqa: BLE001 - as above
            sample["shutdown_error"] = f"{type(exc).__name__}: {exc}"[:300]
        sample["shutdown_s"] = round(loop.time() - stopping, 3)
        if after != "leave":  # a failed start's allocation gets 15 s to end (0.6.0 cancels 10 s after a kernel)
            sample.update(await until_gone(sample["job_id"], timeout=15 if sample["status"] == "failed" else 90))
        samples.append(sample)
    return {"samples": samples}


def free_ports(count: int) -> list[int]:
    """``count`` distinct ports free on this host right now (the ephemeral range: very likely free on a node)."""
    sockets = [socket.socket() for _ in range(count)]
    try:
        for sock in sockets:
            sock.bind(("", 0))
        return [sock.getsockname()[1] for sock in sockets]
    finally:
        for sock in sockets:
            sock.close()


async def floor(python: str, rounds: str, job_name: str, partition: str, memory: str, minutes: str) -> dict:
    loop = asyncio.get_running_loop()
    folder = tempfile.mkdtemp(prefix="floor-", dir=jupyter_runtime_dir())
    samples = []
    for index in range(int(rounds)):
        started = loop.time()
        code, _, err = await command("salloc", "--no-shell", f"--job-name={job_name}", f"--partition={partition}",
                                     "--nodes=1", "--ntasks=1", "--cpus-per-task=1", f"--mem={memory}",
                                     f"--time={minutes}", timeout=TIMEOUT)
        granted = GRANTED.search(err)
        if code != 0 or not granted:
            raise RuntimeError(f"salloc failed ({code}): {err.strip()[:300]}")
        job_id = granted.group(1)
        _, node, _ = await command("squeue", "-h", "-j", job_id, "-o", "%N")
        path = os.path.join(folder, f"kernel-{index}.json")
        # the kernel runs on the node: its address, and ports free here (write_connection_file would bind the
        # node's address on this host to find some)
        ports = dict(zip(("shell_port", "iopub_port", "stdin_port", "hb_port", "control_port"), free_ports(5)))
        write_connection_file(path, ip=socket.gethostbyname(node.strip().split(",")[0]), **ports)
        kernel = await asyncio.create_subprocess_exec(
            "srun", f"--jobid={job_id}", "--nodes=1", "--ntasks=1", "--input=none", python, "-m",
            "ipykernel_launcher", "-f", path, stdin=asyncio.subprocess.DEVNULL)
        kc = AsyncKernelClient()
        kc.load_connection_file(path)
        kc.start_channels()
        status = await first_reply(kc)
        sample = {"first_reply_s": round(loop.time() - started, 3), "status": status, "job_id": job_id}
        kc.stop_channels()
        await command("scancel", job_id)
        await kernel.wait()
        sample.update(await until_gone(job_id))
        samples.append(sample)
    return {"samples": samples}


def main(argv: list[str]) -> None:
    scenario = {"latency": latency, "floor": floor}[argv[0]]
    os.makedirs(jupyter_runtime_dir(), mode=0o700, exist_ok=True)  # as a Jupyter server does at its start
    result = asyncio.run(scenario(*argv[1:]))
    print("RESULT " + json.dumps(result), flush=True)


if __name__ == "__main__":
    main(sys.argv[1:])
