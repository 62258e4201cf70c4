"""What the process may use of the machine."""

import os
import subprocess
import sys

import pytest

from speechrnn import system, train


def test_usable_cores_follows_the_cpu_affinity_not_the_machine(monkeypatch):
    monkeypatch.setattr(os, "cpu_count", lambda: 64)  # a big host...
    monkeypatch.setattr(os, "sched_getaffinity", lambda pid: {3, 5}, raising=False)  # ...lending us two cores
    assert system.usable_cores() == 2
    assert train.cpu_threads(0, world=1) == 2  # training threads follow it
    assert train.cpu_threads(0, world=4) == 1


def test_usable_cores_without_affinity_counts_the_machine(monkeypatch):
    monkeypatch.delattr(os, "sched_getaffinity", raising=False)
    monkeypatch.setattr(os, "cpu_count", lambda: None)  # unknown: still one core
    assert system.usable_cores() == 1
    monkeypatch.setattr(os, "cpu_count", lambda: 6)
    assert system.usable_cores() == 6


@pytest.mark.skipif(not hasattr(os, "sched_setaffinity"), reason="no CPU affinity on this system")
def test_a_process_pinned_to_one_core_uses_one():
    # As `taskset -c N` or a one-core container would start it: the count is the process's, not the machine's.
    pin = "import os; os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})"
    count = "from speechrnn.system import usable_cores; print(usable_cores())"
    done = subprocess.run(
        [sys.executable, "-c", f"{pin}; {count}"], capture_output=True, text=True, check=True, timeout=60
    )
    assert done.stdout.strip() == "1"
