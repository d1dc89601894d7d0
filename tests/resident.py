"""How much of a memory-mapped file counts in this process's memory (Linux only)."""

from __future__ import annotations

from pathlib import Path

import numpy as np


def resident_bytes(a: np.ndarray) -> int:
    """How many bytes of the mapping holding `a` count in this process's memory now: the Rss
    of its entry in /proc/self/smaps (Linux's account of each mapping)."""
    address = a.ctypes.data
    lines = Path("/proc/self/smaps").read_text().splitlines()
    for i, line in enumerate(lines):
        first = line.split()[0]
        if "-" in first and not first.endswith(":"):  # a mapping's header: start-end perms ...
            start, end = (int(n, 16) for n in first.split("-"))
            if start <= address < end:
                rss = next(s for s in lines[i + 1 :] if s.startswith("Rss:"))
                return int(rss.split()[1]) * 1024
    raise AssertionError("no mapping holds the array")
