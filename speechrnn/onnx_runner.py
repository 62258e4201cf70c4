"""Runs an exported streaming step (`speechrnn export`) with onnxruntime, as a drop-in `StreamingRecognizer`.

The graph computes one latency-controlled chunk from raw audio (see `export.py`); this runner owns what is
carried between chunks: the samples from the start of the next step's window (its carried context, the
look-ahead and whatever has arrived beyond), the forward state of every layer, and the last `window - 1`
(attention logit, label logits) pairs for the windowed label pooling. `accept` runs one step each time a
full window has arrived; `flush` zero-pads the last window and tells the graph how many frames are real.
Outputs are `StreamOutput`s, step for step those of `StreamingRecognizer` with the same chunk and
look-ahead (to float tolerance), so `KeywordSpotter` consumes either.

onnxruntime is imported when a runner is made, not with the package; everything else the runner needs
is in the file.
"""

from __future__ import annotations

import math
import os
from pathlib import Path

import numpy as np
import torch

from .errors import SpeechRNNError
from .export import OUTPUTS, StepShape, parse_metadata
from .features import FeatureConfig
from .streaming import PauseTracker, StreamOutput, _check_audio


def load_session(path: str | os.PathLike, threads: int = 1):
    """An onnxruntime CPU session for `path`, with `threads` intra-op threads and no inter-op parallelism."""
    try:
        import onnxruntime as ort
    except ImportError:
        raise SpeechRNNError("running an ONNX model needs onnxruntime: pip install onnxruntime") from None
    path = Path(path)
    if not path.is_file():
        raise SpeechRNNError(f"{path}: no such ONNX file")
    options = ort.SessionOptions()
    options.intra_op_num_threads = threads
    options.inter_op_num_threads = 1
    options.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    options.log_severity_level = 3  # errors only
    try:
        return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
    except Exception as err:  # onnxruntime raises its own pybind error types for unreadable models
        raise SpeechRNNError(f"{path}: onnxruntime cannot load it ({type(err).__name__}: {err})") from None


