"""The pure streaming step: `step(audio, state) -> (outputs, state)`, the same for PyTorch and ONNX.

A step finalises whole chunks of the latency-controlled encoder (see `model.py`) from raw audio: the samples
every frame of its chunks and their look-ahead reads, and the forward state of every encoder layer. It holds
no state of its own, so one step serves any number of streams (`StreamingRecognizer` owns what a stream
carries). Backends: `streaming.TorchStep` (a `Recognizer`) and `onnx_runner.OnnxStep` (the graph written by
`speechrnn export`, which computes exactly this step). Torch-free: the ONNX live path reads it.

What a step is given, and gives back:

    audio   k whole windows, `shape.window_samples(k)` samples (k >= 1): the k chunks' frames and the
            look-ahead after the last, mid-stream; or the tail of a stream, fewer than `shape.samples`
            samples: every step whose frames it holds, the last chunks reading what look-ahead is left
            (the last stride group zero-padded), as the offline pass ends a clip
    state   `(layers, 1, state_dim)` float32 forward state (`init_state()`: zeros)
    outputs `StepOutput`: per finalised step the CTC log-probabilities and the label head's attention
            score and logits, and the raw MFCC c0 (log energy) of every frame read, which the pause reset
            follows
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Protocol

import numpy as np

from .featureconfig import FeatureConfig


@dataclass(frozen=True)
class StepShape:
    """Sizes of one streaming step, fixed by the chunk and look-ahead (and by export for an ONNX step)."""

    chunk: int  # encoder steps whose outputs a step finalises
    lookahead: int  # further encoder steps the backward direction reads
    stride: int  # MFCC frames per encoder step
    frames: int  # MFCC frames the step computes: (chunk + lookahead) * stride
    samples: int  # audio samples the step reads (its `audio` input)
    advance: int  # samples from one step's window to the next: chunk * stride * hop

    @property
    def steps(self) -> int:
        return self.chunk + self.lookahead

    def window_samples(self, chunks: int) -> int:
        """Samples that `chunks` consecutive chunks and the look-ahead after the last one read."""
        return self.samples + (chunks - 1) * self.advance


def step_shape(features: FeatureConfig, stride: int, chunk: int, lookahead: int) -> StepShape:
    """The step sizes for a chunk and look-ahead in encoder steps of `stride` MFCC frames."""
    frames = (chunk + lookahead) * stride
    return StepShape(
        chunk=chunk,
        lookahead=lookahead,
        stride=stride,
        frames=frames,
        samples=(frames - 1) * features.hop_length + features.frame_span,
        advance=chunk * stride * features.hop_length,
    )


def seconds_per_step(features: FeatureConfig, stride: int) -> float:
    """Seconds of audio per encoder step of `stride` MFCC hops."""
    return stride * features.hop_length / features.sample_rate


def tail_steps(features: FeatureConfig, stride: int, samples: int) -> int:
    """Encoder steps a stream's tail of `samples` samples holds (its last stride group may be partial)."""
    return math.ceil(features.num_frames(samples) / stride)


@dataclass(frozen=True)
class StepOutput:
    """What a step computed. Shapes: `ctc_log_probs (steps, n_vocab)`, `attn_logits (steps,)`,
    `label_logits (steps, n_labels)` (per step, not yet pooled), `c0 (frames,)` float32."""

    ctc_log_probs: np.ndarray
    attn_logits: np.ndarray
    label_logits: np.ndarray
    c0: np.ndarray  # raw MFCC c0 of every frame the step read: its chunks' own frames, then the look-ahead

    @property
    def steps(self) -> int:
        return self.attn_logits.shape[0]


class Step(Protocol):
    """A streaming step backend (`streaming.TorchStep`, `onnx_runner.OnnxStep`)."""

    shape: StepShape
    features: FeatureConfig  # the MFCC settings (the sample rate, hop and frame span fix the timing)
    labels: tuple[str, ...]  # the label head's classes, in order
    thresholds: dict[str, dict[str, float]]  # per-keyword thresholds, {"label"|"ctc": {keyword: threshold}}
    vocab: tuple[str, ...]  # the CTC head's symbols, blank first
    window: int  # encoder steps the label head pools over when streaming

    def init_state(self) -> np.ndarray:
        """The zero forward state, `(layers, 1, state_dim)` float32."""
        ...

    def __call__(self, audio: np.ndarray, state: np.ndarray) -> tuple[StepOutput, np.ndarray]:
        """Run the step (see the module docstring for what `audio` holds)."""
        ...
