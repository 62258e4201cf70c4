"""Keyword spotting over the CTC head: any keyword spelled a-z, found in the stream of letter posteriors.

Each keyword is its letters in CTC form (blank, k, blank, e, ..., blank; a space between the words of a
phrase). At every step a Viterbi pass over those states carries the best path's log-probability *relative to
the best symbol of each step* (token passing against a free "filler" path, as PocketSphinx's `-kws` mode and
sherpa-onnx's keyword spotter score a keyword against everything else), so a path that follows what the
model hears costs nothing and every letter it did not hear costs its log-ratio. A keyword's score is that
cost per letter, as a probability: `exp(cost / letters)`, 1 when the model spelled exactly the keyword.

Words, not letters in the middle of words: a keyword may start only at a word boundary (the model spelled a
space, or no letter for `boundary_ms`), so "snow" does not hold "no"; and it is decided only when its word
has ended (a space, or `end_ms` without a letter), so "four" does not fire in "fourteen" nor "go" in "gold".
The event's time is the step at which that end is seen.

Work per step is a few operations per keyword letter and does not grow with the stream. Pure numpy: the
live path over ONNX Runtime uses it without torch.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

from .errors import SpeechRNNError
from .vocab import BLANK_ID, SPACE_ID, VOCAB, normalize_text, spellable

NEG = -1e30  # log-probability of an unreachable state (finite, so sums stay ordered)


@dataclass(frozen=True)
class KeywordConfig:
    """When a spelled keyword fires. Times are milliseconds of audio."""

    threshold: float = (
        0.5  # per-letter score (0-1) a keyword must reach; `thresholds` may set one per keyword
    )
    boundary_ms: float = 200.0  # this long without a letter is a word boundary (as a spelled space is)
    end_ms: float = 120.0  # a keyword is decided this long after its last letter, if no space came sooner


@dataclass(frozen=True)
class KeywordHit:
    """A keyword decided at encoder step `step`, `score` its per-letter probability (see the module doc)."""

    keyword: str
    step: int
    score: float
    start_step: int  # where its path started


def keyword_tokens(keyword: str) -> list[int]:
    """Vocabulary ids of a keyword's letters (spaces between words).

    Raises:
        SpeechRNNError: the keyword is empty or uses characters outside a-z and the apostrophe.
    """
    words = normalize_text(keyword).split()
    if (
        not words
        or not all(spellable(w) for w in words)
        or " ".join(words) != " ".join(keyword.lower().split())
    ):
        raise SpeechRNNError(f"cannot spot {keyword!r}: expected words spelled with the letters a-z")
    return [VOCAB.index(c) for c in " ".join(words)]


class CTCKeywordSpotter:
    """Streaming keyword detector over per-step CTC log-probabilities.

    Args:
        keywords: words or short phrases spelled a-z.
        step_seconds: duration of one encoder step.
        config: boundaries and the default threshold.
        thresholds: per-keyword thresholds overriding `config.threshold`.
    """

    def __init__(
        self,
        keywords: Sequence[str],
        step_seconds: float,
        config: KeywordConfig = KeywordConfig(),
        thresholds: dict[str, float] | None = None,
    ):
        if not keywords:
            raise SpeechRNNError("expected at least one keyword to spot, got none")
        self.keywords = tuple(dict.fromkeys(" ".join(k.lower().split()) for k in keywords))
        self.config = config
        self.thresholds = np.array(
            [float((thresholds or {}).get(k, config.threshold)) for k in self.keywords], dtype=np.float64
        )
        if not np.all((self.thresholds > 0) & (self.thresholds <= 1)):
            raise SpeechRNNError(f"expected keyword thresholds in (0, 1], got {self.thresholds.tolist()}")
        self.boundary_steps = max(1, math.ceil(config.boundary_ms / 1000 / step_seconds))
        self.end_steps = max(1, math.ceil(config.end_ms / 1000 / step_seconds))
        tokens = [keyword_tokens(k) for k in self.keywords]
        self.letters = np.array([len(t) for t in tokens], dtype=np.float64)
        states = max(2 * len(t) + 1 for t in tokens)
        # Expanded CTC states per keyword: blank, t1, blank, t2, ..., tL, blank, padded with unreachable ones.
        self.ids = np.full((len(tokens), states), BLANK_ID, dtype=np.int64)
        self.valid = np.zeros((len(tokens), states), dtype=bool)
        self.skip = np.zeros((len(tokens), states), dtype=bool)  # may come from two states back
        self.last = np.array([2 * len(t) - 1 for t in tokens])  # index of the last letter's state
        self.last_ids = np.array([t[-1] for t in tokens])
        for k, t in enumerate(tokens):
            n = 2 * len(t) + 1
            self.ids[k, 1:n:2] = t
            self.valid[k, :n] = True
            for s in range(3, n, 2):
                self.skip[k, s] = t[(s - 1) // 2] != t[(s - 3) // 2]
        self.reset()

    def reset(self) -> None:
        """Forget the stream: what follows is a new stream starting at a word boundary."""
        k, s = self.ids.shape
        self.alpha = np.full((k, s), NEG)
        self.origin = np.zeros((k, s), dtype=np.int64)  # step where each state's best path started
        self.quiet = self.boundary_steps  # steps since the last letter
        self.boundary = True  # a keyword may start here
        self.pending = np.full(len(self.keywords), -1.0)  # best score of a keyword waiting for its end
        self.pending_start = np.zeros(len(self.keywords), dtype=np.int64)
        self.last_event = -1  # step of the last event
        self.step = 0

    def update(self, log_probs: np.ndarray) -> list[KeywordHit]:
        """Feed `(steps, n_vocab)` log-probabilities (the steps that follow the last call); returns the hits."""
        lp = np.asarray(log_probs, dtype=np.float64)
        if lp.ndim != 2 or lp.shape[1] != len(VOCAB):
            raise SpeechRNNError(f"expected log-probabilities of shape (steps, {len(VOCAB)}), got {lp.shape}")
        hits: list[KeywordHit] = []
        rows = np.arange(self.ids.shape[0])
        for frame in lp:
            best = int(frame.argmax())
            self._advance(frame[self.ids] - frame[best])  # each state's cost: its log-ratio to the best
            letter = best not in (BLANK_ID, SPACE_ID)
            self.quiet = 0 if letter else self.quiet + 1
            ended = best == SPACE_ID or self.quiet >= self.end_steps
            done = np.maximum(self.alpha[rows, self.last], self.alpha[rows, self.last + 1])
            scores = np.exp(done / self.letters)
            # This step can be the keyword's last letter: that letter, or a blank right after it.
            here = ((best == self.last_ids) | (best == BLANK_ID)) & (scores >= self.thresholds)
            better = here & (scores > self.pending)
            self.pending_start[better] = self.origin[rows, self.last][better]
            self.pending[better] = scores[better]
            # Another letter after the keyword's last one: a longer word ("four" in "fourteen").
            self.pending[letter & (best != self.last_ids)] = -1.0
            fire = np.flatnonzero((self.pending >= 0) & ended)
            # One word, one event: the best of those ending here, and none whose path began before the
            # last event was decided ("tree" and "three" both spelled through the same sounds).
            fresh = [k for k in self._outermost(fire) if self.pending_start[k] > self.last_event]
            if fresh:
                k = max(fresh, key=lambda k: self.pending[k])
                hits.append(
                    KeywordHit(
                        self.keywords[k], self.step, float(self.pending[k]), int(self.pending_start[k])
                    )
                )
                self.last_event = self.step
            self.pending[fire] = -1.0
            self.alpha[fire] = NEG  # this path fired; a new one must start again
            self.boundary = best == SPACE_ID or self.quiet >= self.boundary_steps
            self.step += 1
        return hits

    def _advance(self, cost: np.ndarray) -> None:
        """One Viterbi step over every keyword's states, `cost` `(keywords, states)` of this step."""
        a, o = self.alpha, self.origin
        k = a.shape[0]
        move = np.concatenate([np.full((k, 1), NEG), a[:, :-1]], axis=1)
        move_o = np.concatenate([np.zeros((k, 1), np.int64), o[:, :-1]], axis=1)
        jump = np.where(self.skip, np.concatenate([np.full((k, 2), NEG), a[:, :-2]], axis=1), NEG)
        jump_o = np.concatenate([np.zeros((k, 2), np.int64), o[:, :-2]], axis=1)
        new_o = np.where(move > a, move_o, o)
        new = np.maximum(a, move)
        new_o = np.where(jump > new, jump_o, new_o)
        new = np.maximum(new, jump)
        if self.boundary:  # a path may start at a word boundary, in the leading blank or the first letter
            new_o[:, :2] = np.where(new[:, :2] < 0.0, self.step, new_o[:, :2])
            new[:, :2] = np.maximum(new[:, :2], 0.0)
        self.alpha = np.where(self.valid, new + cost, NEG)
        self.origin = new_o

    def _outermost(self, fire: np.ndarray) -> list[int]:
        """The keywords of `fire` that are not the last words of another one firing with them ("on" of
        "lights on")."""
        names = [self.keywords[k] for k in fire]
        return [k for k, n in zip(fire, names, strict=True) if not any(m.endswith(" " + n) for m in names)]
