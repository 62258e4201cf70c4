"""Transcription of audio files of any length: a label, the text, and every word with its times and score.

Two paths, one result:
- Clips up to `long_seconds` are read whole and run in batches with full context (the plain bidirectional
  RNN: the most accurate setting).
- Longer files are read in blocks (`read_blocks`) and fed through the `StreamingRecognizer`, the same code
  as the live loop, with the largest latency setting the model was trained with. Memory does not grow with
  the file: the CTC outputs are decoded in segments cut at pauses (`decode_stream`) and the label is kept as
  a running best. Steps, cuts and therefore words do not depend on the block size.

The label is the classification head's: the whole clip's, or over a long file its best window's, preferring
a command the head is sure of over `_unknown_` over `_silence_` (see `clip_label`).

The text is the lexicon-constrained beam search over the CTC head (see `decoding`): by default the model's
command words, searched among `fillers` common English words so that other speech is spelled as what it is,
and reported as `<unk>`. Word edges are set with the audio's energy per model step, computed alongside
(see `decoding.word_spans`).
"""

from __future__ import annotations

import contextlib
import math
import os
import sys
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .audio import (
    AUDIO_EXTENSIONS,
    SAMPLE_RATE,
    audio_duration,
    list_audio_files,
    load_audio,
    read_blocks,
    resample,
)
from .checkpoint import load_model
from .clip_label import COMMAND_FLOOR, _clip_label, _LabelPicker
from .config import FILLER_WORDS, TRANSCRIBE_BATCH_SIZE
from .decoding import (
    DecodingOptions,
    LabelHead,
    Word,
    beam_search,
    decode_stream,
    make_lexicon,
    step_energy,
    with_fillers,
    words_to_text,
)
from .errors import SpeechRNNError
from .latency import FILE
from .model import Recognizer, windowed_labels
from .recognizer import StreamingRecognizer, StreamOutput, check_audio
from .streaming import TorchStep
from .vocab import spellable
from .words import SILENCE, UNKNOWN

LONG_SECONDS = 30.0  # longer audio is streamed in blocks instead of read whole
BLOCK_SECONDS = 10.0  # block length when streaming a long file
STREAM_CHUNK_MS, STREAM_LOOKAHEAD_MS = FILE.chunk_ms, FILE.lookahead_ms  # latency control when streaming
SEGMENT_SECONDS = 30.0  # longest stretch of CTC outputs decoded at once when streaming
MIN_PAUSE_MS = 300.0  # a pause at least this long may separate two decoded segments


@dataclass(frozen=True)
class Transcription:
    """What was heard in one file or array."""

    path: str | None  # the file, None for an array
    label: str  # the classification head's label
    score: float  # its probability
    text: str  # the words, space-separated
    words: tuple[Word, ...]  # each word with its times (seconds) and score
    duration: float = 0.0  # seconds of audio

    def to_dict(self) -> dict:
        """The JSON line of DESIGN.md: path, label, score, text, words."""
        return {
            "path": self.path,
            "label": self.label,
            "score": round(self.score, 4),
            "text": self.text,
            "words": [w.to_dict() for w in self.words],
        }

    def __str__(self) -> str:
        words = "; ".join(f"{w.word} {w.start:.2f}-{w.end:.2f}s {w.score:.2f}" for w in self.words)
        return f'{self.path or "<audio>"}: {self.label} ({self.score:.2f}) "{self.text}"' + (
            f" [{words}]" if words else ""
        )


@dataclass(frozen=True)
class FailedFile:
    """A file that could not be transcribed, and why."""

    path: str
    error: str

    def to_dict(self) -> dict:
        return {"path": self.path, "error": self.error}

    def __str__(self) -> str:
        return f"{self.path}: error: {self.error}"


@dataclass(frozen=True)
class _Settings:
    decoding: DecodingOptions
    lexicon: tuple[str, ...]  # what the beam search spells: the words to report and the fillers
    report: frozenset[str]  # the words to report by name; the rest are `<unk>`
    batch_size: int
    long_seconds: float
    block_seconds: float
    chunk_ms: float
    lookahead_ms: float
    head: LabelHead | None = None  # confirms the command words the search finds
    segment_seconds: float = SEGMENT_SECONDS
    min_pause_ms: float = MIN_PAUSE_MS


