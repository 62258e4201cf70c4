"""The Google Speech Commands corpus: its folders, the benchmark tasks, and a deterministic torch Dataset.

The layout (v0.01, v0.02, and the corpora `speechrnn synth` builds) is described in `corpus`.

Class proportions follow TensorFlow's `speech_commands/input_data.py`: besides the task's word clips, each
split gets `_silence_` items (10 % of the word-clip count; crops of background noise at random levels,
generated from the item index) and `_unknown_` items (10 %, drawn from the other words' clips and from
`_unknown_/`). Everything random about item i of epoch e comes from a numpy Generator seeded with
(seed, e, i), so items are the same in any DataLoader worker and on any rerun.
"""

from __future__ import annotations

import json
import math
import operator
import os
import posixpath
import tarfile
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path

import numpy as np
import torch
from torch.utils.data import Dataset

from .audio import load_audio
from .augment import AugmentConfig, augment, coloured_noise, noise_crop, noise_recordings
from .corpus import (
    BACKGROUND_DIR,
    CLIP_SAMPLES,
    LONG_LABELS,
    META_FILE,
    PHRASE,
    PHRASES_DIR,
    SENTENCE,
    SENTENCES_DIR,
    TESTING_LIST,
    UNKNOWN_DIR,
    UTTERANCE,
    UTTERANCES_DIR,
    VALIDATION_LIST,
    Clip,
    WordSpan,
)
from .errors import SpeechRNNError
from .vocab import encode, normalize_text
from .words import KWS12_WORDS, SILENCE, UNKNOWN

SPLITS = ("train", "validation", "test")
TASKS = ("all", "12")
NO_LABEL = -1  # Example.label of items without a classification target
_SPLIT_NAMES = {
    "train": "train", "training": "train",
    "validation": "validation", "valid": "validation", "val": "validation",
    "test": "test", "testing": "test",
}  # fmt: skip
_VERSIONS = {"v0.01": "speech_commands_v0.01", "v0.02": "speech_commands_v0.02"}
_ITEM_STREAM, _SELECTION_STREAM = 0, 1  # third word of the seed: item randomness vs the unknown draw


@dataclass(frozen=True)
class Corpus:
    """What `scan_corpus` found under a corpus root."""

    root: Path  # the corpus folder
    words: tuple[str, ...]  # word folders holding clips, sorted
    clips: dict[str, tuple[Clip, ...]]  # split -> word-folder and `_unknown_/` clips, sorted by path
    phrases: dict[str, tuple[Clip, ...]]  # split -> `_phrases_/` clips
    sentences: dict[str, tuple[Clip, ...]]  # split -> `_sentences_/` clips
    background: tuple[str, ...]  # absolute paths of the `_background_noise_` recordings
    utterances: dict[str, tuple[Clip, ...]] = field(default_factory=dict)  # split -> `_utterances_/` clips


def split_name(split: str) -> str:
    """'train' / 'validation' / 'test' from any usual spelling ('training', 'val', 'testing', ...)."""
    name = _SPLIT_NAMES.get(str(split).lower())
    if name is None:
        raise SpeechRNNError(f"unknown split {split!r}: expected one of {', '.join(SPLITS)}")
    return name


def _wav_files(folder: Path) -> list[str]:
    with os.scandir(folder) as it:
        return sorted(e.name for e in it if e.is_file() and e.name.lower().endswith(".wav"))


def _speaker_from_name(name: str) -> str:
    return name.split("_nohash_")[0] if "_nohash_" in name else ""


def _read_meta(path: Path) -> dict[str, dict]:
    """clips.jsonl -> {relative path: record}; an absent file gives {}."""
    if not path.is_file():
        return {}
    meta: dict[str, dict] = {}
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                record = json.loads(line)
            except json.JSONDecodeError as err:
                raise SpeechRNNError(
                    f"{path}:{lineno}: expected one JSON object per line, got {err}"
                ) from None
            if not isinstance(record, dict) or not isinstance(record.get("path"), str):
                raise SpeechRNNError(
                    f"{path}:{lineno}: expected an object with a 'path' string, got {line.strip()[:80]}"
                )
            meta[posixpath.normpath(record["path"].replace("\\", "/"))] = record
    return meta