class OnnxStreamingRecognizer:
    """Streams audio through an exported step. Same interface as `StreamingRecognizer`.

    Args:
        path: the .onnx file written by `speechrnn export`; its chunk and look-ahead are fixed in it.
        threads: onnxruntime intra-op threads (1: one core, the setting for live use).
        reset_after_silence_ms: forget the recurrent state and the label window after this long a pause, as
            `StreamingRecognizer` does (the same `PauseTracker` on the same MFCC c0); None never resets.

    Raises:
        SpeechRNNError: a missing file, one that is not a speechrnn step, or no onnxruntime.
    """

    def __init__(
        self, path: str | os.PathLike, threads: int = 1, reset_after_silence_ms: float | None = None
    ):
        self.path = Path(path)
        self.session = load_session(self.path, threads)
        self.metadata = parse_metadata(self.session.get_modelmeta().custom_metadata_map, str(self.path))
        meta = self.metadata
        self.shape = StepShape(**meta["step"])
        self.features = FeatureConfig(**meta["feature_config"])
        self.labels = tuple(meta["labels"])
        self.chunk, self.lookahead, self.stride = self.shape.chunk, self.shape.lookahead, self.shape.stride
        self.window = int(meta["window"])
        self.chunk_ms, self.lookahead_ms = float(meta["chunk_ms"]), float(meta["lookahead_ms"])
        self.step_seconds = float(meta["step_ms"]) / 1000.0
        self.quantized = bool(meta.get("quantized"))
        self._state_shape = tuple(meta["state_shape"])
        self._n_vocab, self._n_labels = len(meta["vocab"]), len(self.labels)
        self._outputs = list(OUTPUTS)
        self._windows: dict[int, np.ndarray] = {}  # steps -> (steps, window) indices of their pooling windows
        self._pauses = (
            None if reset_after_silence_ms is None else PauseTracker(self.features, reset_after_silence_ms)
        )
        self.reset()

    @property
    def latency_seconds(self) -> float:
        """Longest wait from a sample arriving to the output of its step: one chunk plus the look-ahead."""
        return (self.chunk + self.lookahead) * self.step_seconds

    @property
    def samples(self) -> int:
        """Samples received since the stream started."""
        return self._samples

    def reset(self) -> None:
        """Forget the stream: the next `accept` starts a new one at step 0."""
        self._buffer = np.zeros(0, dtype=np.float32)  # samples from the start of the next step's window
        self._state = np.zeros(self._state_shape, dtype=np.float32)
        self._attn_hist = np.full(self.window - 1, -np.inf)
        self._label_hist = np.zeros((self.window - 1, self._n_labels))
        self._next_step = 0
        self._samples = 0
        self._c0 = np.zeros(0, dtype=np.float32)  # c0 of the last step's frames, own then look-ahead
        if self._pauses is not None:
            self._pauses.reset()

    @property
    def resets(self) -> int:
        """Pauses that reset the recurrent state so far (0 without `reset_after_silence_ms`)."""
        return self._pauses.pauses if self._pauses is not None else 0

    def accept(self, audio: np.ndarray) -> StreamOutput:
        """Feed the next samples (`(samples,)` float mono at the model's rate, any length); returns the
        outputs of the steps this call finalised (possibly none)."""
        audio = _check_audio(audio)
        self._samples += audio.size
        self._buffer = np.concatenate([self._buffer, audio])  # a copy: callers may reuse their block
        size, advance = self.shape.samples, self.shape.advance
        parts = []
        while self._buffer.size >= size:
            parts.append(self._step(self._buffer[:size], self.shape.frames, self.chunk))
            self._buffer = self._buffer[advance:]
            if self._pauses is not None:
                own, ctc = self.chunk * self.stride, parts[-1][0]
                if self._pauses.update(self._c0[:own], self._c0[own:], ctc):
                    self._forget()
        return self._output(parts, end_samples=None)

    def _forget(self) -> None:
        """A pause reset: the recurrent state and the label window, as `StreamingRecognizer._forget`."""
        self._state = np.zeros(self._state_shape, dtype=np.float32)
        self._attn_hist.fill(-np.inf)
        self._label_hist.fill(0.0)

    def flush(self) -> StreamOutput:
        """End the stream: finalise every remaining step (the last window zero-padded), then reset."""
        frames = self.features.num_frames(self._buffer.size)
        parts = []
        while frames > 0:
            window = np.zeros(self.shape.samples, dtype=np.float32)
            have = min(self._buffer.size, window.size)
            window[:have] = self._buffer[:have]
            valid = min(frames, self.shape.frames)
            steps = min(self.chunk, math.ceil(valid / self.stride))
            parts.append(self._step(window, valid, steps))
            self._buffer = self._buffer[self.shape.advance :]
            frames -= self.chunk * self.stride
        out = self._output(parts, end_samples=self._samples)
        self.reset()
        return out

    def _step(self, window: np.ndarray, frames: int, steps: int) -> tuple[np.ndarray, ...]:
        """One graph run; returns the first `steps` rows of (ctc_log_probs, attn_logits, label_logits) with
        the pooled label logits, and keeps the chunk's frame energies (c0) for the pause tracker. Pooled
        chunk by chunk, so that a pause reset after a chunk empties the window before the next."""
        feeds = {"audio": window, "frames": np.array(frames, dtype=np.int64), "state": self._state}
        ctc, attn, labels, self._state, self._c0 = self.session.run(self._outputs, feeds)
        ctc, attn, labels = ctc[:steps], attn[:steps], labels[:steps]
        return ctc, attn, labels, self._pool(attn, labels)

    def _output(self, parts: list[tuple[np.ndarray, ...]], end_samples: int | None) -> StreamOutput:
        if parts:
            ctc, attn, labels, pooled = (np.concatenate(p) for p in zip(*parts, strict=True))
        else:
            ctc = np.zeros((0, self._n_vocab), np.float32)
            attn = np.zeros(0, np.float32)
            labels = pooled = np.zeros((0, self._n_labels), np.float32)
        start, n = self._next_step, attn.shape[0]
        self._next_step += n
        return StreamOutput(
            start=start,
            ctc_log_probs=torch.from_numpy(ctc),
            label_logits=torch.from_numpy(pooled),
            attn_logits=torch.from_numpy(attn),
            step_logits=torch.from_numpy(labels),
            ready_seconds=torch.from_numpy(self._ready(start, n, end_samples)),
            step_seconds=self.step_seconds,
        )

    def _ready(self, start: int, n: int, end_samples: int | None) -> np.ndarray:
        """Ready time of each step (as `streaming.ready_seconds`, in numpy: it runs every chunk)."""
        steps = np.arange(start, start + n)
        frames = ((steps // self.chunk + 1) * self.chunk + self.lookahead) * self.stride
        samples = (frames - 1) * self.features.hop_length + self.features.frame_span
        if end_samples is not None:
            samples = np.minimum(samples, end_samples)
        return samples / float(self.features.sample_rate)

    def _pool(self, attn: np.ndarray, labels: np.ndarray) -> np.ndarray:
        """Label logits pooled over the `window` steps ending at each new step (as `windowed_labels`)."""
        a = np.concatenate([self._attn_hist, attn.astype(np.float64)])  # (window - 1 + n,)
        x = np.concatenate([self._label_hist, labels.astype(np.float64)])  # (window - 1 + n, n_labels)
        keep = self.window - 1
        self._attn_hist, self._label_hist = a[a.shape[0] - keep :], x[x.shape[0] - keep :]
        n = attn.shape[0]
        if n not in self._windows:
            self._windows[n] = np.arange(n)[:, None] + np.arange(self.window)[None, :]
        idx = self._windows[n]
        aw = a[idx]  # (n, window); steps before the stream start are -inf: no weight
        weights = np.exp(aw - aw.max(axis=1, keepdims=True)) if n else aw
        weights /= weights.sum(axis=1, keepdims=True)
        return np.einsum("nw,nwl->nl", weights, x[idx]).astype(np.float32)
