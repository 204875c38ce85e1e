"""A TTL cache for values that coroutines load from Slurm (or Lmod), shared by every caller of a hub process.

Concurrent callers of a stale key share one load; a failed load is remembered briefly and an older value is
served instead of the error for a while. Imports only :mod:`dkrzspawner.slurm`'s error type.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass

from .slurm import SlurmError

@dataclass
class _Entry:
    value: object = None
    at: float = float("-inf")
    error: BaseException | None = None
    error_at: float = float("-inf")
    loading: asyncio.Future | None = None


class TTLCache:
    """Values loaded by coroutines, kept ``ttl`` seconds, shared by all callers.

    Concurrent callers of a stale key share one load. A failed load is remembered for ``error_ttl``
    seconds (so an outage does not make every page wait for a timeout), and an older value up to
    ``stale_ttl`` old is served instead of the error.
    """

    def __init__(self, ttl: float = 60.0, *, error_ttl: float = 5.0, stale_ttl: float = 600.0, clock=time.monotonic):
        self.ttl = ttl
        self.error_ttl = error_ttl
        self.stale_ttl = stale_ttl
        self.clock = clock
        self._entries: dict[object, _Entry] = {}
        #: loads started, by key: what the cache costs Slurm
        self.loads: dict[object, int] = {}

    async def get(self, key, load):
        entry = self._entries.setdefault(key, _Entry())
        now = self.clock()
        if now - entry.at < self.ttl:
            return entry.value
        if entry.loading is None:
            if entry.error is not None and now - entry.error_at < self.error_ttl:
                return self._stale_or_raise(entry, entry.error)
            entry.loading = asyncio.ensure_future(load())
            entry.loading.add_done_callback(lambda future: self._settle(entry, future))
            self.loads[key] = self.loads.get(key, 0) + 1
        try:
            return await asyncio.shield(entry.loading)
        except SlurmError as exc:
            return self._stale_or_raise(entry, exc)

    def _settle(self, entry: _Entry, future: asyncio.Future):
        entry.loading = None
        if future.cancelled():
            return
        error = future.exception()
        if error is None:
            entry.value, entry.at, entry.error = future.result(), self.clock(), None
        else:
            entry.error, entry.error_at = error, self.clock()

    def _stale_or_raise(self, entry: _Entry, error: BaseException):
        if entry.at > float("-inf") and self.clock() - entry.at < self.stale_ttl:
            return entry.value
        raise error

    def clear(self):
        self._entries.clear()