def label_head(model: Recognizer) -> LabelHead:
    """The model's classification head as the beam search consults it (`decoding.LabelHead`)."""
    return LabelHead(tuple(model.labels), model.config.window)


def label_posteriors(model: Recognizer, attn_logits: torch.Tensor, label_logits: torch.Tensor) -> np.ndarray:
    """`(steps, n_labels)` posteriors of the window ending at each step, from one clip's `(steps,)` attention
    scores and `(steps, n_labels)` per-step label logits (full context, as `transcribe` runs clips)."""
    if attn_logits.shape[0] == 0:
        return np.zeros((0, len(model.labels)), np.float32)
    pooled = windowed_labels(attn_logits[None], label_logits[None], model.config.window)[0]
    return pooled.float().softmax(dim=-1).cpu().numpy()


def default_lexicon(model: Recognizer) -> tuple[str, ...]:
    """The words the beam search may recognise by default: the model's labels that are spellable words."""
    words = [w for w in model.labels if w not in (SILENCE, UNKNOWN) and spellable(w)]
    if not words:
        raise SpeechRNNError(
            f"the model's labels hold no spellable word ({', '.join(model.labels)}); pass words="
        )
    return make_lexicon(words)


def _resolve_model(model: Recognizer | str | os.PathLike | None, device: str | torch.device) -> Recognizer:
    if model is None or isinstance(model, str | os.PathLike):
        return load_model(model, device=device)
    return model.to(device).eval()


def _settings(
    model: Recognizer,
    beam: int,
    words: Iterable[str] | None,
    min_word_score: float,
    batch_size: int,
    long_seconds: float,
    block_seconds: float,
    chunk_ms: float,
    lookahead_ms: float,
    fillers: int = FILLER_WORDS,
) -> _Settings:
    if beam < 1:
        raise SpeechRNNError(f"beam must be at least 1, got {beam}")
    if batch_size < 1:
        raise SpeechRNNError(f"batch size must be at least 1, got {batch_size}")
    if block_seconds <= 0:
        raise SpeechRNNError(f"block length must be positive, got {block_seconds} s")
    if fillers < 0:
        raise SpeechRNNError(f"expected a non-negative number of filler words, got {fillers}")
    lexicon = default_lexicon(model) if words is None else make_lexicon(words)
    return _Settings(
        decoding=DecodingOptions(beam=beam, min_word_score=min_word_score),
        lexicon=with_fillers(lexicon, fillers),
        report=frozenset(lexicon),
        head=label_head(model),
        batch_size=batch_size,
        long_seconds=long_seconds,
        block_seconds=block_seconds,
        chunk_ms=chunk_ms,
        lookahead_ms=lookahead_ms,
    )


# ------------------------------------------------------------------------------------------ the work


@contextlib.contextmanager
def _full_precision() -> Iterator[None]:
    """Keep cuDNN's RNNs in float32: by default they run in TF32 on recent GPUs, whose error, carried in the
    recurrent state through an hour of audio, changes words; in float32 a GPU gives the CPU's words."""
    before = torch.backends.cudnn.allow_tf32
    torch.backends.cudnn.allow_tf32 = False
    try:
        yield
    finally:
        torch.backends.cudnn.allow_tf32 = before


