"""Keyword spotting by the search `transcribe` runs: the command words among English's common words, live.

Over a stream's CTC log-probabilities and the label head's posteriors, the lexicon-constrained beam search
(`decoding.beam_search`: common English words compete with the command words, and the label head confirms
the command words, as `transcribe` scores them) runs over the last `span_ms` of the stream every `every_ms`.
A command word it names is decided once: in the first search that ends at least `settle_ms` after its last
letter, if its score reaches the threshold. Searches end at fixed steps of the stream (multiples of
`every_ms`), so the events do not depend on how the stream was cut into chunks, and each search's work is
bounded by the span. Prose spelled as ordinary words is not forced into commands, which is why this hears
more command words than the label head at the same false alarms (docs/connected-speech.md).

The flashlight decoder needs torch, which is imported when a spotter is made.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import numpy as np

from .config import SearchConfig
from .decoding import UNK_WORD, DecodingOptions, LabelHead, beam_search, make_lexicon, with_fillers
from .errors import SpeechRNNError
from .kws import KeywordHit
from .vocab import VOCAB


class SearchSpotter:
    """Streaming keyword detector: the beam search over the last `span_ms`, every `every_ms`.

    Args:
        keywords: the words to spot (spelled a-z).
        labels, window: the model's label names and the steps its label head pools (`LabelHead`).
        step_seconds: duration of one encoder step.
        config: the search's settings and default threshold.
        thresholds: per-keyword thresholds overriding `config.threshold`.

    Raises:
        SpeechRNNError: no keywords, or a threshold outside (0, 1], or an unspellable keyword.
    """

    def __init__(
        self,
        keywords: Sequence[str],
        labels: Sequence[str],
        window: int,
        step_seconds: float,
        config: SearchConfig = SearchConfig(),
        thresholds: dict[str, float] | None = None,
    ):
        if not keywords:
            raise SpeechRNNError("expected at least one keyword to spot, got none")
        lexicon = make_lexicon(keywords)
        self.keywords = tuple(lexicon)
        self.thresholds = {k: float((thresholds or {}).get(k, config.threshold)) for k in self.keywords}
        if not all(0 < t <= 1 for t in self.thresholds.values()):
            raise SpeechRNNError(
                f"expected keyword thresholds in (0, 1], got {sorted(self.thresholds.values())}"
            )
        self.lexicon, self.report = with_fillers(lexicon, config.fillers), frozenset(lexicon)
        self.head = LabelHead(tuple(labels), window)
        self.options = DecodingOptions(beam=config.beam, min_word_score=0.0)
        self.step_seconds = step_seconds
        steps = {
            k: max(1, math.ceil(getattr(config, k) / 1000 / step_seconds)) for k in ("span_ms", "every_ms")
        }
        self.span, self.every = steps["span_ms"], steps["every_ms"]
        self.settle = max(0, math.ceil(config.settle_ms / 1000 / step_seconds))
        if self.settle + self.every > self.span:
            raise SpeechRNNError("the search's span must hold settle_ms and every_ms")
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        self.log_probs = np.zeros((0, len(VOCAB)), np.float32)  # the steps the next search may reach back to
        self.probs = np.zeros((0, len(self.head.labels)), np.float32)
        self.step = 0  # steps seen

    def update(self, log_probs: np.ndarray, label_probs: np.ndarray) -> list[KeywordHit]:
        """Feed the next steps: `(steps, n_vocab)` CTC log-probabilities and `(steps, n_labels)` posteriors of
        the label head's window ending at each step. Returns the keywords decided in them."""
        lp, probs = np.asarray(log_probs, np.float32), np.asarray(label_probs, np.float32)
        self.log_probs = np.concatenate([self.log_probs, lp])
        self.probs = np.concatenate([self.probs, probs])
        seen, self.step = self.step, self.step + lp.shape[0]
        hits: list[KeywordHit] = []
        # Searches end at multiples of `every` steps into the stream, for any chunking.
        for end in range((seen // self.every + 1) * self.every, self.step + 1, self.every):
            hits += self._search(end)
        keep = min(self.span - 1, len(self.log_probs))  # what the next chunk's searches may reach back to
        self.log_probs = self.log_probs[len(self.log_probs) - keep :]
        self.probs = self.probs[len(self.probs) - keep :]
        return hits

    def _search(self, end: int) -> list[KeywordHit]:
        """The search over the `span` steps before stream step `end`, and the words it decides."""
        stop = end - (self.step - len(self.log_probs))  # `end` as an index into the buffer
        begin = max(0, stop - self.span)
        words = beam_search(
            self.log_probs[begin:stop],
            self.lexicon,
            self.options,
            self.step_seconds,
            offset=end - (stop - begin),
            report=self.report,
            head=self.head,
            label_probs=self.probs[begin:stop],
        )
        hits = []
        for w in words:
            last = round(w.end / self.step_seconds)  # one step after the word's last letter
            new = end - self.settle - self.every < last <= end - self.settle
            if w.word != UNK_WORD and new and w.score >= self.thresholds[w.word]:
                hits.append(KeywordHit(w.word, end - 1, w.score, round(w.start / self.step_seconds)))
        return hits