def _spans(record: dict, where: str) -> tuple[WordSpan, ...]:
    try:
        return tuple(
            WordSpan(str(w["word"]), float(w["start"]), float(w["end"])) for w in record.get("words") or ()
        )
    except (KeyError, TypeError, ValueError) as err:
        raise SpeechRNNError(
            f"{where}: expected 'words' as [{{word, start, end}}, ...], got an error ({err})"
        ) from None


def _read_list(root: Path, name: str, clips: set[str]) -> set[str]:
    """A split list as a set of relative paths, each checked to be a clip of the corpus."""
    path = root / name
    if not path.is_file():
        return set()
    listed: set[str] = set()
    with open(path, encoding="utf-8") as f:
        for lineno, line in enumerate(f, 1):
            entry = line.strip()
            if not entry:
                continue
            rel = posixpath.normpath(entry.replace("\\", "/"))
            if rel not in clips:
                what = "is not a clip of a word or `_unknown_`/`_phrases_`/`_sentences_` folder"
                if not (root / rel).exists():
                    what = "does not exist"
                raise SpeechRNNError(f"{path}:{lineno}: names {entry!r}, which {what} under {root}")
            listed.add(rel)
    return listed


def scan_corpus(root: str | os.PathLike) -> Corpus:
    """Find the words, clips, splits, phrases and noise recordings of a Speech Commands folder.

    Args:
        root: the corpus folder (the one holding the word folders and the split lists).

    Returns:
        A `Corpus`. Absent split lists count as empty (all clips are training); absent synthetic extras
        (`_unknown_/`, `_phrases_/`, `_sentences_/`, clips.jsonl) give empty collections.

    Raises:
        SpeechRNNError: root is missing or not a folder, has no word folder with clips, a split list names
            a file that is not a clip of the corpus, a clip is in both lists, or clips.jsonl is malformed.
    """
    root = Path(root).expanduser()
    if not root.exists():
        raise SpeechRNNError(f"{root}: no such folder, expected a Speech Commands corpus")
    if not root.is_dir():
        raise SpeechRNNError(f"{root}: is a file, expected a Speech Commands corpus folder")
    root = root.resolve()
    with os.scandir(root) as it:
        folders = sorted(e.name for e in it if e.is_dir() and not e.name.startswith((".", "_")))
    files: dict[str, list[str]] = {}  # folder -> wav names
    for name in folders:
        wavs = _wav_files(root / name)
        if wavs:
            files[name] = wavs
    words = tuple(files)
    if not words:
        raise SpeechRNNError(
            f"{root}: expected word folders holding clips (<root>/<word>/*.wav), found none"
            f" (folders: {', '.join(folders[:10]) or 'none'})"
        )
    for special in (UNKNOWN_DIR, PHRASES_DIR, SENTENCES_DIR, UTTERANCES_DIR):
        if (root / special).is_dir():
            files[special] = _wav_files(root / special)
    all_rel = {f"{folder}/{name}" for folder, names in files.items() for name in names}
    validation = _read_list(root, VALIDATION_LIST, all_rel)
    testing = _read_list(root, TESTING_LIST, all_rel)
    both = validation & testing
    if both:
        raise SpeechRNNError(
            f"{root}: expected disjoint {VALIDATION_LIST} and {TESTING_LIST}, got {len(both)} clips in both,"
            f" e.g. {sorted(both)[0]}"
        )
    meta_path = root / META_FILE
    meta = _read_meta(meta_path)
    kinds = {UNKNOWN_DIR: UNKNOWN, PHRASES_DIR: PHRASE, SENTENCES_DIR: SENTENCE, UTTERANCES_DIR: UTTERANCE}
    out: dict[str, dict[str, list[Clip]]] = {
        k: {s: [] for s in SPLITS} for k in ("clips", "phrases", "sentences", "utterances")
    }
    for folder, names in files.items():
        label = kinds.get(folder, folder)
        group = {PHRASE: "phrases", SENTENCE: "sentences", UTTERANCE: "utterances"}.get(label, "clips")
        for name in names:
            rel = f"{folder}/{name}"
            record = meta.get(rel, {})
            text = normalize_text(folder if folder in words else str(record.get("text") or ""))
            clip = Clip(
                rel=rel,
                label=label,
                text=text,
                speaker=str(record.get("speaker") or _speaker_from_name(name)),
                words=_spans(record, f"{meta_path} ({rel})"),
                root=str(root),
            )
            split = "validation" if rel in validation else "test" if rel in testing else "train"
            out[group][split].append(clip)
    background = ()
    if (root / BACKGROUND_DIR).is_dir():
        background = tuple(str(root / BACKGROUND_DIR / n) for n in _wav_files(root / BACKGROUND_DIR))
    freeze = {k: {s: tuple(v) for s, v in d.items()} for k, d in out.items()}
    return Corpus(
        root, words, freeze["clips"], freeze["phrases"], freeze["sentences"], background, freeze["utterances"]
    )