@torch.no_grad()
def _run_batch(
    model: Recognizer, clips: list[np.ndarray], settings: _Settings
) -> list[tuple[str, float, tuple[Word, ...]]]:
    """Full-context pass over a batch of whole clips: `(label, score, words)` each."""
    device = model.feat_mean.device
    lengths = torch.tensor([c.size for c in clips])
    audio = torch.zeros(len(clips), int(lengths.max()))
    for i, c in enumerate(clips):
        audio[i, : c.size] = torch.from_numpy(c)
    feats, frames = model.featurize(audio.to(device), lengths.to(device))
    with _full_precision():
        out, _ = model(feats, frames)
    step_seconds = model.steps_to_seconds(1)
    step_samples = model.config.stride * model.features.hop_length
    results = []
    for i in range(len(clips)):
        n = int(out.lengths[i])
        label, score = _clip_label(model, out.attn_logits[i, :n].cpu(), out.label_logits[i, :n].cpu())
        energy = step_energy(clips[i], step_samples)[:n]
        lp = out.ctc_log_probs[i, :n].cpu()
        probs = label_posteriors(model, out.attn_logits[i, :n], out.label_logits[i, :n])
        words = beam_search(
            lp,
            settings.lexicon,
            settings.decoding,
            step_seconds,
            energy=energy,
            report=settings.report,
            head=settings.head,
            label_probs=probs,
        )
        results.append((label, score, words))
    return results


class _StepEnergies:
    """Energy of each step of a stream, held until the model's outputs for the step arrive (they wait for
    their chunk and look-ahead), plus the samples of a step not yet complete."""

    def __init__(self, step_samples: int):
        self.step_samples = step_samples
        self.held, self.start = np.zeros(0), 0  # energies of steps [start, start + len(held))
        self.tail = np.zeros(0, np.float32)

    def feed(self, audio: np.ndarray, final: bool = False) -> None:
        whole = np.concatenate([self.tail, audio])
        complete = whole.size if final else whole.size // self.step_samples * self.step_samples
        self.held = np.concatenate([self.held, step_energy(whole[:complete], self.step_samples)])
        self.tail = whole[complete:]

    def take(self, start: int, steps: int) -> np.ndarray:
        """Energies of steps `[start, start + steps)`, forgetting those before."""
        lo = start - self.start
        out = self.held[lo : lo + steps]
        self.held, self.start = self.held[lo + steps :], start + steps
        # The model's steps never outrun the audio's (its frames need more samples than a step holds).
        return np.pad(out, (0, steps - out.size), constant_values=-100.0)


@torch.no_grad()
def _run_stream(
    model: Recognizer, blocks: Iterable[np.ndarray], settings: _Settings
) -> tuple[str, float, tuple[Word, ...], int]:
    """Stream blocks through the model in bounded memory: `(label, score, words, samples)`."""
    rec = StreamingRecognizer(TorchStep(model, settings.chunk_ms, settings.lookahead_ms))
    picker = _LabelPicker(model.labels)
    energies = _StepEnergies(model.config.stride * model.features.hop_length)
    samples = 0

    def piece(out: StreamOutput) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        logits = torch.from_numpy(out.label_logits)
        picker.update(logits, COMMAND_FLOOR)
        return out.ctc_log_probs, energies.take(out.start, out.steps), logits.float().softmax(dim=-1).numpy()

    def outputs() -> Iterator[tuple[np.ndarray, np.ndarray, np.ndarray]]:
        nonlocal samples
        for block in blocks:
            energies.feed(block)
            yield piece(rec.accept(block))
        samples = rec.samples
        energies.feed(np.zeros(0, np.float32), final=True)
        yield piece(rec.flush())

    step_seconds = rec.step_seconds
    segments = decode_stream(
        outputs(),
        settings.lexicon,
        settings.decoding,
        step_seconds,
        segment_steps=max(2, round(settings.segment_seconds / step_seconds)),
        min_gap=max(1, round(settings.min_pause_ms / 1000 / step_seconds)),
        report=settings.report,
        head=settings.head,
    )
    with _full_precision():
        words = tuple(segments)
    label, score = picker.result()
    return label, score, words, samples


def _array_blocks(audio: np.ndarray, block_seconds: float) -> Iterator[np.ndarray]:
    size = max(1, round(block_seconds * SAMPLE_RATE))
    for start in range(0, audio.size, size):
        yield audio[start : start + size]


def _check_array(audio: np.ndarray, sample_rate: int) -> np.ndarray:
    audio = check_audio(audio)
    if audio.size == 0:
        raise SpeechRNNError("expected audio samples, got an empty array")
    return resample(audio, sample_rate)


