"""Streaming recognition: audio chunks of any size in, per-step model outputs out.

`StreamingRecognizer` owns everything carried from one chunk to the next: the samples the next MFCC frame
still needs (`StreamingMFCC`), the frames that do not yet fill a chunk, the frames held back as look-ahead,
the forward-direction state of every encoder layer, and the last `window - 1` (attention logit, label logits)
pairs of the label head. Each call does work proportional to the audio it is given; nothing grows with time.

Its outputs equal the offline chunked pass (`offline_outputs`) step for step, whatever the sizes of the
audio chunks: steps are finalised in whole chunks of `chunk` encoder steps once `lookahead` further steps
have arrived, exactly as the offline pass cuts its input, and `flush` finishes the stream the way the offline
pass ends it (the last stride group zero-padded).

Times. Step `t` covers MFCC frames `[t * stride, (t + 1) * stride)`. Its *ready time* is the earliest point in
the stream at which its output is determined: the end of the last sample its chunk's look-ahead reads (or the
end of the stream). It does not depend on how the audio was cut into chunks, so events placed at ready times
are the same for every chunking; it is also what a live listener waits, before compute.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from .config import LIVE_CHUNK_MS as LIVE_CHUNK_MS  # re-exported: listen, export, scripts
from .config import LIVE_LOOKAHEAD_MS as LIVE_LOOKAHEAD_MS
from .errors import SpeechRNNError
from .features import FeatureConfig, StreamingMFCC
from .model import Recognizer, windowed_labels
from .text import BLANK_ID

MS_TOLERANCE = 1e-6  # chunk and look-ahead lengths must be whole steps to within this many milliseconds

# The live defaults (`speechrnn listen`, `export`). A longer look-ahead lets the backward direction hear the
# end of a word before its chunk is decided. On a validation-voice stream (bench_streaming.py --split
# validation, session-4 model) 160 ms against 80 ms gave 90.7 against 89.4 % correct and 349 against 413
# false alarms an hour, for a median latency of 162 against 97 ms. Well past the longest look-ahead that
# model had trained with (120 ms) it got worse again (200 ms: 89.4 %, 300 ms: 87.6 %); training now draws
# up to 160 ms.
# The values live in config (LIVE_CHUNK_MS, LIVE_LOOKAHEAD_MS), where the command line reads them.


# A frame this far above the noise floor counts as sound, not silence. On validation-voice streams at 10 dB
# SNR, 6 dB against 10 gave 92.1 against 86.0 % correct at threshold 0.7 (white and pink noise: 90 and 87
# against 70 and 76 %), and at 20 dB the same correct with fewer false positives (0.8 against 1.0 %, 226
# against 245 false alarms an hour); 4 dB was no better at 20 dB and leaves less room for noise that
# fluctuates.
SPEECH_MARGIN_DB = 6.0
SILENCE_FLOOR_RISE_DB_S = 3.0  # how fast the floor estimate may rise (it falls at once)
HEARING_CTC_PROB = 0.5  # a chunk is speech, whatever its energy, if the CTC head gives a character this much


def step_ms(model: Recognizer) -> float:
    """Milliseconds of audio per encoder step (`stride` MFCC hops; 20 ms for the default model)."""
    return 1000.0 * model.config.stride * model.features.hop_length / model.features.sample_rate


def latency_steps(model: Recognizer, chunk_ms: float | None, lookahead_ms: float) -> tuple[int | None, int]:
    """Convert chunk and look-ahead lengths from milliseconds to encoder steps, checking them.

    Args:
        model: the recogniser (its stride and hop fix the step length).
        chunk_ms: chunk length, a positive multiple of the step length; None = one chunk for the whole input.
        lookahead_ms: look-ahead of the backward direction, a multiple of the step length (0 allowed).

    Returns:
        `(chunk, lookahead)` in encoder steps.

    Raises:
        SpeechRNNError: a length that is not a whole number of steps, or out of range.
    """
    ms = step_ms(model)
    examples = ", ".join(f"{k * ms:g}" for k in range(1, 5))

    def convert(value: float, what: str, minimum: int) -> int:
        steps = round(value / ms) if math.isfinite(value) else -1
        if abs(steps * ms - value) > MS_TOLERANCE or steps < minimum:
            least, zero = ("positive ", "") if minimum else ("", "0, ")
            raise SpeechRNNError(
                f"{what} must be a {least}multiple of the model's {ms:g} ms step ({zero}{examples}, ... ms), "
                f"got {value:g} ms"
            )
        return steps

    chunk = None if chunk_ms is None else convert(float(chunk_ms), "chunk length", 1)
    return chunk, convert(float(lookahead_ms), "look-ahead", 0)


@dataclass(frozen=True)
class StreamOutput:
    """Outputs of consecutive encoder steps `[start, start + steps)` of one stream.

    Shapes: `ctc_log_probs (steps, n_vocab)`, `label_logits (steps, n_labels)` (the label head pooled over the
    `window` steps ending at each step: what a spotter sees), `attn_logits (steps,)` and `step_logits
    (steps, n_labels)` (the label head's per-step attention score and logits, for pooling over other spans),
    `ready_seconds (steps,)` float64 (see the module docstring).
    """

    start: int  # absolute index of the first encoder step in this output
    ctc_log_probs: torch.Tensor
    label_logits: torch.Tensor
    attn_logits: torch.Tensor
    step_logits: torch.Tensor
    ready_seconds: torch.Tensor
    step_seconds: float  # seconds of audio per encoder step

    @property
    def steps(self) -> int:
        return self.ctc_log_probs.shape[0]

    @property
    def end(self) -> int:
        """Absolute index one past the last step."""
        return self.start + self.steps

    def times(self) -> torch.Tensor:
        """Start time in seconds of each step's audio: `(steps,)` float64."""
        return (torch.arange(self.start, self.end, dtype=torch.float64)) * self.step_seconds

    @staticmethod
    def concat(outputs: list[StreamOutput]) -> StreamOutput:
        """Join consecutive outputs of one stream (at least one) into one."""
        if not outputs:
            raise ValueError("concat needs at least one StreamOutput")
        for a, b in zip(outputs, outputs[1:], strict=False):
            if b.start != a.end:
                raise ValueError(
                    f"outputs are not consecutive: one ends at step {a.end}, the next starts at {b.start}"
                )
        return StreamOutput(
            start=outputs[0].start,
            ctc_log_probs=torch.cat([o.ctc_log_probs for o in outputs]),
            label_logits=torch.cat([o.label_logits for o in outputs]),
            attn_logits=torch.cat([o.attn_logits for o in outputs]),
            step_logits=torch.cat([o.step_logits for o in outputs]),
            ready_seconds=torch.cat([o.ready_seconds for o in outputs]),
            step_seconds=outputs[0].step_seconds,
        )


class PauseTracker:
    """Tells, chunk by chunk, whether the stream is in a pause long enough to forget the recurrent state.

    A frame is sound when its c0 (the first MFCC coefficient: log energy) rises `SPEECH_MARGIN_DB` above a
    running noise floor that falls at once and rises at `SILENCE_FLOOR_RISE_DB_S`; a pause is
    `reset_after_ms` of frames without sound. The state is forgotten after a chunk in a pause only if its
    look-ahead frames hold no sound either: in noise, a word's soft first sounds (an /f/, an /s/) often stay
    under the margin, and a reset on them threw away the start of the word. On the benchmark's test stream
    at 20 dB SNR that one check lifted correct detections from 86.1 to 91.5 % at threshold 0.8, with fewer
    false alarms (239 an hour against 285); isolated clips in the same noise were 97 % right, so the reset,
    not the model, had lost most of the words in noise. Nor is the state forgotten while the model hears a
    character (`hears_speech`): c0 averages all mel bands, so in white or pink noise a quiet word's vowels
    can stay under the margin for a third of a second. That veto took test correct from 93.1 to 93.6 % at
    0.7 (validation 95.7 to 96.1 %), changing only words in white and pink noise, with the same false
    alarms. Shared by the PyTorch and ONNX runners so that both reset on the same chunks.
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
                they hear a character (`hears_speech`). Read only when a reset is otherwise due, so most
                chunks of a live stream never pay for it.
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
    """Whether a chunk's CTC log-probabilities `(steps, n_vocab)` (torch or numpy) put more than
    `HEARING_CTC_PROB` on a character at some step."""
    blank = np.asarray(ctc_log_probs)[:, BLANK_ID]
    return blank.size > 0 and float(np.exp(blank.min())) < 1.0 - HEARING_CTC_PROB


class StreamingRecognizer:
    """Runs a `Recognizer` on a live stream, carrying all state between chunks.

    Args:
        model: the recogniser; it is switched to evaluation mode.
        chunk_ms: encoder chunk length (a multiple of the step length, 20 ms for the default model). Output
            comes in whole chunks, so it adds to latency; larger chunks cost less compute per second. None
            (a unidirectional model only) = emit every step as soon as its frames are complete.
        lookahead_ms: how far past each chunk the backward direction reads (a multiple of the step length).
            Ignored by a unidirectional model, which needs none.
        reset_after_silence_ms: forget the forward state and the label head's window after this much audio
            with no frame louder than `SPEECH_MARGIN_DB` above the running noise floor, unless the chunk's
            look-ahead holds such a frame or the model hears a character in the chunk (`PauseTracker`).
            The model learnt from clips of a few seconds that start from a zero state; over a stream of
            many minutes the carried state
            drifts where training never went (on the benchmark stream, 75% of isolated test words were
            spotted with the state carried throughout against 86% with a fresh state for each). A reset
            during a pause returns it to familiar ground. Decided per chunk from the MFCC energy and the
            chunk's own outputs, so outputs stay independent of how the audio is cut into blocks. None (the
            default) never resets: exactly the offline pass.

    Raises:
        SpeechRNNError: chunk or look-ahead lengths that are not whole steps; chunk_ms=None with a
            bidirectional model (whose backward direction needs a chunk end).
    """

    def __init__(
        self,
        model: Recognizer,
        chunk_ms: float | None = 120.0,
        lookahead_ms: float = 80.0,
        reset_after_silence_ms: float | None = None,
    ):
        chunk, lookahead = latency_steps(model, chunk_ms, lookahead_ms)
        if chunk is None and model.config.bidirectional:
            raise SpeechRNNError(
                "a bidirectional model streams in chunks: give a chunk length (a multiple of "
                f"{step_ms(model):g} ms); full context (no chunk length) is for offline use or a "
                "unidirectional model"
            )
        self.model = model.eval()
        self.chunk = chunk  # encoder steps per chunk (None: whatever is complete)
        self.lookahead = lookahead if model.config.bidirectional else 0  # encoder steps held back
        self.stride = model.config.stride
        self.window = model.config.window
        self.step_seconds = step_ms(model) / 1000.0
        self._features = model.features
        self._device = model.feat_mean.device
        self._mfcc = StreamingMFCC(model.features)
        self._pauses = (
            None if reset_after_silence_ms is None else PauseTracker(model.features, reset_after_silence_ms)
        )
        self.reset()

    @property
    def latency_seconds(self) -> float:
        """Longest wait from a sample arriving to the output of its step: one chunk plus the look-ahead."""
        return ((self.chunk or 1) + self.lookahead) * self.step_seconds

    def reset(self) -> None:
        """Forget the stream: the next `accept` starts a new one at step 0."""
        n_input, n_labels = self.model.config.n_input, self.model.config.n_labels
        self._mfcc.reset()
        self._pending = torch.zeros(0, n_input)  # MFCC frames not yet emitted (incl. held-back look-ahead)
        self._state: torch.Tensor | None = None  # forward state of every layer (None: zeros)
        self._attn_hist = torch.full((self.window - 1,), -math.inf, dtype=torch.float64)
        self._label_hist = torch.zeros(self.window - 1, n_labels, dtype=torch.float64)
        self._next_step = 0  # absolute index of the next step to emit
        self._samples = 0  # samples received so far
        if self._pauses is not None:
            self._pauses.reset()

    @property
    def samples(self) -> int:
        """Samples received since the stream started."""
        return self._samples

    @torch.inference_mode()
    def accept(self, audio: np.ndarray) -> StreamOutput:
        """Feed the next samples of the stream.

        Args:
            audio: `(samples,)` float mono audio at the model's sample rate; any length, 0 included.

        Returns:
            Outputs of the steps this call finalised (possibly none).
        """
        audio = _check_audio(audio)
        self._samples += audio.size
        frames = self._mfcc(audio)
        if frames.shape[0]:
            self._pending = torch.cat([self._pending, frames])
        complete = self._pending.shape[0] // self.stride  # whole steps available
        if self.chunk is None:
            emit = complete
        else:
            emit = max(complete - self.lookahead, 0) // self.chunk * self.chunk
        if emit == 0:
            return self._empty()
        if self._pauses is None or self.chunk is None:
            main = self._pending[: emit * self.stride]
            future = self._pending[emit * self.stride : (emit + self.lookahead) * self.stride]
            self._pending = self._pending[emit * self.stride :]
            return self._run(main, future, last=False)
        outputs = []  # chunk by chunk, so that a reset falls on the same chunk boundary however audio arrives
        for _ in range(emit // self.chunk):
            width = self.chunk * self.stride
            main, future = self._pending[:width], self._pending[width : width + self.lookahead * self.stride]
            self._pending = self._pending[width:]
            out = self._run(main, future, last=False)
            outputs.append(out)
            if self._pauses.update(main[:, 0].tolist(), future[:, 0].tolist(), out.ctc_log_probs):
                self._forget()  # and again every chunk while the pause lasts, as clips begin from zeros
        return StreamOutput.concat(outputs)

    def _forget(self) -> None:
        """A pause reset: the forward state, and the label head's window of the steps before it. Steps of the
        old state pooled with the fresh state's are a mix no training clip holds: on the validation stream
        they made about half of the false positives (DEVELOPERS.md, session 19)."""
        self._state = None
        self._attn_hist.fill_(-math.inf)
        self._label_hist.zero_()

    @property
    def resets(self) -> int:
        """Pauses that reset the forward state so far (0 without `reset_after_silence_ms`)."""
        return self._pauses.pauses if self._pauses is not None else 0

    @torch.inference_mode()
    def flush(self) -> StreamOutput:
        """End the stream: finalise every remaining step, then reset for a new stream.

        The last stride group is zero-padded and the last chunks see only the frames that exist, exactly as
        in the offline pass.
        """
        if self._pending.shape[0]:
            out = self._run(self._pending, self._pending[:0], last=True)
        else:
            out = self._empty()
        self.reset()
        return out

    def _run(self, main: torch.Tensor, future: torch.Tensor, last: bool) -> StreamOutput:
        """Encode `main` frames (whole chunks, or everything left when `last`) with `future` as look-ahead."""
        feats = main[None].to(self._device)
        lengths = torch.tensor([main.shape[0]], device=self._device)
        fut = future[None].to(self._device) if future.shape[0] else None
        out, state = self.model(
            feats, lengths, state=self._state, chunk=self.chunk, lookahead=self.lookahead, future=fut
        )
        if not last:  # after the last (padded) group the state is never used
            self._state = state
        attn = out.attn_logits[0].cpu()
        step_logits = out.label_logits[0].cpu()
        n = attn.shape[0]
        start = self._next_step
        self._next_step += n
        return StreamOutput(
            start=start,
            ctc_log_probs=out.ctc_log_probs[0].cpu(),
            label_logits=self._pool(attn, step_logits),
            attn_logits=attn,
            step_logits=step_logits,
            ready_seconds=self._ready(start, n, self._samples if last else None),
            step_seconds=self.step_seconds,
        )

    def _pool(self, attn: torch.Tensor, logits: torch.Tensor) -> torch.Tensor:
        """Label logits pooled over the `window` steps ending at each new step, from the carried history."""
        a = torch.cat([self._attn_hist, attn.double()])  # (window - 1 + n,)
        x = torch.cat([self._label_hist, logits.double()])  # (window - 1 + n, n_labels)
        keep = self.window - 1
        self._attn_hist, self._label_hist = a[a.shape[0] - keep :], x[x.shape[0] - keep :]
        weights = a.unfold(0, self.window, 1).softmax(dim=1)  # (n, window); -inf history (none yet) weighs 0
        pooled = torch.einsum("nw,nlw->nl", weights, x.unfold(0, self.window, 1))
        return pooled.to(logits.dtype)

    def _ready(self, start: int, n: int, end_samples: int | None) -> torch.Tensor:
        return ready_seconds(
            torch.arange(start, start + n),
            self.chunk or 1,
            self.lookahead,
            self.stride,
            self._features,
            end_samples,
        )

    def _empty(self) -> StreamOutput:
        cfg = self.model.config
        return StreamOutput(
            start=self._next_step,
            ctc_log_probs=torch.zeros(0, cfg.n_vocab),
            label_logits=torch.zeros(0, cfg.n_labels),
            attn_logits=torch.zeros(0),
            step_logits=torch.zeros(0, cfg.n_labels),
            ready_seconds=torch.zeros(0, dtype=torch.float64),
            step_seconds=self.step_seconds,
        )


def ready_seconds(
    steps: torch.Tensor,
    chunk: int,
    lookahead: int,
    stride: int,
    features: FeatureConfig,
    end_samples: int | None,
) -> torch.Tensor:
    """Ready time (seconds, float64) of each step under the chunk schedule, capped at the stream end."""
    frames = ((steps // chunk + 1) * chunk + lookahead) * stride  # frames the step's chunk reads
    samples = (frames - 1) * features.hop_length + features.frame_span
    if end_samples is not None:
        samples = samples.clamp(max=end_samples)
    return samples.double() / features.sample_rate


def _check_audio(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float32)
    if audio.ndim == 2 and 1 in audio.shape:
        audio = audio.reshape(-1)
    if audio.ndim != 1:
        raise SpeechRNNError(f"expected mono audio of shape (samples,), got shape {audio.shape}")
    if not np.isfinite(audio).all():
        raise SpeechRNNError("audio contains NaN or infinite samples")
    return audio


@torch.inference_mode()
def offline_outputs(
    model: Recognizer, audio: np.ndarray, chunk_ms: float | None = 120.0, lookahead_ms: float = 80.0
) -> StreamOutput:
    """The offline chunked pass over a whole clip: the reference that streaming reproduces.

    `model(feats, lengths, chunk=C, lookahead=R)` on all frames, then `windowed_labels`. Memory grows with the
    clip: for long recordings use `StreamingRecognizer`.

    Args:
        model: the recogniser (used as it is: call `.eval()` first for inference).
        audio: `(samples,)` float mono audio at the model's sample rate.
        chunk_ms: chunk length (multiple of the step length), None = full context (bidirectional offline).
        lookahead_ms: look-ahead (multiple of the step length).

    Returns:
        A `StreamOutput` starting at step 0 covering the whole clip.
    """
    chunk, lookahead = latency_steps(model, chunk_ms, lookahead_ms)
    audio = _check_audio(audio)
    device = model.feat_mean.device
    wave = torch.from_numpy(audio)[None].to(device)
    feats, lengths = model.featurize(wave, torch.tensor([audio.size], device=device))
    out, _ = model(feats, lengths, chunk=chunk, lookahead=lookahead)
    n = int(out.lengths[0])
    attn, logits = out.attn_logits[:, :n], out.label_logits[:, :n]
    if not model.config.bidirectional:  # causal: a step is ready when its chunk is (as when streaming)
        chunk, lookahead = chunk or 1, 0
    elif chunk is None:  # full context: every step waits for the end of the clip
        chunk, lookahead = max(n, 1), 0
    return StreamOutput(
        start=0,
        ctc_log_probs=out.ctc_log_probs[0, :n].cpu(),
        label_logits=(windowed_labels(attn, logits, model.config.window) if n else logits)[0].cpu(),
        attn_logits=attn[0].cpu(),
        step_logits=logits[0].cpu(),
        ready_seconds=ready_seconds(
            torch.arange(n), chunk, lookahead, model.config.stride, model.features, audio.size
        ),
        step_seconds=step_ms(model) / 1000.0,
    )
