"""Regular expressions for JSON Schemas: the texts of a range of runtimes or memory sizes, as users type them.

JSON Schema compares strings only by pattern, so "a runtime between 00:01:00 and 12:00:00" becomes a pattern
that matches exactly the texts :func:`dkrzspawner.units.runtime_seconds` reads as a value in that range (every
spelling: ``1-02:00:00``, ``26:00:00``, ``0-26:00:00``), and likewise for memory (:func:`dkrzspawner.units.memory_mb`:
``8G``, ``8192M``, ``0008192``, ``8388608K``). The patterns use only what ECMA 262 (JSON Schema's dialect) and
Python's ``re`` read alike, and are anchored so that neither lets a trailing newline through
(:func:`anchored`). Pure, imports nothing of the package: the formats are :mod:`dkrzspawner.units`' ``RUNTIME``
and ``MEMORY``, restated digit by digit here and checked against them by the unit tests.
"""

from __future__ import annotations

#: digits of a runtime's days and hours (``[0-9]{1,2}``), and so the longest runtime that can be written
RUNTIME_DIGITS = 2
LONGEST_RUNTIME = ((99 * 24 + 99) * 60 + 59) * 60 + 59
#: digits of a memory size (``[0-9]{1,9}``), and MB per unit (K is 1/1024 MB, rounded down; no unit is M)
MEMORY_DIGITS = 9
MEMORY_UNITS = {"K": None, "M?": 1, "G": 1024, "T": 1024 ** 2}


def anchored(body: str) -> str:
    """``body`` as the whole string: ``^(?:body)$(?!\\n)`` (Python's ``$`` would also match before a final
    newline; the look-ahead refuses it, and ECMA 262 reads it the same)."""
    return rf"^(?:{body})$(?!\n)"


def _group(alternatives: list[str]) -> str:
    return alternatives[0] if len(alternatives) == 1 else "(?:" + "|".join(alternatives) + ")"


def _digit(low: int | str, high: int | str) -> str:
    return f"{low}" if int(low) == int(high) else f"[{low}-{high}]"


def _any(count: int) -> str:
    return "" if count == 0 else "[0-9]" if count == 1 else f"[0-9]{{{count}}}"


def _fixed(low: str, high: str) -> list[str]:
    """Alternatives matching the decimal strings of ``len(low)`` digits from ``low`` to ``high``."""
    if low == high:
        return [low]
    rest = len(low) - 1
    if low[1:] == "0" * rest and high[1:] == "9" * rest:
        return [_digit(low[0], high[0]) + _any(rest)]
    if low[0] == high[0]:
        return [low[0] + _group(_fixed(low[1:], high[1:]))]
    found = [low[0] + _group(_fixed(low[1:], "9" * rest))]
    if int(high[0]) - int(low[0]) > 1:
        found.append(_digit(int(low[0]) + 1, int(high[0]) - 1) + _any(rest))
    found.append(high[0] + _group(_fixed("0" * rest, high[1:])))
    return found


def digits(low: int, high: int, width: int, exact: bool = False) -> str:
    """A pattern for the numbers from ``low`` to ``high`` written with 1 to ``width`` digits, leading zeros
    allowed (``exact``: with exactly ``width`` digits); '' when the range is empty."""
    if exact:
        return _group(_fixed(str(low).zfill(width), str(high).zfill(width))) if low <= high else ""
    found = []
    for count in range(1, width + 1):  # the number's own digits, after up to width - count zeros
        first, top = max(low, 10 ** (count - 1) if count > 1 else 0), min(high, 10 ** count - 1)
        if first <= top:
            zeros = width - count
            padding = "" if zeros == 0 else "0?" if zeros == 1 else f"0{{0,{zeros}}}"
            found.append(padding + _group(_fixed(str(first), str(top))))
    return _group(found) if found else ""


def _split(low: int, high: int, unit: int) -> list[tuple[int, int, int, int]]:
    """The values from ``low`` to ``high`` as blocks ``(q_low, q_high, r_low, r_high)`` of ``q * unit + r``."""
    q_low, r_low = divmod(low, unit)
    q_high, r_high = divmod(high, unit)
    if q_low == q_high:
        return [(q_low, q_low, r_low, r_high)]
    blocks = []
    if r_low:
        blocks.append((q_low, q_low, r_low, unit - 1))
        q_low += 1
    last = (q_high, q_high, 0, r_high) if r_high < unit - 1 else None
    if last:
        q_high -= 1
    if q_low <= q_high:
        blocks.append((q_low, q_high, 0, unit - 1))
    if last:
        blocks.append(last)
    return blocks


def _clock(low: int, high: int) -> str:
    """``MM:SS`` (two digits each, 00-59) for the seconds ``low`` to ``high`` within an hour."""
    return _group([f"{digits(m_low, m_high, 2, exact=True)}:{digits(s_low, s_high, 2, exact=True)}"
                   for m_low, m_high, s_low, s_high in _split(low, high, 60)])


def _hours(low: int, high: int) -> str:
    """``H`` or ``D-H`` (1 or 2 digits each) for ``24 * D + H`` from ``low`` to ``high`` hours."""
    top = 10 ** RUNTIME_DIGITS - 1
    found = []
    if low <= top:
        found.append(digits(low, min(high, top), RUNTIME_DIGITS))
    runs: list[list[int]] = []  # [first day, last day, first hour, last hour]
    for day in range(top + 1):
        first, last = max(low - 24 * day, 0), min(high - 24 * day, top)
        if first > last:
            continue
        if runs and runs[-1][1] == day - 1 and runs[-1][2:] == [first, last]:
            runs[-1][1] = day
        else:
            runs.append([day, day, first, last])
    for first_day, last_day, first, last in runs:
        found.append(f"{digits(first_day, last_day, RUNTIME_DIGITS)}-{digits(first, last, RUNTIME_DIGITS)}")
    return _group(found)


def runtime_pattern(low: int, high: int | None) -> str | None:
    """The anchored pattern of the runtime texts (``[D-]HH:MM:SS``) from ``low`` to ``high`` seconds (None: the
    longest that can be written); None when no text is in the range."""
    high = LONGEST_RUNTIME if high is None else min(high, LONGEST_RUNTIME)
    low = max(low, 0)
    if low > high:
        return None
    return anchored("|".join(f"{_hours(h_low, h_high)}:{_clock(r_low, r_high)}"
                             for h_low, h_high, r_low, r_high in _split(low, high, 3600)))


def memory_pattern(low: int, high: int | None) -> str | None:
    """The anchored pattern of the memory texts (a number of up to 9 digits and K, M, G, T or no unit) that are
    ``low`` to ``high`` MB (None: no upper limit); None when no text is in the range."""
    largest = 10 ** MEMORY_DIGITS - 1
    found = []
    for unit, per in MEMORY_UNITS.items():
        if per is None:  # K: floor(n / 1024) MB
            first, last = low * 1024, largest if high is None else high * 1024 + 1023
        else:
            first, last = -(-low // per), largest if high is None else high // per
        last = min(last, largest)
        if max(first, 0) <= last:
            found.append(digits(max(first, 0), last, MEMORY_DIGITS) + unit)
    return anchored("|".join(found)) if found else None