def task_labels(corpus: Corpus, task: str) -> tuple[str, ...]:
    """The label set of a task: `_silence_`, `_unknown_`, then the words.

    Args:
        corpus: a scanned corpus.
        task: "all" (every word of the corpus, sorted: 35 on v0.02) or "12" (the ten KWS12_WORDS of the
            classic benchmark; the corpus's other words become `_unknown_`).

    Returns:
        The labels; a class index is a position in this tuple.
    """
    if task == "all":
        return (SILENCE, UNKNOWN, *corpus.words)
    if task == "12":
        missing = [w for w in KWS12_WORDS if w not in corpus.words]
        if missing:
            raise SpeechRNNError(
                f"{corpus.root}: task '12' expects folders for {', '.join(KWS12_WORDS)};"
                f" missing {', '.join(missing)}"
            )
        return (SILENCE, UNKNOWN, *KWS12_WORDS)
    raise SpeechRNNError(f"unknown task {task!r}: expected one of {', '.join(repr(t) for t in TASKS)}")


def silence_clip(
    rng: np.random.Generator, noises: Sequence[np.ndarray] = (), samples: int = CLIP_SAMPLES
) -> np.ndarray:
    """One `_silence_` example: pure digital silence (10 %) or a noise crop at -75 to -20 dBFS RMS.

    The noise is a crop of `noises` (80 % when there are any) or generated 1/f^a noise.
    """
    if rng.random() < 0.1:
        return np.zeros(samples, dtype=np.float32)
    level_db = rng.uniform(-75.0, -20.0)
    if noises and rng.random() < 0.8:
        noise = noise_crop(noises, samples, rng)
    else:
        noise = coloured_noise(samples, float(rng.uniform(0.0, 2.0)), rng)
    rms = float(np.sqrt(np.mean(np.square(noise, dtype=np.float64))))
    if rms <= 0.0:
        return np.zeros(samples, dtype=np.float32)
    return (noise * np.float32(10 ** (level_db / 20) / rms)).astype(np.float32)


@dataclass(frozen=True)
class Example:
    """One item of `SpeechCommandsDataset`."""

    audio: torch.Tensor  # (samples,) float32 at SAMPLE_RATE
    label: int  # index into the dataset's labels; NO_LABEL (-1) for phrases
    text: str  # CTC transcript; '' for silence
    has_text: bool  # False when the transcript is unknown (no CTC loss)
    path: str  # the clip's file, or '<_silence_ k>' for generated silence
    spans: tuple = ()  # training streams only: `train_streams.LabelSpan`s, the label head's step targets


