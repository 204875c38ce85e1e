"""This Jupyter server's own Slurm job (``SLURM_JOB_ID`` in its environment), from squeue as its user, for the
status bar and the panel; kept for a few seconds, since the status bar polls. Imports :mod:`dkrzspawner.slurm`
and :mod:`dkrzspawner.reasons`."""

from __future__ import annotations

import datetime
import os
import time
from typing import Mapping

from ..reasons import parse_slurm_time
from ..slurm import JobUnknown, SlurmError, job_info

#: seconds an answer is reused
CACHE_SECONDS = 5.0


def seconds_until(end: str | None, now: datetime.datetime | None = None) -> int | None:
    """Seconds from now until Slurm's local time ``end`` (0 once past), None when Slurm gave none."""
    when = parse_slurm_time(end)
    if when is None:
        return None
    return max(0, int((when - (now or datetime.datetime.now())).total_seconds()))


def describe(info, now: datetime.datetime | None = None) -> dict:
    """A :class:`~dkrzspawner.slurm.JobInfo` as the REST API gives it (``GET dkrzspawner/api/job``)."""
    running = info.state == "RUNNING"
    return {"job_id": info.job_id, "state": info.state, "partition": info.partition, "account": info.account,
            "node": info.nodes, "cores": info.cpus, "memory": info.memory, "gpus": info.gpus,
            "started": info.start_time if running and parse_slurm_time(info.start_time) else None,
            "ends": info.end_time if parse_slurm_time(info.end_time) else None,
            "seconds_left": seconds_until(info.end_time, now) if running else None, "in_job": True}


class OwnJob:
    """The server's job, asked at most once per :data:`CACHE_SECONDS` (the answer's ``seconds_left`` is always
    counted at the request)."""

    def __init__(self, runner, environ: Mapping[str, str] | None = None, timeout: float = 10.0):
        self.runner = runner
        self.job_id = (os.environ if environ is None else environ).get("SLURM_JOB_ID") or None
        self.timeout = timeout
        self._seen: tuple[float, object] | None = None

    async def describe(self) -> dict:
        """``{"in_job": false}`` outside a Slurm job; else the job (fields None when Slurm did not answer, with
        ``error`` saying why; state ``GONE`` when Slurm no longer lists it)."""
        if self.job_id is None:
            return {"in_job": False}
        if self._seen is None or time.monotonic() - self._seen[0] > CACHE_SECONDS:
            try:
                found = await job_info(self.runner, self.job_id, timeout=self.timeout)
            except JobUnknown:
                found = None
            except (SlurmError, ValueError) as exc:
                return {**self._unknown(None), "error": f"Slurm did not answer: {exc}"}
            self._seen = time.monotonic(), found
        found = self._seen[1]
        return describe(found) if found is not None else self._unknown("GONE")

    def forget(self) -> None:
        """Ask Slurm again at the next request (the job's time limit just changed)."""
        self._seen = None

    def _unknown(self, state: str | None) -> dict:
        fields = ("partition", "account", "node", "cores", "memory", "gpus", "started", "ends", "seconds_left")
        return {"job_id": self.job_id, "state": state, **dict.fromkeys(fields), "in_job": True}
