"""The recogniser: normalised MFCC frames -> latency-controlled bidirectional RNN -> CTC and label heads.

Latency control (LC-BLSTM, Chen & Huo 2016; Zhang et al. 2016). The encoder input is cut into chunks of
`chunk` steps. In every layer the forward direction runs through the chunks carrying its state; the backward
direction starts fresh at the end of each chunk plus `lookahead` further steps, so a step's output never
depends on input more than `chunk + lookahead` steps ahead. Each chunk is processed as a *segment* of
`chunk + lookahead` steps: the look-ahead steps are recomputed inside the segment in every layer (the forward
direction continues from the chunk's final state without carrying it on), so the latency does not grow with
depth. `chunk=None` is the ordinary bidirectional RNN over the whole input.

Everything is batched: segments are folded into the batch for the backward pass; Python loops run over layers
(and over chunks only for the LSTM, whose cell state at chunk ends is not among its outputs), never over steps.

State is explicit: `forward(..., state) -> (..., state)` where `state` is the forward direction's hidden state
of every layer, `(layers, batch, hidden)` (`(layers, batch, 2 * hidden)` for the LSTM: h then c).
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from .config import CELL_NAMES, ModelConfig
from .features import MFCC, FeatureConfig, frame_lengths

CELLS = dict(zip(CELL_NAMES, (nn.GRU, nn.LSTM, nn.RNN), strict=True))


@dataclass
class ModelOutput:
    """Per-step outputs of `Recognizer.forward` for a batch.

    Shapes: `encoded (batch, steps, out_dim)`, `ctc_log_probs (batch, steps, n_vocab)`,
    `attn_logits (batch, steps)`, `label_logits (batch, steps, n_labels)`, `lengths (batch,)` in steps.
    """

    encoded: torch.Tensor
    ctc_log_probs: torch.Tensor
    attn_logits: torch.Tensor
    label_logits: torch.Tensor
    lengths: torch.Tensor
    extras: dict = field(default_factory=dict)

    def pooled_logits(self) -> torch.Tensor:
        """Label logits of each whole input: attention pooling over its valid steps. `(batch, n_labels)`."""
        return pool_labels(self.attn_logits, self.label_logits, self.lengths)


def pool_labels(attn_logits: torch.Tensor, label_logits: torch.Tensor, lengths: torch.Tensor) -> torch.Tensor:
    """Attention pooling: softmax over valid steps of `attn_logits` weighting per-step `label_logits`.

    The label projection is linear, so pooling its per-step outputs equals projecting pooled encodings;
    doing it this way lets a streaming caller keep only `(attn, label)` pairs for its window.
    """
    steps = attn_logits.shape[1]
    valid = torch.arange(steps, device=lengths.device)[None, :] < lengths[:, None]
    weights = attn_logits.masked_fill(~valid, float("-inf")).softmax(dim=1)
    weights = torch.nan_to_num(weights)  # an empty input pools to zeros rather than NaN
    return torch.einsum("bt,btl->bl", weights, label_logits)


def windowed_labels(attn_logits: torch.Tensor, label_logits: torch.Tensor, window: int) -> torch.Tensor:
    """Label logits pooled over the `window` steps ending at each step: `(batch, steps, n_labels)`.

    What a streaming spotter sees at every step. Computed with running sums in float64 (weights are
    bounded: the attention score is a linear map of a tanh), so cost is linear in the number of steps.
    """
    a = attn_logits.double()
    a = (a - a.amax(dim=1, keepdim=True)).exp()  # (batch, steps)
    num = torch.cumsum(a[..., None] * label_logits.double(), dim=1)
    den = torch.cumsum(a, dim=1)
    num = num - torch.nn.functional.pad(num, (0, 0, window, 0))[:, : num.shape[1]]
    den = den - torch.nn.functional.pad(den, (window, 0))[:, : den.shape[1]]
    return (num / den.clamp_min(1e-300)[..., None]).to(label_logits.dtype)


def stack_frames(
    feats: torch.Tensor, lengths: torch.Tensor, stride: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """`(batch, frames, n)` -> `(batch, ceil(frames / stride), stride * n)`, zero-padding the last step."""
    if stride == 1:
        return feats, lengths
    batch, frames, n = feats.shape
    pad = (-frames) % stride
    if pad:
        feats = torch.nn.functional.pad(feats, (0, 0, 0, pad))
    steps = feats.shape[1] // stride
    return feats.reshape(batch, steps, stride * n), (lengths + stride - 1) // stride


class LatencyControlledRNN(nn.Module):
    """Stacked RNN whose backward direction sees at most `chunk + lookahead` steps ahead."""

    def __init__(
        self, n_input: int, hidden: int, layers: int, cell: str, bidirectional: bool, dropout: float
    ):
        super().__init__()
        if cell not in CELLS:
            raise ValueError(f"cell must be one of {sorted(CELLS)}, got {cell!r}")
        rnn = CELLS[cell]
        self.cell, self.hidden, self.bidirectional = cell, hidden, bidirectional
        dirs = 2 if bidirectional else 1
        self.fwd = nn.ModuleList(
            rnn(n_input if i == 0 else hidden * dirs, hidden, batch_first=True) for i in range(layers)
        )
        self.bwd = nn.ModuleList(
            rnn(n_input if i == 0 else hidden * dirs, hidden, batch_first=True)
            for i in range(layers if bidirectional else 0)
        )
        self.dropout = nn.Dropout(dropout)

    @property
    def layers(self) -> int:
        return len(self.fwd)

    def init_state(self, batch: int, device: torch.device | str = "cpu") -> torch.Tensor:
        """Zero forward-direction state: `(layers, batch, state_dim)`."""
        width = self.hidden * (2 if self.cell == "lstm" else 1)
        return torch.zeros(self.layers, batch, width, device=device)

    def _run(
        self, rnn: nn.RNNBase, x: torch.Tensor, h: torch.Tensor | None
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One unidirectional pass with our flat state layout. `h`: `(batch, state_dim)` or None."""
        if h is None:
            out, hn = rnn(x)
        elif self.cell == "lstm":
            hh, cc = h.chunk(2, dim=-1)
            out, hn = rnn(x, (hh[None].contiguous(), cc[None].contiguous()))
        else:
            out, hn = rnn(x, h[None].contiguous())
        hn = torch.cat([hn[0][0], hn[1][0]], dim=-1) if self.cell == "lstm" else hn[0]
        return out, hn

    def forward(
        self,
        x: torch.Tensor,
        lengths: torch.Tensor,
        state: torch.Tensor | None = None,
        chunk: int | None = None,
        lookahead: int = 0,
        future: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Encode `x`, optionally continuing from `state`.

        Args:
            x: `(batch, steps, n_input)`; steps past `lengths` are padding.
            lengths: `(batch,)` valid steps.
            state: `(layers, batch, state_dim)` forward state after the previous input, or None for zeros.
            chunk: steps per chunk; None = one chunk spanning the input (ordinary bidirectional RNN).
            lookahead: steps past each chunk's end the backward direction may read.
            future: `(batch, f, n_input)` steps that follow `x`, used only as look-ahead for its last chunk
                (streaming: the caller holds them back until their own chunk is complete). Assumes every
                sequence fills `x`.

        Returns:
            `(batch, steps, out_dim)` encodings and the forward state after the last step of `x` (for
            sequences shorter than `x` it includes padding steps: carry state only for full inputs).
        """
        batch, steps, _ = x.shape
        if state is None:
            state = self.init_state(batch, x.device)
        if not self.bidirectional or chunk is None or chunk >= steps:
            chunk = max(steps, 1)
            if not self.bidirectional or future is None:
                lookahead = 0
        if future is not None and future.shape[1] and self.bidirectional:
            avail = torch.cat([x, future], dim=1)
            avail_len = lengths + future.shape[1]
        else:
            avail, avail_len = x, lengths
        lookahead = min(lookahead, max(avail.shape[1] - chunk, 0)) if self.bidirectional else 0
        n_chunks = max(-(-steps // chunk), 1)
        seg_len = chunk + lookahead
        # Segment k covers steps [k*chunk, k*chunk + seg_len) of the available input.
        idx = torch.arange(n_chunks, device=x.device)[:, None] * chunk + torch.arange(
            seg_len, device=x.device
        )
        total = n_chunks * chunk + lookahead
        if avail.shape[1] < total:
            avail = torch.nn.functional.pad(avail, (0, 0, 0, total - avail.shape[1]))
        seg_valid = idx[None] < avail_len[:, None, None]  # (batch, chunks, seg_len)
        seg = avail[:, idx] * seg_valid[..., None]  # (batch, chunks, seg_len, n)
        seg_lengths = seg_valid.sum(-1).reshape(-1)  # (batch * chunks,)

        new_state = []
        for layer in range(self.layers):
            if layer:
                seg = self.dropout(seg) * seg_valid[..., None]
            main = seg[:, :, :chunk].reshape(batch, n_chunks * chunk, -1)
            fwd_main, h_end, h_chunks = self._forward_direction(layer, main, state[layer], n_chunks, chunk)
            new_state.append(h_end)
            fwd_seg = fwd_main.reshape(batch, n_chunks, chunk, -1)
            if not self.bidirectional:
                seg = fwd_seg
                continue
            if lookahead:
                la = seg[:, :, chunk:].reshape(batch * n_chunks, lookahead, -1)
                fwd_la, _ = self._run(self.fwd[layer], la, h_chunks.reshape(batch * n_chunks, -1))
                fwd_seg = torch.cat([fwd_seg, fwd_la.reshape(batch, n_chunks, lookahead, -1)], dim=2)
            bwd_seg = self._backward_direction(layer, seg.reshape(batch * n_chunks, seg_len, -1), seg_lengths)
            seg = torch.cat([fwd_seg, bwd_seg.reshape(batch, n_chunks, seg_len, -1)], dim=-1)
        out = seg[:, :, :chunk].reshape(batch, n_chunks * chunk, -1)[:, :steps]
        return out, torch.stack(new_state)

    def _forward_direction(
        self, layer: int, main: torch.Tensor, h0: torch.Tensor, n_chunks: int, chunk: int
    ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Forward pass over the concatenated main steps. Returns outputs, final state, state at each chunk end."""
        rnn = self.fwd[layer]
        if self.cell != "lstm":
            out, h_end = self._run(rnn, main, h0)
            # For GRU and plain RNN the output *is* the hidden state, so chunk-end states are read off it.
            h_chunks = out.reshape(out.shape[0], n_chunks, chunk, -1)[:, :, -1]
            return out, h_end, h_chunks
        outs, ends, h = [], [], h0
        for k in range(n_chunks):
            o, h = self._run(rnn, main[:, k * chunk : (k + 1) * chunk], h)
            outs.append(o)
            ends.append(h)
        return torch.cat(outs, dim=1), h, torch.stack(ends, dim=1)

    def _backward_direction(self, layer: int, seg: torch.Tensor, seg_lengths: torch.Tensor) -> torch.Tensor:
        """Backward pass over each segment from its last valid step, starting from zeros."""
        rev = _reverse_index(seg_lengths, seg.shape[1])
        flipped = torch.gather(seg, 1, rev[..., None].expand_as(seg))
        out, _ = self._run(self.bwd[layer], flipped, None)
        # Steps past a segment's length follow its valid steps in the flipped order, so they never leak in.
        return torch.gather(out, 1, rev[..., None].expand(-1, -1, out.shape[-1]))


def _reverse_index(lengths: torch.Tensor, steps: int) -> torch.Tensor:
    """Per row: indices that reverse the first `length` steps and leave the rest in place. `(rows, steps)`."""
    t = torch.arange(steps, device=lengths.device)[None, :]
    return torch.where(t < lengths[:, None], lengths[:, None] - 1 - t, t)


class Recognizer(nn.Module):
    """MFCC front end, normalisation, encoder, CTC head and attention-pooled label head.

    Args:
        config: the architecture.
        labels: class names of the label head (`config.n_labels` of them).
        features: the MFCC settings the model was trained with.
    """

    def __init__(
        self,
        config: ModelConfig,
        labels: tuple[str, ...] | None = None,
        features: FeatureConfig | None = None,
    ):
        super().__init__()
        labels = tuple(labels) if labels is not None else tuple(f"label{i}" for i in range(config.n_labels))
        if len(labels) != config.n_labels:
            raise ValueError(f"expected {config.n_labels} labels, got {len(labels)}")
        features = features or FeatureConfig(n_mfcc=config.n_input)
        if features.n_mfcc != config.n_input:
            raise ValueError(
                f"features give {features.n_mfcc} coefficients, the model expects {config.n_input}"
            )
        self.config, self.labels, self.features = config, labels, features
        # Per-keyword thresholds calibrated for these weights: {"label"|"ctc": {keyword: threshold}}
        self.thresholds: dict[str, dict[str, float]] = {}
        self.mfcc = MFCC(features)
        self.register_buffer("feat_mean", torch.zeros(config.n_input))
        self.register_buffer("feat_std", torch.ones(config.n_input))
        self.encoder = LatencyControlledRNN(
            config.n_input * config.stride,
            config.hidden,
            config.layers,
            config.cell,
            config.bidirectional,
            config.dropout,
        )
        self.dropout = nn.Dropout(config.dropout)
        self.ctc_head = nn.Linear(config.out_dim, config.n_vocab)
        self.attn = nn.Sequential(
            nn.Linear(config.out_dim, config.attn_dim), nn.Tanh(), nn.Linear(config.attn_dim, 1)
        )
        self.label_head = nn.Linear(config.out_dim, config.n_labels)

    def set_normalization(self, mean: torch.Tensor, std: torch.Tensor) -> None:
        self.feat_mean.copy_(mean)
        self.feat_std.copy_(std.clamp_min(1e-5))

    def init_state(self, batch: int = 1) -> torch.Tensor:
        return self.encoder.init_state(batch, self.feat_mean.device)

    def featurize(
        self, audio: torch.Tensor, audio_lengths: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Padded audio `(batch, samples)` -> MFCC `(batch, frames, n_input)` and valid frame counts."""
        return self.mfcc(audio), frame_lengths(audio_lengths, self.features)

    def steps_to_seconds(self, steps: float) -> float:
        """Encoder steps -> seconds (the time at which an encoder step's first frame starts)."""
        return steps * self.config.stride * self.features.hop_length / self.features.sample_rate

    def step_end_seconds(self, steps: int) -> torch.Tensor:
        """`(steps,)` time in seconds of the last audio sample each encoder step has read (its last frame's end)."""
        f = self.features
        last_frame = torch.arange(steps, dtype=torch.float64) * self.config.stride + self.config.stride - 1
        return (last_frame * f.hop_length + f.frame_span) / f.sample_rate

    def prepare(self, feats: torch.Tensor, lengths: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """MFCC frames `(batch, frames, n_input)` -> normalised, stacked encoder steps and their lengths."""
        x = (feats - self.feat_mean) / self.feat_std
        frames = torch.arange(x.shape[1], device=x.device)[None, :]
        x = x * (frames < lengths[:, None])[..., None]
        return stack_frames(x, lengths, self.config.stride)

    def forward(
        self,
        feats: torch.Tensor,
        lengths: torch.Tensor,
        state: torch.Tensor | None = None,
        chunk: int | None = None,
        lookahead: int = 0,
        future: torch.Tensor | None = None,
    ) -> tuple[ModelOutput, torch.Tensor]:
        """Run the model on MFCC frames.

        Args:
            feats: `(batch, frames, n_input)` raw MFCC frames.
            lengths: `(batch,)` valid frames.
            state: carried encoder state (see `LatencyControlledRNN.forward`), None to start fresh.
            chunk, lookahead: latency control in *encoder steps* (`stride` frames each); chunk None = full context.
            future: raw MFCC frames that follow `feats` (a multiple of `stride`), used only as look-ahead.

        Returns:
            `(ModelOutput, state)`.
        """
        x, steps = self.prepare(feats, lengths)
        fut = None
        if future is not None and future.shape[1]:
            fut, _ = self.prepare(future, torch.full_like(lengths, future.shape[1]))
        enc, state = self.encoder(x, steps, state=state, chunk=chunk, lookahead=lookahead, future=fut)
        return self.heads(enc, steps), state

    def heads(self, enc: torch.Tensor, steps: torch.Tensor) -> ModelOutput:
        """Per-step head outputs of encodings `(batch, steps, out_dim)`."""
        h = self.dropout(enc)
        return ModelOutput(
            encoded=enc,
            ctc_log_probs=self.ctc_head(h).log_softmax(dim=-1),
            attn_logits=self.attn(h).squeeze(-1),
            label_logits=self.label_head(h),
            lengths=steps,
        )

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())