class SpeechCommandsDataset(Dataset):
    """One split of a Speech Commands corpus as labelled, optionally augmented, 16 kHz waveforms.

    Items are, in order: the task's word clips, the epoch's `_unknown_` draw, generated `_silence_`, then
    (with `phrases=True`) phrases and sentences. The unknown draw is re-made for every training epoch and
    fixed (epoch 0) for validation and test, as are the silence items and augmentation of those splits.

    Call `set_epoch` before creating the epoch's DataLoader iterator: workers receive a copy of the dataset
    when the iterator starts, so with `persistent_workers=True` they keep the epoch they started with.

    Args:
        root: corpus folder, or a `Corpus` already scanned (saves rescanning for several splits).
        split: "train", "validation" or "test".
        task: "all" or "12" (see `task_labels`); ignored when `labels` is given.
        augment: waveform augmentation for every item, or None.
        seed: non-negative seed of every random choice.
        phrases: include the split's phrases and utterances (label -1) and its sentences (`_unknown_` unless
            their transcript holds a label word; then -1). Clips without a transcript are left out.
        labels: an explicit label set, e.g. a checkpoint's; words outside it become `_unknown_` (when it
            has `_unknown_`, otherwise they are left out).
        silence_percentage: `_silence_` items per 100 word clips.
        unknown_percentage: `_unknown_` items per 100 word clips (at most as many as there are).

    Attributes:
        labels: the label names; `Example.label` indexes them.
        corpus: the scanned corpus.
        epoch: the epoch set last.
    """

    def __init__(
        self,
        root: str | os.PathLike | Corpus,
        split: str,
        task: str = "all",
        *,
        augment: AugmentConfig | None = None,
        seed: int = 0,
        phrases: bool = True,
        labels: Sequence[str] | None = None,
        silence_percentage: float = 10.0,
        unknown_percentage: float = 10.0,
    ):
        self.corpus = root if isinstance(root, Corpus) else scan_corpus(root)
        self.split = split_name(split)
        self._speech = tuple(c.path for c in self.corpus.sentences[self.split])  # the split's own babble
        self.task = task
        self.labels = tuple(labels) if labels is not None else task_labels(self.corpus, task)
        if len(set(self.labels)) != len(self.labels) or not all(
            isinstance(s, str) and s for s in self.labels
        ):
            raise SpeechRNNError(f"expected distinct non-empty label names, got {self.labels}")
        if not (isinstance(seed, int) and seed >= 0):
            raise SpeechRNNError(f"expected a non-negative integer seed, got {seed!r}")
        for name, pct in (
            ("silence_percentage", silence_percentage),
            ("unknown_percentage", unknown_percentage),
        ):
            if not pct >= 0:
                raise SpeechRNNError(f"expected {name} >= 0, got {pct}")
        self.augment = augment
        self.seed = seed
        self.phrases = phrases
        index = {name: i for i, name in enumerate(self.labels)}
        unknown_id = self._unknown_id = index.get(UNKNOWN, NO_LABEL)
        self._known: list[tuple[Clip, int]] = []
        self._pool: list[Clip] = []
        for clip in self.corpus.clips[self.split]:
            if clip.label != UNKNOWN and clip.label in index:
                self._known.append((clip, index[clip.label]))
            elif unknown_id != NO_LABEL:
                self._pool.append(clip)
        known = len(self._known)
        self._n_unknown = min(len(self._pool), math.ceil(known * unknown_percentage / 100))
        self._n_silence = math.ceil(known * silence_percentage / 100) if SILENCE in index else 0
        self._silence_id = index.get(SILENCE, NO_LABEL)
        self._extras: list[tuple[Clip, int]] = []
        if phrases:
            self._extras += [(c, NO_LABEL) for c in self.corpus.phrases[self.split] if c.has_text]
            for clip in self.corpus.sentences[self.split]:
                label = NO_LABEL if set(clip.text.split()) & set(self.labels) else unknown_id
                if clip.has_text or label != NO_LABEL:
                    self._extras.append((clip, label))
            # CTC only: the label head learns connected speech step by step in the training streams, and the
            # clip accuracy stays a measure of isolated words.
            self._extras += [(c, NO_LABEL) for c in self.corpus.utterances.get(self.split, ()) if c.has_text]
        self.set_epoch(0)

    def set_epoch(self, epoch: int) -> None:
        """Re-draw the unknown subset and the per-item randomness for `epoch` (training split only)."""
        if not (isinstance(epoch, int) and epoch >= 0):
            raise SpeechRNNError(f"expected a non-negative integer epoch, got {epoch!r}")
        self.epoch = epoch
        self._key = epoch if self.split == "train" else 0
        rng = np.random.default_rng([self.seed, self._key, _SELECTION_STREAM])
        self._unknown = np.sort(rng.choice(len(self._pool), size=self._n_unknown, replace=False)).tolist()

    def __len__(self) -> int:
        return len(self._known) + self._n_unknown + self._n_silence + len(self._extras)

    def _index(self, index: int) -> int:
        i, n = operator.index(index), len(self)
        if not -n <= i < n:
            raise IndexError(f"item {index} out of range for a dataset of {n}")
        return i + n if i < 0 else i

    def entry(self, index: int) -> tuple[Clip | None, int]:
        """The clip of item `index` (None for generated silence) and its label id, without reading audio."""
        i = self._index(index)
        if i < len(self._known):
            return self._known[i]
        i -= len(self._known)
        if i < self._n_unknown:
            return self._pool[self._unknown[i]], self._unknown_id
        i -= self._n_unknown
        if i < self._n_silence:
            return None, self._silence_id
        return self._extras[i - self._n_silence]

    def item_labels(self) -> np.ndarray:
        """`(len,)` label id of every item at the current epoch, without reading audio."""
        return np.array([self.entry(i)[1] for i in range(len(self))], dtype=np.int64)

    def _noises(self) -> tuple[np.ndarray, ...]:
        return noise_recordings(self.corpus.background, self._speech, self.augment)

    def __getitem__(self, index: int) -> Example:
        i = self._index(index)
        rng = np.random.default_rng([self.seed, self._key, _ITEM_STREAM, i])
        clip, label = self.entry(i)
        if clip is None:
            audio = silence_clip(rng, self._noises())
            text, has_text, path = "", True, f"<{SILENCE} {i - len(self._known) - self._n_unknown}>"
        else:
            audio = load_audio(clip.path)
            if clip.label not in LONG_LABELS and audio.size < CLIP_SAMPLES:
                audio = np.pad(audio, (0, CLIP_SAMPLES - audio.size))
            text, has_text, path = clip.text, clip.has_text, clip.path
        if self.augment is not None:
            audio = augment(audio, rng, self.augment, self._noises() if self.augment.noise_prob > 0 else ())
        return Example(
            torch.from_numpy(np.ascontiguousarray(audio, dtype=np.float32)), label, text, has_text, path
        )


