"""The PyTorch streaming step, and the offline chunked pass that streaming reproduces.

`TorchStep` is the step of `step.py` computed by a `Recognizer`: the MFCC of its audio, then one call of the
latency-controlled encoder over its whole chunks with the look-ahead frames as `future`. The ONNX graph
(`export.py`) computes the same step; `recognizer.StreamingRecognizer` runs either on a stream.

`offline_outputs` is the reference: the model over a whole clip at once, cut into the same chunks. Streaming
through any step, in blocks of any size, gives its outputs step for step (to float tolerance); that equality
is the central test of the project.
"""

from __future__ import annotations

import numpy as np
import torch

from .errors import SpeechRNNError
from .latency import LIVE, to_steps
from .model import Recognizer, windowed_labels
from .recognizer import StreamOutput, check_audio, ready_seconds
from .step import StepOutput, step_shape
from .vocab import VOCAB


def step_ms(model: Recognizer) -> float:
    """Milliseconds of audio per encoder step (`stride` MFCC hops; 20 ms for the default model)."""
    return 1000.0 * model.config.stride * model.features.hop_length / model.features.sample_rate


def latency_steps(model: Recognizer, chunk_ms: float | None, lookahead_ms: float) -> tuple[int | None, int]:
    """Chunk and look-ahead lengths in milliseconds -> encoder steps of `model` (`latency.to_steps`).

    Raises:
        SpeechRNNError: a length that is not a whole number of steps, or out of range.
    """
    return to_steps(step_ms(model), chunk_ms, lookahead_ms)


class TorchStep:
    """The streaming step computed by a `Recognizer` (see `step.py` for the contract).

    Args:
        model: the recogniser; it is switched to evaluation mode.
        chunk_ms: encoder chunk length (a multiple of the step length, 20 ms for the default model). Output
            comes in whole chunks, so it adds to latency; larger chunks cost less compute per second. None
            (a unidirectional model only) = every step as soon as its frames are complete.
        lookahead_ms: how far past each chunk the backward direction reads (a multiple of the step length).
            Ignored by a unidirectional model, which needs none.

    Raises:
        SpeechRNNError: chunk or look-ahead lengths that are not whole steps; chunk_ms=None with a
            bidirectional model (whose backward direction needs a chunk end).
    """

    def __init__(
        self,
        model: Recognizer,
        chunk_ms: float | None = LIVE.chunk_ms,
        lookahead_ms: float = LIVE.lookahead_ms,
    ):
        chunk, lookahead = latency_steps(model, chunk_ms, lookahead_ms)
        if chunk is None and model.config.bidirectional:
            raise SpeechRNNError(
                "a bidirectional model streams in chunks: give a chunk length (a multiple of "
                f"{step_ms(model):g} ms); full context (no chunk length) is for offline use or a "
                "unidirectional model"
            )
        self.model = model.eval()
        self._chunk = chunk  # None: the encoder's full context (a unidirectional model, where it is exact)
        lookahead = lookahead if model.config.bidirectional else 0
        self.shape = step_shape(model.features, model.config.stride, chunk or 1, lookahead)
        self.features, self.labels, self.vocab = model.features, tuple(model.labels), VOCAB
        self.thresholds = model.thresholds
        self.window = model.config.window
        self._device = model.feat_mean.device

    def init_state(self) -> np.ndarray:
        cfg = self.model.config
        return np.zeros((cfg.layers, 1, cfg.state_dim), np.float32)

    @torch.inference_mode()
    def __call__(self, audio: np.ndarray, state: np.ndarray) -> tuple[StepOutput, np.ndarray]:
        """One step: whole chunks and their look-ahead, or a stream's tail (`step.py`)."""
        shape = self.shape
        audio = np.asarray(audio, dtype=np.float32)
        feats = self.model.mfcc(torch.from_numpy(audio).to(self._device))  # (frames, n_mfcc)
        own = feats.shape[0]
        if audio.size >= shape.samples:  # whole chunks: the look-ahead frames are only read
            own -= shape.lookahead * shape.stride
        future = feats[own:][None] if own < feats.shape[0] else None
        h = torch.from_numpy(np.ascontiguousarray(state)).to(self._device)
        lengths = torch.tensor([own], device=self._device)
        out, h = self.model(
            feats[None, :own], lengths, state=h, chunk=self._chunk, lookahead=shape.lookahead, future=future
        )
        n = int(out.lengths[0])
        return (
            StepOutput(
                ctc_log_probs=out.ctc_log_probs[0, :n].cpu().numpy(),
                attn_logits=out.attn_logits[0, :n].cpu().numpy(),
                label_logits=out.label_logits[0, :n].cpu().numpy(),
                c0=feats[:, 0].cpu().numpy(),
            ),
            h.cpu().numpy(),
        )


@torch.inference_mode()
def offline_outputs(
    model: Recognizer,
    audio: np.ndarray,
    chunk_ms: float | None = LIVE.chunk_ms,
    lookahead_ms: float = LIVE.lookahead_ms,
) -> StreamOutput:
    """The offline chunked pass over a whole clip: the reference that streaming reproduces.

    `model(feats, lengths, chunk=C, lookahead=R)` on all frames, then `windowed_labels`. Memory grows with the
    clip: for long recordings stream it (`StreamingRecognizer`).

    Args:
        model: the recogniser (used as it is: call `.eval()` first for inference).
        audio: `(samples,)` float mono audio at the model's sample rate.
        chunk_ms: chunk length (multiple of the step length), None = full context (bidirectional offline).
        lookahead_ms: look-ahead (multiple of the step length).

    Returns:
        A `StreamOutput` starting at step 0 covering the whole clip.
    """
    chunk, lookahead = latency_steps(model, chunk_ms, lookahead_ms)
    audio = check_audio(audio)
    device = model.feat_mean.device
    wave = torch.from_numpy(audio)[None].to(device)
    feats, lengths = model.featurize(wave, torch.tensor([audio.size], device=device))
    out, _ = model(feats, lengths, chunk=chunk, lookahead=lookahead)
    n, stride = int(out.lengths[0]), model.config.stride
    attn, logits = out.attn_logits[:, :n], out.label_logits[:, :n]
    if not model.config.bidirectional:  # causal: a step is ready when its chunk is (as when streaming)
        chunk, lookahead = chunk or 1, 0
    elif chunk is None:  # full context: every step waits for the end of the clip
        chunk, lookahead = max(n, 1), 0
    c0 = torch.nn.functional.pad(feats[0, :, 0], (0, n * stride - feats.shape[1]), value=float("nan"))
    return StreamOutput(
        start=0,
        ctc_log_probs=out.ctc_log_probs[0, :n].cpu().numpy(),
        label_logits=(windowed_labels(attn, logits, model.config.window) if n else logits)[0].cpu().numpy(),
        attn_logits=attn[0].cpu().numpy(),
        step_logits=logits[0].cpu().numpy(),
        ready_seconds=ready_seconds(np.arange(n), chunk, lookahead, stride, model.features, audio.size),
        c0=c0.reshape(n, stride).nanmean(dim=1).cpu().numpy(),
        step_seconds=step_ms(model) / 1000.0,
    )
