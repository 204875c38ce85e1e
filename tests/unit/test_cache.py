"""cache.py: the TTL cache shared by the hub's Slurm (and Lmod) queries, with a fake clock."""

from __future__ import annotations

import asyncio

import pytest

from dkrzspawner.cache import TTLCache
from dkrzspawner.slurm import SlurmUnreachable


# -- the cache -------------------------------------------------------------------------------------------
class Clock:
    def __init__(self):
        self.now = 1000.0

    def __call__(self):
        return self.now


async def test_cache_keeps_a_value_for_its_ttl():
    clock, calls = Clock(), []

    async def load():
        calls.append(1)
        return len(calls)

    cache = TTLCache(60, clock=clock)
    assert await cache.get("k", load) == 1
    clock.now += 59
    assert await cache.get("k", load) == 1
    clock.now += 2
    assert await cache.get("k", load) == 2
    assert cache.loads == {"k": 2}


async def test_concurrent_callers_share_one_load():
    release = asyncio.Event()
    calls = []

    async def load():
        calls.append(1)
        await release.wait()
        return "answer"

    cache = TTLCache(60)
    waiting = [asyncio.ensure_future(cache.get("k", load)) for _ in range(20)]
    await asyncio.sleep(0)
    release.set()
    assert await asyncio.gather(*waiting) == ["answer"] * 20
    assert calls == [1]


async def test_a_cancelled_caller_does_not_cancel_the_shared_load():
    release = asyncio.Event()

    async def load():
        await release.wait()
        return 42

    cache = TTLCache(60)
    first = asyncio.ensure_future(cache.get("k", load))
    second = asyncio.ensure_future(cache.get("k", load))
    await asyncio.sleep(0)
    first.cancel()
    release.set()
    assert await second == 42
    assert cache.loads == {"k": 1}


async def test_failures_are_remembered_briefly_and_stale_values_served():
    clock, outcomes = Clock(), ["ok", SlurmUnreachable(["sinfo"], 1, "Unable to contact slurm controller"), "fresh"]

    async def load():
        outcome = outcomes.pop(0)
        if isinstance(outcome, Exception):
            raise outcome
        return outcome

    cache = TTLCache(60, error_ttl=5, stale_ttl=600, clock=clock)
    assert await cache.get("k", load) == "ok"
    clock.now += 61
    assert await cache.get("k", load) == "ok", "Slurm down: the last answer, though stale"
    clock.now += 1
    assert await cache.get("k", load) == "ok", "the failure is remembered: no new query"
    assert cache.loads == {"k": 2}
    clock.now += 5
    assert await cache.get("k", load) == "fresh"


async def test_without_a_stale_value_the_failure_is_raised():
    clock = Clock()

    async def load():
        raise SlurmUnreachable(["sinfo"], 1, "Unable to contact slurm controller")

    cache = TTLCache(60, error_ttl=5, clock=clock)
    with pytest.raises(SlurmUnreachable):
        await cache.get("k", load)
    with pytest.raises(SlurmUnreachable):
        await cache.get("k", load)
    assert cache.loads == {"k": 1}
    clock.now += 700
    cache.clear()
    with pytest.raises(SlurmUnreachable):
        await cache.get("k", load)
