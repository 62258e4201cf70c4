"""What this process may use of the machine."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """CPU cores this process may run on: its CPU affinity where the system has one (a container or
    `taskset` can allow fewer cores than the machine has, and `os.cpu_count` would overcount), else the
    machine's count; at least 1."""
    if hasattr(os, "sched_getaffinity"):
        return max(1, len(os.sched_getaffinity(0)))
    return max(1, os.cpu_count() or 1)
