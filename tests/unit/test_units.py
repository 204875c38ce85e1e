"""units.py: sizes and durations both ways (what users type, what Slurm prints), and the words people read."""

from __future__ import annotations

import pytest

from dkrzspawner import units


# -- what users type ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("text, mb", [
    ("500M", 500), ("500", 500), ("8G", 8192), ("1T", 1024 * 1024), ("2048K", 2), ("2500M", 2500), ("0M", 0),
])
def test_memory_mb(text, mb):
    assert units.memory_mb(text) == mb


@pytest.mark.parametrize("text", ["", "8 G", "8g", "8GB", "-1G", "1.5G", "G", "8G\x00", "1234567890M"])
def test_memory_mb_malformed(text):
    with pytest.raises(ValueError):
        units.memory_mb(text)


@pytest.mark.parametrize("text, seconds", [
    ("00:00:00", 0), ("00:01:00", 60), ("1:00:00", 3600), ("12:00:00", 43200), ("99:59:59", 359999),
    ("1-00:00:00", 86400), ("7-00:00:00", 604800), ("2-03:04:05", 2 * 86400 + 3 * 3600 + 4 * 60 + 5),
])
def test_runtime_seconds(text, seconds):
    assert units.runtime_seconds(text) == seconds


@pytest.mark.parametrize("text", ["", "1:00", "01:00:60", "01:60:00", "100:00:00", "1-1-00:00:00", "x", "-01:00:00",
                                  "01:00:00 ", " 01:00:00", "1d"])
def test_runtime_seconds_malformed(text):
    with pytest.raises(ValueError):
        units.runtime_seconds(text)


@pytest.mark.parametrize("seconds, text", [
    (0, "00:00:00"), (59, "00:00:59"), (3600, "01:00:00"), (43200, "12:00:00"), (86399, "23:59:59"),
    (86400, "1-00:00:00"), (90061, "1-01:01:01"), (7 * 86400, "7-00:00:00"),
])
def test_format_runtime(seconds, text):
    assert units.format_runtime(seconds) == text
    assert units.runtime_seconds(text) == seconds


def test_runtime_round_trip():
    for seconds in list(range(0, 200_000, 997)) + [86400 * d for d in range(1, 100)]:
        assert units.runtime_seconds(units.format_runtime(seconds)) == seconds



# -- what Slurm prints ---------------------------------------------------------------------------------
@pytest.mark.parametrize("text, seconds", [
    ("7-00:00:00", 7 * 86400), ("12:00:00", 43200), ("1:00:00", 3600), ("30:00", 1800), ("90", 5400),
    ("2-12", 2 * 86400 + 12 * 3600), ("1-02:03", 86400 + 2 * 3600 + 180), ("UNLIMITED", None), ("NONE", None),
    ("INFINITE", None),
])
def test_durations(text, seconds):
    assert units.slurm_duration_seconds(text) == seconds


@pytest.mark.parametrize("text", ["soon", "1:2:3:4", "-1", "1h"])
def test_bad_durations(text):
    with pytest.raises(ValueError):
        units.slurm_duration_seconds(text)


@pytest.mark.parametrize("text, mb", [("16000", 16000), ("16000M", 16000), ("2G", 2048), ("1.5G", 1536),
                                      ("UNLIMITED", None), ("512K", 0)])
def test_slurm_memory(text, mb):
    assert units.slurm_memory_mb(text) == mb


@pytest.mark.parametrize("text", ["", "N/A", "n/a", "None", "NONE", "(null)", "Unknown", "UNLIMITED", "INFINITE", " N/A "])
def test_unset_words(text):
    assert units.unset(text) and units.value_or_none(text) is None


def test_values_are_stripped():
    assert units.value_or_none(" node1 ") == "node1"
