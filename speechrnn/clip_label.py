"""The label a transcribed clip or file gets from the classification head.

A clip no longer than the head's window (`config.window` steps, 1 s) is pooled whole. A longer one is judged
window by window (the label logits pooled over the window ending at each step, as the spotter sees them) and
gets the best window's label, preferring a command over `_unknown_` over `_silence_`: an hour of silence with
one "yes" in it is a "yes". A command counts in a window only where the head is at least `COMMAND_FLOOR` sure
of it; a window less sure reads as its best other label. Over hours of noise
some window always leans a little to some word (two hours of white noise were "house" at 0.20), and that is no
answer.
"""

from __future__ import annotations

import torch

from .config import COMMAND_FLOOR
from .model import Recognizer, windowed_labels
from .words import SILENCE, UNKNOWN


def _rank(label: str) -> int:
    return 0 if label == SILENCE else 1 if label == UNKNOWN else 2


class _LabelPicker:
    """Running best window: the highest-probability window among those whose top label ranks highest."""

    def __init__(self, labels: tuple[str, ...]):
        self.labels = labels
        self.ranks = torch.tensor([_rank(x) for x in labels])
        self.best: tuple[int, float, int] | None = None  # (rank, probability, label index)

    def update(self, logits: torch.Tensor, floor: float = 0.0) -> None:
        """Args: logits `(steps, n_labels)` of windows; floor: a window less sure of its top command reads
        as its best label that is no command."""
        if logits.shape[0] == 0:
            return
        probs = logits.float().softmax(dim=-1)
        prob, idx = probs.max(dim=-1)
        others = self.ranks < 2
        unsure = (self.ranks[idx] == 2) & (prob < floor)
        if others.any() and unsure.any():
            other_prob, other_idx = probs.masked_fill(~others, -1.0).max(dim=-1)
            prob, idx = torch.where(unsure, other_prob, prob), torch.where(unsure, other_idx, idx)
        key = self.ranks[idx] * 2 + prob  # rank first, then probability (< 1)
        i = int(key.argmax())
        cand = (int(self.ranks[idx[i]]), float(prob[i]), int(idx[i]))
        if self.best is None or cand[:2] > self.best[:2]:
            self.best = cand

    def result(self) -> tuple[str, float]:
        if self.best is None:
            return (SILENCE if SILENCE in self.labels else self.labels[0]), 0.0
        return self.labels[self.best[2]], self.best[1]


def _clip_label(model: Recognizer, attn: torch.Tensor, logits: torch.Tensor) -> tuple[str, float]:
    """Label of a clip from its attention scores `(steps,)` and per-step label logits `(steps, n_labels)`."""
    picker = _LabelPicker(model.labels)
    steps = attn.shape[0]
    if steps == 0:  # shorter than one MFCC frame: nothing heard
        pass
    elif steps <= model.config.window:
        picker.update((attn.softmax(dim=0)[:, None] * logits).sum(dim=0, keepdim=True))
    else:
        picker.update(windowed_labels(attn[None], logits[None], model.config.window)[0], COMMAND_FLOOR)
    return picker.result()