@dataclass(frozen=True)
class Batch:
    """A padded batch of examples (`collate`'s output)."""

    audio: torch.Tensor  # (batch, max_samples) float32, zero-padded
    audio_lengths: torch.Tensor  # (batch,) int64 valid samples
    labels: torch.Tensor  # (batch,) int64 class ids; -1 = no classification target
    targets: torch.Tensor  # (batch, max_target_len) int64 character ids (`vocab.encode`), 0-padded
    target_lengths: torch.Tensor  # (batch,) int64; 0 where there is no text
    has_text: torch.Tensor  # (batch,) bool: whether the CTC loss applies
    paths: tuple[str, ...] = ()  # source of each item
    texts: tuple[str, ...] = ()  # transcript of each item ('' where unknown)
    spans: tuple[tuple, ...] = ()  # per item: its `train_streams.LabelSpan`s (empty but for streams)

    @property
    def stream_rows(self) -> list[int]:
        """Rows that are training streams (those with step targets)."""
        return [i for i, spans in enumerate(self.spans) if spans]

    def to(self, device: torch.device | str, non_blocking: bool = False) -> Batch:
        """The same batch with every tensor on `device`."""
        return self._map(lambda t: t.to(device, non_blocking=non_blocking))

    def pin_memory(self) -> Batch:
        """Page-locked copy, for `DataLoader(pin_memory=True)`."""
        return self._map(torch.Tensor.pin_memory)

    def _map(self, fn: Callable[[torch.Tensor], torch.Tensor]) -> Batch:
        values = {f.name: getattr(self, f.name) for f in fields(self)}
        return Batch(**{k: fn(v) if isinstance(v, torch.Tensor) else v for k, v in values.items()})

    def __len__(self) -> int:
        return self.audio.shape[0]


