"""Training streams: clips end to end, labelled step by step as the live spotter reads them.

Isolated one-second clips teach the label head what a word is, but not what a live stream looks like: words
follow each other, phrases run on, unknown words and the first half of longer words ("for-" of "forward")
come and go, and the forward state is carried from one word into the next. A *training stream* is made of
2-4 training clips (command words, unknown words, phrases, sentences, connected utterances, and sometimes a
command word cut short) trimmed to their speech and joined with random pauses, then passed through the room and channel
augmentation as one recording.

Every encoder step of a stream gets a target for the label head *pooled over the window ending at that step*,
which is exactly what the spotter thresholds (`model.windowed_labels`). The target is the most recently
finished word while it is in the window; `_unknown_` while only an unfinished word (or a fragment) has been
heard; `_silence_` when the window holds no speech; and no target (ignored) in the moments when the answer
is changing: the last `SETTLE_S` of a word, and while a finished word is sliding out of the window.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import SAMPLE_RATE, load_audio
from .augment import AugmentConfig, activity_bounds, augment, noise_recordings, speed_up
from .corpus import Clip
from .errors import SpeechRNNError
from .model import ModelOutput, Recognizer, windowed_labels
from .speechcommands import NO_LABEL, Corpus, Example, split_name
from .utterances import word_balance
from .words import SILENCE, UNKNOWN

IGNORE = -100  # target of steps without one (`cross_entropy(ignore_index=IGNORE)`)
_STREAM_SEED = 2  # third word of the seed: streams, apart from the word dataset's item streams
_FADE = SAMPLE_RATE // 100  # 10 ms fade at the cut of a fragment, so the cut does not click
# Where the step targets change (seconds). Constants, not `StreamConfig` fields: the targets are computed in
# the loss from the spans alone, whatever settings made the stream.
SETTLE_S = 0.15  # no target over a word's last SETTLE_S: the decision is being made
SLACK_S = 0.1  # a finished word counts as in the window if it starts at most this much before it
TAIL_S = 0.15  # once no more than this much of a sliding-out word is left, it no longer counts


@dataclass(frozen=True)
class StreamConfig:
    """How training streams are put together."""

    per_epoch: int = 2000  # streams added to every training epoch
    clips: tuple[int, int] = (2, 4)  # clips per stream (inclusive range)
    max_seconds: float = 6.0  # a stream stops taking clips at this length
    gap_s: tuple[float, float] = (0.05, 0.8)  # pause between clips
    edge_s: tuple[float, float] = (0.1, 0.6)  # pause before the first clip and after the last
    margin_s: float = 0.08  # audio kept around the words when a clip is trimmed to its speech
    # Chance of a command word, unknown word, phrase, sentence and connected utterance for each clip
    # (renormalised over the kinds the corpus has).
    kinds: tuple[float, ...] = (0.4, 0.15, 0.1, 0.05, 0.3)
    fragment_prob: float = 0.25  # chance a command word is cut short and becomes an `_unknown_` fragment
    fragment_range: tuple[float, float] = (0.3, 0.7)  # share of the word a fragment keeps
    speed_prob: float = 0.5  # chance of a per-clip speed change (its word times are scaled with it)
    speed_range: tuple[float, float] = (0.85, 1.15)
    gain_db: float = 6.0  # per-clip level change, either way
    balance_words: bool = False  # phrases and utterances drawn so every command word is about as frequent

    def __post_init__(self) -> None:
        lo, hi = self.clips
        if not 1 <= lo <= hi:
            raise SpeechRNNError(f"StreamConfig.clips: expected 1 <= lo <= hi, got {self.clips}")
        if self.per_epoch < 0 or self.max_seconds <= 0:
            raise SpeechRNNError(
                f"StreamConfig: expected per_epoch >= 0 and max_seconds > 0, got {self.per_epoch}, "
                f"{self.max_seconds}"
            )
        if len(self.kinds) != 5 or min(self.kinds) < 0 or sum(self.kinds) <= 0:
            raise SpeechRNNError(f"StreamConfig.kinds: expected 5 non-negative weights, got {self.kinds}")


@dataclass(frozen=True)
class LabelSpan:
    """A word of a training stream: its label id and where it is spoken (seconds from the stream start)."""

    start: float
    end: float
    label: int


def step_targets(
    spans: Sequence[LabelSpan],
    step_ends: torch.Tensor,
    window_s: float,
    silence: int,
    unknown: int,
) -> torch.Tensor:
    """Target label of the window ending at each step (see the module docstring), or `IGNORE`.

    Args:
        spans: the stream's words.
        step_ends: `(steps,)` time in seconds of the last audio each step has heard.
        window_s: length of the pooling window in seconds.
        silence, unknown: label ids of `_silence_` and `_unknown_`.

    Returns:
        `(steps,)` int64 targets.
    """
    now = step_ends.double()[:, None]  # (steps, 1)
    targets = torch.full((now.shape[0],), silence, dtype=torch.long)
    if not spans:
        return targets
    s = torch.tensor([sp.start for sp in spans], dtype=torch.float64)[None]  # (1, words)
    e = torch.tensor([sp.end for sp in spans], dtype=torch.float64)[None]
    label = torch.tensor([sp.label for sp in spans], dtype=torch.long)
    begin = now - window_s  # window start at each step
    speaking = (s < now) & (now < e)
    settling = (speaking & (now >= e - SETTLE_S)).any(dim=1)
    done = (e <= now) & (e > begin)
    latest = torch.where(done, e, torch.tensor(float("-inf"), dtype=torch.float64)).argmax(dim=1)
    has_latest = done.any(dim=1)
    inside = s[0, latest] >= begin[:, 0] - SLACK_S
    lingering = e[0, latest] - begin[:, 0] > TAIL_S
    targets[speaking.any(dim=1)] = unknown
    targets[has_latest & ~inside & lingering] = IGNORE
    targets = torch.where(has_latest & inside, label[latest], targets)
    targets[settling] = IGNORE
    return targets


def windowed_targets(
    model: Recognizer, out: ModelOutput, spans: Sequence[Sequence[LabelSpan]], rows: Sequence[int]
) -> tuple[torch.Tensor, torch.Tensor]:
    """For the stream items `rows` of a batch: the label logits pooled over the window ending at each step
    `(rows, steps, n_labels)`, as the spotter reads them, and their `step_targets` `(rows, steps)` (`IGNORE`
    past each item's end), on the logits' device."""
    rows = list(rows)
    pooled = windowed_labels(out.attn_logits[rows], out.label_logits[rows], model.config.window)
    steps = pooled.shape[1]
    ends = model.step_end_seconds(steps)
    window_s = model.config.window * model.steps_to_seconds(1)
    silence, unknown = model.labels.index(SILENCE), model.labels.index(UNKNOWN)
    targets = torch.stack([step_targets(spans[i], ends, window_s, silence, unknown) for i in rows])
    targets[torch.arange(steps)[None, :] >= out.lengths[rows].cpu()[:, None]] = IGNORE
    return pooled, targets.to(pooled.device)


class TrainingStreams(Dataset):
    """`per_epoch` training streams drawn afresh every epoch; item i of epoch e comes from (seed, e, i).

    Items are `Example`s without a clip label (`NO_LABEL`) whose `spans` give the step targets, and whose
    transcript (for CTC) is the words in order, unless a fragment makes it unknown.

    Args:
        corpus: the scanned corpus; clips come from `split`.
        labels: the model's labels; must hold `_silence_` and `_unknown_`.
        config: stream settings.
        augment: room and channel augmentation applied to the whole stream (its speed and shift are not
            used: per-clip speed is the stream's own, so that word times stay known), or None.
        seed: non-negative seed.
        split: corpus split to draw from.
    """

    def __init__(
        self,
        corpus: Corpus,
        labels: Sequence[str],
        config: StreamConfig = StreamConfig(),
        augment: AugmentConfig | None = None,
        seed: int = 0,
        split: str = "train",
    ):
        self.labels, self.config, self.seed = tuple(labels), config, seed
        index = {name: i for i, name in enumerate(self.labels)}
        for needed in (SILENCE, UNKNOWN):
            if needed not in index:
                raise SpeechRNNError(f"training streams need a {needed} label; the labels are {self.labels}")
        self.silence, self.unknown = index[SILENCE], index[UNKNOWN]
        self._word_ids = {w: i for w, i in index.items() if w not in (SILENCE, UNKNOWN)}
        split = split_name(split)
        clips = corpus.clips[split]
        self._pools: tuple[tuple[Clip, ...], ...] = (
            tuple(c for c in clips if c.label in self._word_ids),
            tuple(c for c in clips if c.label not in self._word_ids),
            tuple(c for c in corpus.phrases[split] if c.words),
            tuple(c for c in corpus.sentences[split] if c.words),
            tuple(c for c in corpus.utterances.get(split, ()) if c.words),
        )
        words = tuple(self._word_ids)
        # Per pool, the chance of each clip (None: uniform); only multi-word pools need balancing.
        balanced = [word_balance([c.text for c in pool], words) if config.balance_words and k in (2, 4) and pool
                    else None for k, pool in enumerate(self._pools)]  # fmt: skip
        self._clip_p = tuple(None if w is None else w / w.sum() for w in balanced)
        weights = np.array([w if pool else 0.0 for w, pool in zip(config.kinds, self._pools, strict=True)])
        if weights.sum() <= 0:
            raise SpeechRNNError(f"{corpus.root}: no {split} clips to build training streams from")
        self._kind_p = weights / weights.sum()
        self._background = corpus.background
        self._speech = tuple(c.path for c in corpus.sentences[split])  # the split's own babble
        self.augment = None if augment is None else replace(augment, shift_prob=0.0, speed_prob=0.0)
        self.epoch = 0

    def set_epoch(self, epoch: int) -> None:
        self.epoch = epoch

    def __len__(self) -> int:
        return self.config.per_epoch

    def _noises(self) -> tuple[np.ndarray, ...]:
        return noise_recordings(self._background, self._speech, self.augment)

    def _clip(
        self, clip: Clip, fragment: bool, rng: np.random.Generator
    ) -> tuple[np.ndarray, list[LabelSpan], str | None]:
        """One clip trimmed to its words (as a fragment if asked); its spans from 0, and its text (None if
        unknown)."""
        cfg = self.config
        audio = load_audio(clip.path)
        words = [(w.word, w.start, w.end) for w in clip.words]
        if not words:  # a corpus without word times (the real Speech Commands): the word is the loud part
            first, end = activity_bounds(audio)
            if end == 0:
                return np.zeros(0, dtype=np.float32), [], ""
            words = [(clip.label, first / SAMPLE_RATE, end / SAMPLE_RATE)]
        text: str | None = " ".join(w for w, _, _ in words)
        if fragment:
            _, s, e = words[0]
            words = [("", s, s + rng.uniform(*cfg.fragment_range) * (e - s))]
            text = None
        a = max(0, int((words[0][1] - cfg.margin_s) * SAMPLE_RATE))
        b = min(audio.size, int((words[-1][2] + (0 if fragment else cfg.margin_s)) * SAMPLE_RATE))
        audio = audio[a:b].astype(np.float32)
        if fragment and audio.size > _FADE:
            audio[-_FADE:] *= np.linspace(1.0, 0.0, _FADE, dtype=np.float32)
        factor = rng.uniform(*cfg.speed_range) if rng.random() < cfg.speed_prob else 1.0
        audio = speed_up(audio, factor) * np.float32(10 ** (rng.uniform(-cfg.gain_db, cfg.gain_db) / 20))
        offset = a / SAMPLE_RATE
        spans = [
            LabelSpan(
                (s - offset) / factor,
                min((e - offset) / factor, audio.size / SAMPLE_RATE),
                self._word_ids.get(w, self.unknown) if not fragment else self.unknown,
            )
            for w, s, e in words
        ]
        return audio, spans, text

    def __getitem__(self, index: int) -> Example:
        if not 0 <= index < len(self):
            raise IndexError(f"stream {index} out of range for {len(self)} streams")
        cfg = self.config
        rng = np.random.default_rng([self.seed, self.epoch, _STREAM_SEED, index])
        pieces, spans, texts = [], [], []
        t = rng.uniform(*cfg.edge_s)
        pieces.append(np.zeros(int(t * SAMPLE_RATE), dtype=np.float32))
        for k in range(int(rng.integers(cfg.clips[0], cfg.clips[1] + 1))):
            if k and t >= cfg.max_seconds:
                break
            kind = int(rng.choice(len(self._kind_p), p=self._kind_p))
            pool = self._pools[kind]
            p = self._clip_p[kind]
            clip = pool[int(rng.integers(len(pool)) if p is None else rng.choice(len(pool), p=p))]
            fragment = kind == 0 and len(clip.words) <= 1 and rng.random() < cfg.fragment_prob
            audio, clip_spans, text = self._clip(clip, fragment, rng)
            if k:
                gap = np.zeros(int(rng.uniform(*cfg.gap_s) * SAMPLE_RATE), dtype=np.float32)
                pieces.append(gap)
                t += gap.size / SAMPLE_RATE
            pieces.append(audio)
            spans += [LabelSpan(sp.start + t, sp.end + t, sp.label) for sp in clip_spans]
            texts.append(text)
            t += audio.size / SAMPLE_RATE
        pieces.append(np.zeros(int(rng.uniform(*cfg.edge_s) * SAMPLE_RATE), dtype=np.float32))
        stream = np.concatenate(pieces)
        peak = float(np.max(np.abs(stream))) if stream.size else 0.0
        if peak > 1.0:
            stream /= peak
        if self.augment is not None:
            stream = augment(stream, rng, self.augment, self._noises() if self.augment.noise_prob > 0 else ())
        known = all(text is not None for text in texts)
        text = " ".join(x for x in texts if x) if known else ""
        return Example(
            torch.from_numpy(np.ascontiguousarray(stream, dtype=np.float32)),
            NO_LABEL,
            text,
            known and bool(text),
            f"<stream {index}>",
            tuple(spans),
        )
