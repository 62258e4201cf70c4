"""The streaming recogniser: audio blocks of any size in, per-step outputs out, over any step backend.

`StreamingRecognizer` owns everything carried from one block to the next, whatever computes the step
(`step.py`): the samples from the start of the next chunk's window (its context, the look-ahead and whatever
has arrived beyond), the forward state of every encoder layer, the last `window - 1` (attention logit, label
logits) pairs of the label head, and the pause tracker. Each call does work proportional to the audio it is
given; nothing grows with time. Written once for PyTorch and ONNX; numpy only, so the ONNX path runs
without torch.

Its outputs equal the offline chunked pass (`streaming.offline_outputs`) step for step, whatever the sizes
of the blocks: steps are finalised in whole chunks once their look-ahead has arrived, exactly as the offline
pass cuts its input, and `flush` finishes the stream the way the offline pass ends it.

Times. Step `t` covers MFCC frames `[t * stride, (t + 1) * stride)`. Its *ready time* is the earliest point
in the stream at which its output is determined: the end of the last sample its chunk's look-ahead reads
(or the end of the stream). It does not depend on how the audio was cut into blocks, so events placed at
ready times are the same for every blocking; it is also what a live listener waits, before compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .errors import SpeechRNNError
from .featureconfig import FeatureConfig
from .step import Step, StepOutput, seconds_per_step, tail_steps
from .vocab import BLANK_ID

# A frame this far above the noise floor counts as sound, not silence (the settings are measured in
# docs/LIVE.md: a smaller margin resets inside quiet words in noise, a larger one misses pauses).
SPEECH_MARGIN_DB = 6.0
SILENCE_FLOOR_RISE_DB_S = 3.0  # how fast the floor estimate may rise (it falls at once)
HEARING_CTC_PROB = 0.5  # a chunk is speech, whatever its energy, if the CTC head gives a character this much


def check_audio(audio: np.ndarray) -> np.ndarray:
    """Validate a block of mono audio: `(samples,)` (or `(samples, 1)`, `(1, samples)`) -> float32 `(samples,)`.

    Raises:
        SpeechRNNError: another shape, or NaN or infinite samples.
    """
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise SpeechRNNError(f"expected mono audio of shape (samples,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise SpeechRNNError("audio contains NaN or infinite samples")
    return audio


@dataclass(frozen=True)
class StreamOutput:
    """Outputs of consecutive encoder steps `[start, start + steps)` of one stream (numpy arrays).

    Shapes: `ctc_log_probs (steps, n_vocab)`, `label_logits (steps, n_labels)` (the label head pooled over the
    `window` steps ending at each step: what a spotter sees), `attn_logits (steps,)` and `step_logits
    (steps, n_labels)` (the label head's per-step attention score and logits, for pooling over other spans),
    `ready_seconds (steps,)` float64 (see the module docstring), `c0 (steps,)` (the mean raw MFCC c0 of each
    step's frames: its log energy, what the pause reset follows).
    """

    start: int  # absolute index of the first encoder step in this output
    ctc_log_probs: np.ndarray
    label_logits: np.ndarray
    attn_logits: np.ndarray
    step_logits: np.ndarray
    ready_seconds: np.ndarray
    c0: np.ndarray
    step_seconds: float  # seconds of audio per encoder step

    @property
    def steps(self) -> int:
        return self.ctc_log_probs.shape[0]

    @property
    def end(self) -> int:
        """Absolute index one past the last step."""
        return self.start + self.steps

    def times(self) -> np.ndarray:
        """Start time in seconds of each step's audio: `(steps,)` float64."""
        return np.arange(self.start, self.end, dtype=np.float64) * self.step_seconds

    def label_probs(self) -> np.ndarray:
        """The pooled label logits as probabilities: `(steps, n_labels)` float64."""
        x = self.label_logits.astype(np.float64)
        e = np.exp(x - x.max(axis=-1, keepdims=True)) if x.size else x
        return e / e.sum(axis=-1, keepdims=True) if x.size else e

    @staticmethod
    def concat(outputs: list[StreamOutput]) -> StreamOutput:
        """Join consecutive outputs of one stream (at least one) into one."""
        if not outputs:
            raise ValueError("concat needs at least one StreamOutput")
        if len(outputs) == 1:
            return outputs[0]
        for a, b in zip(outputs, outputs[1:], strict=False):
            if b.start != a.end:
                raise ValueError(
                    f"outputs are not consecutive: one ends at step {a.end}, the next starts at {b.start}"
                )

        def cat(name: str) -> np.ndarray:
            return np.concatenate([getattr(o, name) for o in outputs])

        return StreamOutput(
            start=outputs[0].start,
            ctc_log_probs=cat("ctc_log_probs"),
            label_logits=cat("label_logits"),
            attn_logits=cat("attn_logits"),
            step_logits=cat("step_logits"),
            ready_seconds=cat("ready_seconds"),
            c0=cat("c0"),
            step_seconds=outputs[0].step_seconds,
        )


class PauseTracker:
    """Tells, chunk by chunk, whether the stream is in a pause long enough to forget the recurrent state.

    A frame is sound when its c0 (the first MFCC coefficient: log energy) rises `SPEECH_MARGIN_DB` above a
    running noise floor that falls at once and rises at `SILENCE_FLOOR_RISE_DB_S`; a pause is
    `reset_after_ms` of frames without sound. The state is forgotten after a chunk in a pause only if its
    look-ahead frames hold no sound either (in noise, a word's soft first sounds, an /f/ or an /s/, often
    stay under the margin, and a reset on them threw away the start of the word), and not while the model
    hears a character (`hears_speech`: c0 averages all mel bands, so in white or pink noise a quiet word's
    vowels can stay under the margin). The evidence for both checks is in docs/LIVE.md.
    """

    def __init__(self, features: FeatureConfig, reset_after_ms: float):
        if reset_after_ms <= 0:
            raise SpeechRNNError(f"reset_after_silence_ms must be positive or None, got {reset_after_ms:g}")
        self.frames = math.ceil(reset_after_ms / features.hop_ms)
        # c0 of an orthonormal DCT-II is sum(log mel) / sqrt(n_mels): a dB on every band moves it this much.
        per_db = features.n_mels**0.5 * math.log(10) / 10
        self._margin = SPEECH_MARGIN_DB * per_db
        self._rise = SILENCE_FLOOR_RISE_DB_S * per_db * features.hop_ms / 1000
        self.reset()

    def reset(self) -> None:
        self._floor = math.inf
        self._quiet = 0  # frames since the last sound
        self._counted = False  # whether the current run of quiet frames has been counted as a pause
        self.pauses = 0  # pauses that reset the state so far

    def update(self, c0, ahead=(), ctc_log_probs=None) -> bool:
        """Follow a chunk's frames by their c0 values; True when the state should be forgotten after them.

        Args:
            c0: the chunk's own frames, in order.
            ahead: its look-ahead frames (read, not followed: they are the next chunk's own frames).
            ctc_log_probs: the chunk's CTC log-probabilities `(steps, n_vocab)`; nothing is forgotten when
                they hear a character (`hears_speech`). Read only when a reset is otherwise due.
        """
        for value in (float(v) for v in c0):
            self._floor = min(value, self._floor + self._rise)
            self._quiet = 0 if value > self._floor + self._margin else self._quiet + 1
            self._counted = self._counted and self._quiet > 0
        loud = self._floor + self._margin
        forget = (
            self._quiet >= self.frames
            and all(float(v) <= loud for v in ahead)
            and (ctc_log_probs is None or not hears_speech(ctc_log_probs))
        )
        self.pauses += forget and not self._counted
        self._counted = self._counted or forget
        return forget


def hears_speech(ctc_log_probs) -> bool:
    """Whether a chunk's CTC log-probabilities `(steps, n_vocab)` (any array) put more than
    `HEARING_CTC_PROB` on a character at some step."""
    blank = np.asarray(ctc_log_probs)[:, BLANK_ID]
    return blank.size > 0 and float(np.exp(blank.min())) < 1.0 - HEARING_CTC_PROB


def ready_seconds(
    steps: np.ndarray, chunk: int, lookahead: int, stride: int, features: FeatureConfig, end: int | None
) -> np.ndarray:
    """Ready time (seconds, float64) of each step under the chunk schedule, capped at the stream's `end`
    (samples; None: the stream goes on)."""
    frames = ((np.asarray(steps) // chunk + 1) * chunk + lookahead) * stride  # frames the step's chunk reads
    samples = (frames - 1) * features.hop_length + features.frame_span
    if end is not None:
        samples = np.minimum(samples, end)
    return samples.astype(np.float64) / features.sample_rate


def pool_window(
    attn: np.ndarray, logits: np.ndarray, attn_hist: np.ndarray, label_hist: np.ndarray, window: int
) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Label logits pooled over the `window` steps ending at each new step, after a history of earlier steps.

    Args:
        attn: `(n,)` attention logits of the new steps; logits: `(n, n_labels)` their label logits.
        attn_hist, label_hist: the `window - 1` steps before them, float64 (attention -inf: no step, no
            weight, as at the stream start).

    Returns:
        `(n, n_labels)` pooled logits in `logits`' dtype, and the new history `(attn_hist, label_hist)`.
    """
    a = np.concatenate([attn_hist, attn.astype(np.float64)])  # (window - 1 + n,)
    x = np.concatenate([label_hist, logits.astype(np.float64)])  # (window - 1 + n, n_labels)
    keep, n = window - 1, attn.shape[0]
    idx = np.arange(n)[:, None] + np.arange(window)[None, :]  # (n, window)
    aw = a[idx]
    if n:
        weights = np.exp(aw - aw.max(axis=1, keepdims=True))
        weights /= weights.sum(axis=1, keepdims=True)
    else:
        weights = aw
    pooled = np.einsum("nw,nwl->nl", weights, x[idx]).astype(logits.dtype)
    return pooled, a[a.shape[0] - keep :], x[x.shape[0] - keep :]


class StreamingRecognizer:
    """Runs a streaming step on a live stream, carrying all state between blocks.

    One per stream; the step (and its model) may be shared by many.

    Args:
        step: the backend: `streaming.TorchStep(model, chunk_ms, lookahead_ms)` or `onnx_runner.OnnxStep(path)`
            (`live.open_step` makes either).
        reset_after_silence_ms: forget the forward state and the label head's window after this much audio
            with no frame louder than `SPEECH_MARGIN_DB` above the running noise floor, unless the chunk's
            look-ahead holds such a frame or the model hears a character in the chunk (`PauseTracker`).
            The model learnt from clips of a few seconds that start from a zero state; over a stream of
            many minutes the carried state drifts where training never went, and a reset during a pause
            returns it to familiar ground. Decided per chunk from the step's c0 and outputs, so outputs stay
            independent of how the audio is cut into blocks. None (the default) never resets: exactly the
            offline pass.
    """

    def __init__(self, step: Step, reset_after_silence_ms: float | None = None):
        self.step = step
        self.shape = step.shape
        self.features = step.features
        self.labels = tuple(step.labels)
        self.chunk, self.lookahead, self.stride = self.shape.chunk, self.shape.lookahead, self.shape.stride
        self.window = step.window
        self.step_seconds = seconds_per_step(self.features, self.stride)
        self.chunk_ms = 1000.0 * self.chunk * self.step_seconds
        self.lookahead_ms = 1000.0 * self.lookahead * self.step_seconds
        self._n_vocab, self._n_labels = len(step.vocab), len(self.labels)
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

    @property
    def resets(self) -> int:
        """Pauses that reset the forward state so far (0 without `reset_after_silence_ms`)."""
        return self._pauses.pauses if self._pauses is not None else 0

    def reset(self) -> None:
        """Forget the stream: the next `accept` starts a new one at step 0."""
        self._buffer = np.zeros(0, dtype=np.float32)  # samples from the start of the next chunk's window
        self._state = self.step.init_state()
        self._attn_hist = np.full(self.window - 1, -np.inf)
        self._label_hist = np.zeros((self.window - 1, self._n_labels))
        self._next_step = 0  # absolute index of the next step to emit
        self._samples = 0
        if self._pauses is not None:
            self._pauses.reset()

    def _forget(self) -> None:
        """A pause reset: the forward state, and the label head's window of the steps before it (steps of the
        old state pooled with the fresh state's are a mix no training clip holds)."""
        self._state = self.step.init_state()
        self._attn_hist.fill(-np.inf)
        self._label_hist.fill(0.0)

    def accept(self, audio: np.ndarray) -> StreamOutput:
        """Feed the next samples of the stream.

        Args:
            audio: `(samples,)` float mono audio at the model's sample rate; any length, 0 included.

        Returns:
            Outputs of the steps this call finalised (possibly none).
        """
        audio = check_audio(audio)
        self._samples += audio.size
        self._buffer = np.concatenate([self._buffer, audio])  # a copy: callers may reuse their block
        shape = self.shape
        ready = (
            (self._buffer.size - shape.samples) // shape.advance + 1
            if self._buffer.size >= shape.samples
            else 0
        )
        if ready == 0:
            return self._output([])
        if self._pauses is None:  # all at once: the same outputs, in fewer and larger steps
            return self._output([self._run(ready)])
        parts = []  # chunk by chunk, so that a reset falls on the same chunk boundary however audio arrives
        own = self.chunk * self.stride
        for _ in range(ready):
            part = self._run(1)
            parts.append(part)
            c0, ctc = part[1].c0, part[1].ctc_log_probs
            if self._pauses.update(c0[:own], c0[own:], ctc):
                self._forget()  # and again every chunk while the pause lasts, as clips begin from zeros
        return self._output(parts)

    def flush(self) -> StreamOutput:
        """End the stream: finalise every remaining step, then reset for a new stream.

        The last chunks see only the frames that exist and the last stride group is zero-padded, exactly as
        in the offline pass.
        """
        parts = []
        if tail_steps(self.features, self.stride, self._buffer.size):
            out, _ = self.step(self._buffer, self._state)
            parts.append(self._pooled(out))
        result = self._output(parts, end=self._samples)
        self.reset()
        return result

    def _run(self, chunks: int) -> tuple[np.ndarray, StepOutput]:
        """Run the step over the next `chunks` whole chunks; returns their pooled logits and the step's output."""
        out, self._state = self.step(self._buffer[: self.shape.window_samples(chunks)], self._state)
        self._buffer = self._buffer[chunks * self.shape.advance :]
        return self._pooled(out)

    def _pooled(self, out: StepOutput) -> tuple[np.ndarray, StepOutput]:
        pooled, self._attn_hist, self._label_hist = pool_window(
            out.attn_logits, out.label_logits, self._attn_hist, self._label_hist, self.window
        )
        return pooled, out

    def _output(self, parts: list[tuple[np.ndarray, StepOutput]], end: int | None = None) -> StreamOutput:
        if parts:
            pooled = np.concatenate([p for p, _ in parts])
            ctc = np.concatenate([o.ctc_log_probs for _, o in parts])
            attn = np.concatenate([o.attn_logits for _, o in parts])
            logits = np.concatenate([o.label_logits for _, o in parts])
            c0 = np.concatenate([self._step_c0(o) for _, o in parts])
        else:
            ctc = np.zeros((0, self._n_vocab), np.float32)
            attn = c0 = np.zeros(0, np.float32)
            logits = pooled = np.zeros((0, self._n_labels), np.float32)
        start, n = self._next_step, attn.shape[0]
        self._next_step += n
        return StreamOutput(
            start=start,
            ctc_log_probs=ctc,
            label_logits=pooled,
            attn_logits=attn,
            step_logits=logits,
            ready_seconds=ready_seconds(
                np.arange(start, start + n), self.chunk, self.lookahead, self.stride, self.features, end
            ),
            c0=c0,
            step_seconds=self.step_seconds,
        )

    def _step_c0(self, out: StepOutput) -> np.ndarray:
        """Mean c0 of each output step's own frames (the last stride group of a tail may be partial)."""
        n, stride = out.steps, self.stride
        c0 = out.c0[: n * stride]
        padded = np.full(n * stride, np.nan, np.float32)
        padded[: c0.size] = c0
        return np.nanmean(padded.reshape(n, stride), axis=1) if n else padded