def transcribe(
    audio: str | os.PathLike | np.ndarray,
    model: Recognizer | str | os.PathLike | None = None,
    *,
    beam: int = DecodingOptions.beam,
    words: Iterable[str] | None = None,
    min_word_score: float = DecodingOptions.min_word_score,
    fillers: int = FILLER_WORDS,
    device: str | torch.device = "cpu",
    sample_rate: int = SAMPLE_RATE,
    long_seconds: float = LONG_SECONDS,
    block_seconds: float = BLOCK_SECONDS,
    chunk_ms: float = STREAM_CHUNK_MS,
    lookahead_ms: float = STREAM_LOOKAHEAD_MS,
) -> Transcription:
    """Transcribe one audio file or array of any length.

    Args:
        audio: a path to an audio file (any format soundfile reads, any rate and channel count), or a
            `(samples,)` float array at `sample_rate`.
        model: a `Recognizer`, a checkpoint path, or None for the model shipped with speechrnn.
        beam: beam width of the lexicon-constrained search.
        words: the lexicon (words spelled with a-z and apostrophes); None = the model's command words.
        min_word_score: words the model is less sure of (0-1) are reported as `<unk>`; 0 keeps all.
        fillers: how many of English's most frequent words compete with `words` in the search (reported as
            `<unk>`), so that other speech is not forced into a command word; 0 for none.
        device: where the model runs ("cpu", "cuda", ...).
        sample_rate: rate of an array input (resampled to 16 kHz).
        long_seconds: audio longer than this is streamed in blocks (bounded memory) instead of read whole.
        block_seconds: block length when streaming.
        chunk_ms, lookahead_ms: latency control when streaming (multiples of the model's 20 ms step).

    Returns:
        A `Transcription`.

    Raises:
        SpeechRNNError: unreadable audio, an unusable model, or a word that cannot be spelled.
    """
    model = _resolve_model(model, device)
    settings = _settings(
        model, beam, words, min_word_score, 1, long_seconds, block_seconds, chunk_ms, lookahead_ms, fillers
    )
    if isinstance(audio, np.ndarray | torch.Tensor):
        return _transcribe_one(model, _check_array(np.asarray(audio), sample_rate), None, settings)
    return _transcribe_one(model, Path(audio), str(audio), settings)


def _transcribe_one(
    model: Recognizer, source: np.ndarray | Path, name: str | None, settings: _Settings
) -> Transcription:
    if isinstance(source, np.ndarray):
        duration = source.size / SAMPLE_RATE
        if duration <= settings.long_seconds:
            ((label, score, words),) = _run_batch(model, [source], settings)
            return Transcription(name, label, score, words_to_text(words), words, duration)
        blocks: Iterable[np.ndarray] = _array_blocks(source, settings.block_seconds)
    else:
        duration = audio_duration(source)
        if duration <= settings.long_seconds:
            return _transcribe_one(model, load_audio(source), name, settings)
        blocks = read_blocks(source, settings.block_seconds)
    label, score, words, samples = _run_stream(model, blocks, settings)
    return Transcription(name, label, score, words_to_text(words), words, samples / SAMPLE_RATE)


def expand_paths(paths: Sequence[str | os.PathLike]) -> tuple[list[Path], list[FailedFile]]:
    """Files to transcribe (directories walked for audio files) and the directories that held none.

    Raises:
        SpeechRNNError: no paths given, or no audio file found anywhere.
    """
    if not paths:
        raise SpeechRNNError("expected at least one audio file or directory, got none")
    files: list[Path] = []
    empty: list[FailedFile] = []
    kinds = ", ".join(AUDIO_EXTENSIONS)
    for p in paths:
        found = list_audio_files([p])
        if not found and Path(p).is_dir():
            empty.append(FailedFile(str(p), f"directory holds no audio files (looked for {kinds})"))
        files.extend(found)
    if not files:
        raise SpeechRNNError(f"no audio files found in {', '.join(map(str, paths))} (looked for {kinds})")
    return files, empty