def collate(examples: Sequence[Example]) -> Batch:
    """Pad a list of `Example`s into a `Batch` (use as a DataLoader's `collate_fn`)."""
    if not examples:
        raise SpeechRNNError("collate: expected at least one example, got none")
    lengths = torch.tensor([e.audio.numel() for e in examples], dtype=torch.long)
    audio = torch.zeros(len(examples), int(lengths.max()), dtype=torch.float32)
    ids = [encode(e.text) if e.has_text else torch.zeros(0, dtype=torch.long) for e in examples]
    target_lengths = torch.tensor([t.numel() for t in ids], dtype=torch.long)
    targets = torch.zeros(len(examples), int(target_lengths.max()), dtype=torch.long)
    for row, (e, t) in enumerate(zip(examples, ids, strict=True)):
        audio[row, : e.audio.numel()] = e.audio
        targets[row, : t.numel()] = t
    return Batch(
        audio=audio,
        audio_lengths=lengths,
        labels=torch.tensor([e.label for e in examples], dtype=torch.long),
        targets=targets,
        target_lengths=target_lengths,
        has_text=torch.tensor([e.has_text for e in examples], dtype=torch.bool),
        paths=tuple(e.path for e in examples),
        texts=tuple(e.text if e.has_text else "" for e in examples),
        spans=tuple(e.spans for e in examples),
    )


def class_counts(dataset: SpeechCommandsDataset) -> dict[str, int]:
    """Items per label at the dataset's current epoch; items without a class are counted under PHRASE."""
    counts = Counter(dataset.item_labels().tolist())
    out = {name: counts.get(i, 0) for i, name in enumerate(dataset.labels)}
    if counts.get(NO_LABEL):
        out[PHRASE] = counts[NO_LABEL]
    return out


def download(root: str | os.PathLike, version: str = "v0.02") -> Path:
    """Download and extract Speech Commands with torchaudio (once); return the corpus folder.

    Args:
        root: folder to download into; the corpus lands in `<root>/SpeechCommands/speech_commands_<version>`.
        version: "v0.01" (30 words) or "v0.02" (35 words).

    Returns:
        The extracted corpus folder, ready for `scan_corpus` / `SpeechCommandsDataset`.
    """
    if version not in _VERSIONS:
        raise SpeechRNNError(
            f"unknown Speech Commands version {version!r}: expected one of {', '.join(_VERSIONS)}"
        )
    from torchaudio.datasets import SPEECHCOMMANDS  # imported here: only downloading needs it

    root = Path(root).expanduser()
    try:
        root.mkdir(parents=True, exist_ok=True)
        SPEECHCOMMANDS(str(root), url=_VERSIONS[version], download=True)
    except (OSError, RuntimeError, tarfile.TarError) as err:
        raise SpeechRNNError(f"could not download Speech Commands {version} into {root}: {err}") from None
    return root / "SpeechCommands" / _VERSIONS[version]
