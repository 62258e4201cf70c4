"""scripts/calibrate_thresholds.py: the per-keyword thresholds spend the false-alarm budget where it buys
the most words, and never more of it than the single threshold spends."""

from __future__ import annotations

import sys
from collections import Counter
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from calibrate_thresholds import GRID, calibrate, totals  # noqa: E402


def _table(found: dict, false: dict) -> dict:
    """Per grid threshold: (found, false alarms) Counters, from `{keyword: f(threshold)}`."""
    return {t: (Counter({k: f(t) for k, f in found.items()}), Counter({k: f(t) for k, f in false.items()}))
            for t in GRID}  # fmt: skip


def test_each_keyword_gets_the_threshold_its_false_alarms_allow():
    table = _table(
        found={
            "sheila": lambda t: 10 if t <= 0.5 else 6,
            "off": lambda t: 10 if t <= 0.5 else 9 if t <= 0.7 else 8,
            "up": lambda t: 9,
        },  # fmt: skip
        false={
            "sheila": lambda t: 0,
            "off": lambda t: 6 if t <= 0.5 else 1 if t <= 0.7 else 0,
            "up": lambda t: 3 if t <= 0.4 else 0,
        },  # fmt: skip
    )
    words = ["sheila", "off", "up"]
    budget = totals(table, dict.fromkeys(words, 0.7))[1]  # one threshold 0.7: 1 false alarm
    chosen = calibrate(table, words, budget)
    assert chosen["sheila"] == 0.5  # finds more and never false-alarms: as low as it helps, no lower
    assert chosen["off"] == 0.7 and chosen["up"] == GRID[-1]  # "up" gains nothing by going lower
    found, false = totals(table, chosen)
    assert false <= budget and found > totals(table, dict.fromkeys(words, 0.7))[0]
    assert calibrate(table, words, 0) == {"sheila": 0.5, "off": GRID[-1], "up": GRID[-1]}
