"""The live search (`SearchSpotter`) on hand-made CTC outputs: what it reads and when it decides."""

import numpy as np
import pytest

from speechrnn.config import SearchConfig
from speechrnn.errors import SpeechRNNError
from speechrnn.search_spotter import SearchSpotter
from speechrnn.vocab import BLANK_ID, VOCAB

LABELS = ("_silence_", "_unknown_", "backward", "go")
STEP_S = 0.02  # 20 ms steps


def spoken(word: str, at: int, steps: int, letter_steps: int = 2) -> tuple[np.ndarray, np.ndarray]:
    """CTC log-probs of `steps` steps: blank everywhere but `word`'s letters, spread evenly from step `at`
    over `letter_steps` each; and label posteriors that name `word` throughout."""
    probs = np.full((steps, len(VOCAB)), 1e-4, np.float32)
    probs[:, BLANK_ID] = 1.0
    gap = 0 if len(word) < 2 else (steps - at - letter_steps * len(word)) // (2 * len(word))
    t = at
    for c in word:
        probs[t : t + letter_steps] = 1e-4
        probs[t : t + letter_steps, VOCAB.index(c)] = 1.0
        t += letter_steps + gap
    probs *= np.random.default_rng(0).uniform(1.0, 1.1, probs.shape)  # no exact ties for the beam to break
    lp = np.log(probs / probs.sum(axis=1, keepdims=True)).astype(np.float32)
    head = np.full((steps, len(LABELS)), 0.02, np.float32)
    head[:, LABELS.index(word) if word in LABELS else 1] = 0.9
    return lp, head


def hear(spotter: SearchSpotter, lp: np.ndarray, head: np.ndarray, chunk: int) -> list:
    hits = []
    for i in range(0, len(lp), chunk):
        hits += spotter.update(lp[i : i + chunk], head[i : i + chunk])
    return hits


def make(**config) -> SearchSpotter:
    return SearchSpotter(["backward", "go"], LABELS, 50, STEP_S, SearchConfig(fillers=200, **config))


def test_a_slow_word_is_found_whole_within_the_span_whatever_the_chunking():
    """A word said over more than a second needs a span that long: each search reads the whole span before
    it, not a part of it, for any chunk size, and its work stays bounded."""
    lp, head = spoken("backward", at=40, steps=160)  # letters over about 1.1 s, then silence
    spotter = make(span_ms=1500.0)
    reference = hear(spotter, lp, head, 1)
    assert [h.keyword for h in reference] == ["backward"]
    assert reference[0].start_step == 40 and reference[0].score > 0.5
    assert len(spotter.log_probs) == spotter.span - 1  # what the next search may reach back to, no more
    for chunk in (7, 50, 160):
        assert hear(make(span_ms=1500.0), lp, head, chunk) == reference, chunk


def test_a_word_longer_than_the_span_is_not_found():
    lp, head = spoken("backward", at=40, steps=160)
    assert hear(make(), lp, head, 10) == []  # the default span is shorter


def test_silence_decides_nothing_and_a_threshold_outside_zero_to_one_is_refused():
    lp, head = spoken("go", at=0, steps=1)
    silent = np.repeat(lp[:1] * 0 + np.log(np.eye(len(VOCAB))[BLANK_ID] + 1e-6), 200, axis=0)
    assert hear(make(), silent.astype(np.float32), np.repeat(head, 200, axis=0), 13) == []
    with pytest.raises(SpeechRNNError, match=r"thresholds in \(0, 1\]"):
        make(threshold=1.5)
