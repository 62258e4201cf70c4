"""Live keyword spotting as a library: blocks of audio in, detections out (`speechrnn.spot`).

The top layer of the live path. `open_step` loads a backend (a checkpoint's `TorchStep` or an exported
`OnnxStep`); `KeywordListener` runs one stream through a `StreamingRecognizer` and a `KeywordSpotter`, block
by block, and says what each block produced (for a display: detections, keyword scores, input level);
`spot` is the plain iterator over it. `speechrnn listen` and `speechrnn serve` only display what these give.
The blocks may come from anywhere: a microphone, a file, a socket.

Torch-free with an ONNX step: torch is imported only to load a checkpoint.
"""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE
from .errors import SpeechRNNError
from .latency import LIVE
from .recognizer import StreamingRecognizer, StreamOutput
from .spotter import NON_KEYWORDS, Detection, KeywordSpotter, SpotterConfig
from .step import Step

# Pause after which the live recogniser forgets its recurrent state and the label head's window: long
# enough to pass the gaps inside a phrase (docs/LIVE.md has the sweep that chose it).
RESET_AFTER_SILENCE_MS = 300.0
# A stream ends where a room would go on: this much silence follows its last block through the recogniser,
# so that a word at its very end is decided as it would be live (events come a few hundred ms after a word).
END_SILENCE_S = 0.5
SILENT_DBFS = -120.0  # the level reported for an empty block


def open_step(
    model: str | os.PathLike | Any | None = None,
    onnx: str | os.PathLike | None = None,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    threads: int = 1,
) -> Step:
    """The step backend for a checkpoint or an exported ONNX file.

    Args:
        model: a checkpoint path (None: the model shipped with the package), a loaded `Recognizer`, or a step
            already made (returned as it is).
        onnx: an exported step (`speechrnn export`) to run with onnxruntime instead; its chunk and look-ahead
            are fixed in the file (`chunk_ms`, `lookahead_ms` are then ignored). Imports no torch.
        chunk_ms, lookahead_ms: latency control of a checkpoint's step (multiples of its 20 ms step).
        threads: onnxruntime intra-op threads.

    Raises:
        SpeechRNNError: both a model and an ONNX file; a bad checkpoint, file or setting.
    """
    if onnx is not None:
        if model is not None:
            raise SpeechRNNError("give a checkpoint (--model) or an exported ONNX step (--onnx), not both")
        from .onnx_runner import OnnxStep

        return OnnxStep(onnx, threads=threads)
    if hasattr(model, "shape") and hasattr(model, "init_state"):
        return model  # a step already
    from .checkpoint import load_model
    from .streaming import TorchStep

    net = load_model(model) if model is None or isinstance(model, str | os.PathLike) else model
    return TorchStep(net, chunk_ms, lookahead_ms)


@dataclass(frozen=True)
class Heard:
    """What one block of audio produced."""

    detections: tuple[Detection, ...]  # keywords decided by this block, in order
    output: StreamOutput  # the steps it finalised: ready times, pooled label logits, CTC, c0 energy
    scores: dict[str, float]  # each keyword's highest smoothed probability over those steps (0 if none)
    level_db: float  # RMS level of the block, dBFS
    samples: int  # samples heard so far in the stream


