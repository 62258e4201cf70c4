"""Keyword spotting: the label scores of a stream become detection events.

The streaming recogniser gives, at every encoder step, the label head pooled over the last second. The
spotter turns those logits into probabilities, averages them over a short window (as TensorFlow's
`RecognizeCommands` does), and fires when one keyword is the top label, at or above the threshold, for a
minimum number of consecutive steps. After an event nothing fires for the refractory time, and the same run
of steps never fires twice. A keyword must also reach the threshold soon after it became the top label
(`onset_ms`): a word stays in the label head's one-second window after it is spoken, and a word that was
top but uncertain can creep over the threshold as its beginning slides out of the window, most of a second
late (docs/LIVE.md measures how many false positives they were). `_silence_` and
`_unknown_` never fire, but as top labels they block the others.

User parameters are milliseconds, converted to steps once. Decisions are made step by step with carried
state, so the events do not depend on how the stream was cut into chunks.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .config import SpotterConfig
from .errors import SpeechRNNError
from .recognizer import StreamOutput
from .words import SILENCE, UNKNOWN

NON_KEYWORDS = (SILENCE, UNKNOWN)


@dataclass(frozen=True)
class Detection:
    """One event: `keyword` heard, decided at `time` seconds from the stream start, with `score`."""

    keyword: str
    time: float  # seconds from the stream start at which the event was decided (its step's ready time)
    score: float  # smoothed probability of the keyword at the event
    step: int  # encoder step at which it fired

    def to_dict(self) -> dict:
        """The JSON form `{"keyword", "time", "score"}`."""
        return {"keyword": self.keyword, "time": round(self.time, 3), "score": round(self.score, 4)}


class KeywordSpotter:
    """Turns consecutive `StreamOutput`s of one stream into `Detection`s.

    Args:
        labels: the model's label names, in head order.
        step_seconds: seconds per encoder step.
        config: thresholds and times.
        thresholds: per-keyword thresholds overriding `config.threshold`.

    Raises:
        SpeechRNNError: a keyword that is not among the labels, or that cannot fire; out-of-range settings.
    """

    def __init__(
        self,
        labels: tuple[str, ...],
        step_seconds: float,
        config: SpotterConfig = SpotterConfig(),
        thresholds: dict[str, float] | None = None,
    ):
        for name, t in [
            ("threshold", config.threshold),
            *((f"{k}'s threshold", v) for k, v in (thresholds or {}).items()),
        ]:
            if not 0.0 <= t <= 1.0:
                raise SpeechRNNError(f"{name} must be a probability in [0, 1], got {t:g}")
        self.thresholds = np.array([float((thresholds or {}).get(x, config.threshold)) for x in labels])
        for name in ("smooth_ms", "min_ms", "refractory_ms"):
            if not getattr(config, name) >= 0:
                raise SpeechRNNError(f"{name} must be >= 0 ms, got {getattr(config, name):g}")
        if config.onset_ms is not None and not config.onset_ms >= 0:
            raise SpeechRNNError(f"onset_ms must be >= 0 ms or None, got {config.onset_ms:g}")
        self.labels, self.config = tuple(labels), config
        spottable = [label for label in self.labels if label not in NON_KEYWORDS]
        if config.keywords is None:
            wanted = spottable
        else:
            wanted = list(config.keywords)
            for word in wanted:
                if word not in spottable:
                    what = "never fires" if word in NON_KEYWORDS else "is not one of the model's labels"
                    raise SpeechRNNError(f"keyword {word!r} {what}; the model spots: {', '.join(spottable)}")
        self._fires = np.array([label in wanted for label in self.labels])
        step_ms = 1000.0 * step_seconds
        self.smooth = max(1, round(config.smooth_ms / step_ms))  # steps averaged
        self.min_steps = max(1, math.ceil(config.min_ms / step_ms - 1e-9))  # supporting steps
        self.refractory = math.ceil(config.refractory_ms / step_ms - 1e-9)  # steps after an event
        self.onset = None if config.onset_ms is None else math.floor(config.onset_ms / step_ms + 1e-9)
        self.reset()

    def reset(self) -> None:
        """Forget the stream."""
        n_labels = len(self.labels)
        self._history = np.zeros((self.smooth - 1, n_labels))  # last probabilities
        self.scores = np.zeros((0, n_labels))  # smoothed probabilities of the steps of the last update
        self._seen = 0  # steps seen so far
        self._run_label = -1  # label of the current run of supporting steps (-1: none)
        self._run = 0  # its length in steps
        self._run_fired = False  # whether the current run has already fired
        self._last_event = -(10**12)  # step of the last event
        self._top, self._top_steps = -1, 0  # the top label and for how many steps it has been on top

    def update(self, out: StreamOutput) -> list[Detection]:
        """Consume the next steps of the stream; return the events they trigger, in order.

        Also sets `scores`: the smoothed label probabilities `(steps, n_labels)` of those steps, the
        scores the threshold is compared with (what a display shows per keyword).
        """
        if out.steps == 0:
            self.scores = self._history[:0]
            return []
        if out.start != self._seen:
            raise SpeechRNNError(
                f"spotter expected step {self._seen} next, got output starting at step {out.start}"
            )
        smoothed = self.scores = self._smooth(out.label_probs())
        score, top = smoothed.max(axis=-1), smoothed.argmax(axis=-1)
        supports = (score >= self.thresholds[top]) & self._fires[top]
        events = []
        for i, (label, ok, p) in enumerate(zip(top.tolist(), supports.tolist(), score.tolist(), strict=True)):
            step = out.start + i
            self._top_steps = self._top_steps + 1 if label == self._top else 1
            self._top = label
            if not ok:
                self._run_label, self._run, self._run_fired = -1, 0, False
                continue
            if label != self._run_label:
                self._run_label, self._run, self._run_fired = label, 0, False
            self._run += 1
            rested = step - self._last_event >= self.refractory
            prompt = self.onset is None or self._top_steps - self._run <= self.onset  # not a late creep
            if self._run >= self.min_steps and not self._run_fired and rested and prompt:
                events.append(Detection(self.labels[label], float(out.ready_seconds[i]), p, step))
                self._run_fired, self._last_event = True, step
        self._seen = out.end
        return events

    def _smooth(self, probs: np.ndarray) -> np.ndarray:
        """Moving average over the last `smooth` steps (fewer at the stream start). `(steps, n_labels)`."""
        x = np.concatenate([self._history, probs])
        keep = self.smooth - 1
        self._history = x[x.shape[0] - keep :]
        sums = np.lib.stride_tricks.sliding_window_view(x, self.smooth, axis=0).sum(
            axis=-1
        )  # (steps, n_labels)
        counts = np.minimum(np.arange(self._seen + 1, self._seen + probs.shape[0] + 1), self.smooth)
        return sums / counts[:, None]