def transcribe_files(
    paths: Sequence[str | os.PathLike],
    model: Recognizer | str | os.PathLike | None = None,
    *,
    beam: int = DecodingOptions.beam,
    words: Iterable[str] | None = None,
    min_word_score: float = DecodingOptions.min_word_score,
    fillers: int = FILLER_WORDS,
    device: str | torch.device = "cpu",
    batch_size: int = TRANSCRIBE_BATCH_SIZE,
    long_seconds: float = LONG_SECONDS,
    block_seconds: float = BLOCK_SECONDS,
    chunk_ms: float = STREAM_CHUNK_MS,
    lookahead_ms: float = STREAM_LOOKAHEAD_MS,
    progress: bool = False,
) -> Iterator[Transcription | FailedFile]:
    """Transcribe many files, in batches, in the order given; a file that fails does not stop the others.

    Long: batching short files while long ones stream keeps the order only with the loop in one view.

    Args:
        paths: files and directories (walked recursively for audio files).
        progress: show a progress bar (files) on stderr.
        batch_size: short clips run through the model together.
        The rest as `transcribe`.

    Yields:
        A `Transcription` for every file read, a `FailedFile` for every file that could not be (and for every
        directory without audio files).

    Raises:
        SpeechRNNError: before any work, when no audio file is found, the model cannot be loaded, or a word
            cannot be spelled.
    """
    files, empty = expand_paths(paths)
    model = _resolve_model(model, device)
    settings = _settings(
        model,
        beam,
        words,
        min_word_score,
        batch_size,
        long_seconds,
        block_seconds,
        chunk_ms,
        lookahead_ms,
        fillers,
    )
    yield from empty
    bar = None
    if progress and len(files) > 1:
        from tqdm import tqdm

        bar = tqdm(total=len(files), unit="file", desc="transcribing", file=sys.stderr, leave=False)
    pending: list[tuple[Path, np.ndarray]] = []

    def run_pending() -> Iterator[Transcription]:
        if not pending:
            return
        results = _run_batch(model, [a for _, a in pending], settings)
        for (path, clip), (label, score, ws) in zip(pending, results, strict=True):
            yield Transcription(str(path), label, score, words_to_text(ws), ws, clip.size / SAMPLE_RATE)
        pending.clear()

    try:
        for path in files:
            result: Transcription | FailedFile | None = None
            try:
                if audio_duration(path) <= settings.long_seconds:
                    pending.append((path, load_audio(path)))
                else:
                    yield from run_pending()
                    result = _transcribe_one(model, path, str(path), settings)
            except SpeechRNNError as err:
                result = FailedFile(str(path), str(err))
            if result is not None or len(pending) == settings.batch_size:
                yield from run_pending()
            if result is not None:
                yield result
            if bar is not None:
                bar.update()
        yield from run_pending()
    finally:
        if bar is not None:
            bar.close()


# ------------------------------------------------------------------------------------------------ CLI


def _scores(t: Transcription) -> list[float]:
    return [t.score, *(w.score for w in t.words)]


def main_transcribe(
    *,
    paths: Sequence[str],
    model: str | None,
    as_json: bool,
    beam: int,
    words: Sequence[str] | None,
    min_word_score: float,
    device: str,
    batch_size: int,
    fillers: int = FILLER_WORDS,
    out=None,
) -> int:
    """The body of `speechrnn transcribe`: one line per file; 1 if any file failed, else 0."""
    import json

    out = out or sys.stdout
    failed = 0
    results = transcribe_files(
        paths,
        model,
        beam=beam,
        words=words,
        min_word_score=min_word_score,
        fillers=fillers,
        device=device,
        batch_size=batch_size,
        progress=sys.stderr.isatty(),
    )
    for result in results:
        if isinstance(result, Transcription) and not all(map(math.isfinite, _scores(result))):
            result = FailedFile(str(result.path), "the model gave scores that are not finite numbers")
        failed += isinstance(result, FailedFile)
        print(json.dumps(result.to_dict()) if as_json else str(result), file=out, flush=True)
    return 1 if failed else 0