class KeywordListener:
    """One stream's recogniser and spotter: `accept` a block, get what it produced; `finish` at the end.

    Args:
        step: the backend (`open_step`); one step serves any number of listeners.
        keywords: only these labels fire (None: every keyword the model knows).
        threshold: smoothed probability a keyword must reach (None: `SpotterConfig`'s default).
        reset_after_silence_ms: forget the recurrent state after this long a pause (see
            `StreamingRecognizer`); None never resets.
        config: the spotter's other settings (`keywords` and `threshold` override its fields).

    Raises:
        SpeechRNNError: a keyword the model cannot spot; out-of-range settings.
    """

    def __init__(
        self,
        step: Step,
        *,
        keywords: Iterable[str] | None = None,
        threshold: float | None = None,
        reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
        config: SpotterConfig | None = None,
    ):
        config = config or SpotterConfig()
        if keywords is not None:
            config = dataclasses.replace(config, keywords=tuple(keywords) or None)
        if threshold is not None:
            config = dataclasses.replace(config, threshold=threshold)
        self.recognizer = StreamingRecognizer(step, reset_after_silence_ms=reset_after_silence_ms)
        self.spotter = KeywordSpotter(self.recognizer.labels, self.recognizer.step_seconds, config)
        self.keywords = tuple(
            label
            for label in self.recognizer.labels
            if label not in NON_KEYWORDS and (config.keywords is None or label in config.keywords)
        )

    def accept(self, audio: np.ndarray) -> Heard:
        """Feed the next block: `(samples,)` float mono at 16 kHz, any length."""
        return self._heard(self.recognizer.accept(audio), _level_db(audio))

    def finish(self, end_silence_s: float = END_SILENCE_S) -> Heard:
        """End the stream: `end_silence_s` of silence, then every remaining step; ready for a new stream."""
        silence = self.recognizer.accept(np.zeros(round(end_silence_s * SAMPLE_RATE), np.float32))
        samples = self.recognizer.samples
        heard = self._heard(StreamOutput.concat([silence, self.recognizer.flush()]), SILENT_DBFS, samples)
        self.spotter.reset()
        return heard

    def run(self, blocks: Iterable[np.ndarray], end_silence_s: float = END_SILENCE_S) -> Iterator[Heard]:
        """What each block produced, and at the end of `blocks` what `finish` produced."""
        for block in blocks:
            yield self.accept(block)
        yield self.finish(end_silence_s)

    def _heard(self, out: StreamOutput, level_db: float, samples: int | None = None) -> Heard:
        events = tuple(self.spotter.update(out))
        best = self.spotter.scores.max(axis=0) if out.steps else np.zeros(len(self.recognizer.labels))
        index = {label: i for i, label in enumerate(self.recognizer.labels)}
        samples = self.recognizer.samples if samples is None else samples
        return Heard(events, out, {k: float(best[index[k]]) for k in self.keywords}, level_db, samples)


def _level_db(audio: np.ndarray) -> float:
    audio = np.asarray(audio, dtype=np.float64).reshape(-1)
    if audio.size == 0:
        return SILENT_DBFS
    return float(20 * np.log10(max(float(np.sqrt(np.mean(np.square(audio)))), 1e-6)))


def spot(
    blocks: Iterable[np.ndarray],
    *,
    model: str | os.PathLike | Any | None = None,
    onnx: str | os.PathLike | None = None,
    keywords: Iterable[str] | None = None,
    threshold: float | None = None,
    chunk_ms: float = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
    reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
    end_silence_s: float = END_SILENCE_S,
) -> Iterator[Detection]:
    """Spot keywords in a stream of audio blocks, yielding each detection as soon as it is decided.

    Args:
        blocks: consecutive `(samples,)` float32 mono blocks at 16 kHz, of any sizes (a microphone, a file
            read in blocks, a socket).
        model: a checkpoint path (None: the model shipped with the package), a loaded `Recognizer`, or a step
            (`open_step`).
        onnx: an exported step to run with onnxruntime instead (no torch needed).
        keywords: only these labels fire (None: every keyword the model knows).
        threshold: smoothed probability a keyword must reach (None: `SpotterConfig`'s default).
        chunk_ms, lookahead_ms: latency control of a checkpoint (the presets of `latency.LIVE` by default).
        reset_after_silence_ms: forget the recurrent state after this long a pause; None never resets.
        end_silence_s: silence fed after the last block, so that a word at the very end is decided.

    Yields:
        `Detection(keyword, time, score, step)`, `time` in seconds from the stream's start.

    Raises:
        SpeechRNNError: a bad model, file, keyword or setting; bad audio in a block.
    """
    step = open_step(model, onnx, chunk_ms, lookahead_ms)
    listener = KeywordListener(
        step, keywords=keywords, threshold=threshold, reset_after_silence_ms=reset_after_silence_ms
    )
    for heard in listener.run(blocks, end_silence_s):
        yield from heard.detections
