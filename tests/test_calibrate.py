"""scripts/calibrate_thresholds.py: the per-keyword thresholds spend the false-alarm budget where it buys
the most words, and never more of it than the single threshold spends."""

from __future__ import annotations

import sys
from collections import Counter, namedtuple
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "scripts"))

from calibrate_thresholds import (  # noqa: E402
    GRID,
    best_weight,
    calibrate,
    cross_validate,
    events,
    halves,
    shrink,
    tally,
    totals,
)


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


def _events(per_speaker: dict) -> dict:
    """Per grid threshold: `(keyword, speaker, found)` events, from `{speaker: {keyword: (found(t), false(t))}}`."""
    return {t: [(k, s, hit) for s, kws in per_speaker.items() for k, (f, a) in kws.items()
                for hit, n in ((True, f(t)), (False, a(t))) for _ in range(n)]
            for t in GRID}  # fmt: skip


def _speakers() -> tuple[list[str], list[str]]:
    """Two speakers of each half, as `halves` cuts them."""
    names = [f"spk{i}" for i in range(40)]
    first, second = halves({0.5: [("x", n, True) for n in names]})
    return sorted(first)[:2], sorted(second)[:2]


def test_a_table_that_holds_on_other_voices_is_kept_whole():
    """Lowering "sheila" finds more for every voice and costs nothing: cross-validation keeps the full move."""
    first, second = _speakers()
    per_speaker = {
        s: {"sheila": (lambda t: 5 if t <= 0.5 else 3, lambda t: 0),
            "off": (lambda t: 5, lambda t: 3 if t <= 0.5 else 0)}
        for s in first + second
    }  # fmt: skip
    swept = _events(per_speaker)
    assert totals(tally(swept, set(first)), {"sheila": 0.5, "off": 0.7}) == (20, 0)
    cv = cross_validate(swept, swept, ["sheila", "off"], 0.7, 0.7)
    assert best_weight(cv) == 1.0 and cv["1"][0] > cv["budget"][0] and cv["1"][1] <= cv["budget"][1]
    assert shrink({"sheila": 0.5, "off": 0.95}, 0.7, 0.5) == {
        "sheila": 0.6,
        "off": 0.8,
    }  # snapped to the grid


def test_a_table_fitted_to_some_voices_that_costs_on_others_is_not_kept():
    """ "sheila" gains at 0.4 for one half's voices only and false-alarms for the other's: the table fitted on
    either half finds nothing more on the other within the budget, so no table."""
    first, second = _speakers()
    per_speaker = {s: {"sheila": (lambda t: 5 if t <= 0.4 else 3, lambda t: 0)} for s in first}
    per_speaker |= {s: {"sheila": (lambda t: 3, lambda t: 4 if t <= 0.4 else 0)} for s in second}
    swept = _events(per_speaker)
    cv = cross_validate(swept, swept, ["sheila"], 0.7, 0.7)
    assert cv["1"][1] > cv["budget"][1] and best_weight(cv) == 0.0


def test_a_false_alarm_is_charged_to_the_voice_nearest_in_time():
    detection = namedtuple("Detection", "keyword time")
    words = [{"word": "yes", "start": 0.0, "end": 0.5, "speaker": "a"},
             {"word": "cat", "start": 3.0, "end": 3.4, "speaker": "b"}]  # fmt: skip
    stream = {"name": "isolated", "words": words}
    got = events(stream, [detection("yes", 0.6), detection("no", 3.5), detection("yes", 1.2)], ["yes", "no"])
    assert got == [("yes", "a", True), ("yes", "a", False), ("no", "b", False)]
