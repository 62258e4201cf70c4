"""Training augmentation of batched features, on any device: SpecAugment's time and coefficient masks, and
a vocal-tract warp that moves each clip's formants as another speaker's would.

Both run in the training step on `(batch, frames, n_mfcc)` features, after the waveform augmentation of
`augment` has run per item in the Dataset workers.
"""

from __future__ import annotations

import torch
import torchaudio

from .errors import SpeechRNNError
from .features import FeatureConfig

# ----------------------------------------------------------------------------------------- SpecAugment


def _band_mask(
    batch: int,
    size: int,
    limit: torch.Tensor,
    count: int,
    width: tuple[int, int],
    generator: torch.Generator | None,
    device: torch.device,
) -> torch.Tensor:
    """`(batch, size)` bool: `count` bands per row, widths uniform in `width`, placed inside `[0, limit)`."""
    if count == 0 or width[1] == 0:
        return torch.zeros(batch, size, dtype=torch.bool, device=device)
    gen_device = generator.device if generator is not None else device
    u = torch.rand(batch, count, 2, generator=generator, device=gen_device).to(device)
    limit = limit.to(device)[:, None]
    w = (width[0] + (u[..., 0] * (width[1] - width[0] + 1)).floor()).long().clamp(max=width[1])
    w = torch.minimum(w, limit)
    start = (u[..., 1] * (limit - w + 1)).floor().long().clamp(min=0)
    start = torch.minimum(start, limit - w)
    pos = torch.arange(size, device=device)
    inside = (pos >= start[..., None]) & (pos < (start + w)[..., None])  # (batch, count, size)
    return inside.any(dim=1)


def spec_augment(
    features: torch.Tensor,
    lengths: torch.Tensor,
    generator: torch.Generator | None = None,
    *,
    time_masks: int = 2,
    time_width: tuple[int, int] = (0, 12),
    max_time_fraction: float = 0.2,
    freq_masks: int = 2,
    freq_width: tuple[int, int] = (0, 6),
    value: float | None = None,
) -> torch.Tensor:
    """SpecAugment (Park et al. 2019) time and frequency masks on a padded batch of features.

    Args:
        features: `(batch, frames, n)` features (MFCC or log-mel), on any device.
        lengths: `(batch,)` valid frame counts; masks stay inside them and padding is left untouched.
        generator: torch generator for the draws (CPU or the features' device); None uses the global one.
        time_masks: time masks per clip.
        time_width: (min, max) frames of a time mask.
        max_time_fraction: a time mask covers at most this share of the clip's frames (the paper's p).
        freq_masks: masks across the feature axis per clip.
        freq_width: (min, max) feature bins of such a mask.
        value: fill value; None fills with each clip's per-bin mean over its valid frames (neutral for
            unnormalised features).

    Returns:
        A new `(batch, frames, n)` tensor.
    """
    if features.dim() != 3:
        raise SpeechRNNError(
            f"spec_augment: expected features (batch, frames, n), got shape {tuple(features.shape)}"
        )
    batch, frames, n = features.shape
    device = features.device
    lengths = lengths.to(device).clamp(0, frames)
    valid = torch.arange(frames, device=device)[None, :] < lengths[:, None]  # (batch, frames)
    time_limit = torch.minimum(lengths, (lengths.float() * max_time_fraction).floor().long())
    t_hi = min(time_width[1], frames)
    tmask = _band_mask(
        batch, frames, time_limit, time_masks, (min(time_width[0], t_hi), t_hi), generator, device
    )
    full_n = torch.full((batch,), n, dtype=torch.long, device=device)
    f_hi = min(freq_width[1], n)
    fmask = _band_mask(batch, n, full_n, freq_masks, (min(freq_width[0], f_hi), f_hi), generator, device)
    mask = (tmask[:, :, None] | fmask[:, None, :]) & valid[:, :, None]
    if value is None:
        weights = valid[:, :, None].to(features.dtype)
        fill = (features * weights).sum(1, keepdim=True) / weights.sum(1, keepdim=True).clamp(min=1)
        return torch.where(mask, fill.expand_as(features), features)
    return features.masked_fill(mask, value)


# ------------------------------------------------------------------------------- vocal tract length warp


def _hz_to_mel(f: torch.Tensor) -> torch.Tensor:
    return 2595.0 * torch.log10(1.0 + f / 700.0)  # the HTK mel scale the MFCC front end uses


def vocal_tract_warp(features: torch.Tensor, warps: torch.Tensor, config: FeatureConfig) -> torch.Tensor:
    """Warp the frequency axis of MFCC features as a longer or shorter vocal tract would (VTLP).

    Each clip's MFCCs go back to log-mel energies (the inverse of the orthonormal DCT), the log-mel bands are
    read off a warped frequency axis, and the result goes through the DCT again. A warp `a` above 1 moves
    every formant up by the factor `a` (a shorter tract: a smaller person), below 1 down; the top
    `0.2 * f_max` bends linearly so that the band edge stays where it is (Jaitly and Hinton 2013). Unlike the
    waveform's speed and pitch shifts, this changes the formants and leaves the voice's pitch and timing alone.

    Args:
        features: `(batch, frames, n_mfcc)` MFCCs of the front end `config` describes (HTK mel bands), on
            any device.
        warps: `(batch,)` warp factors; 1 leaves a clip as it is.

    Returns:
        A new tensor of the same shape.
    """
    if features.dim() != 3 or warps.shape != features.shape[:1]:
        raise SpeechRNNError(
            f"vocal_tract_warp: expected features (batch, frames, n) and warps (batch,), got shapes "
            f"{tuple(features.shape)} and {tuple(warps.shape)}"
        )
    device, n_mfcc = features.device, features.shape[-1]
    f_min, f_max, n_mels = config.f_min, config.f_max, config.n_mels
    dct = torchaudio.functional.create_dct(n_mfcc, n_mels, norm="ortho").to(device, features.dtype)
    log_mel = features @ dct.T  # (batch, frames, n_mels); exact when n_mfcc == n_mels
    lo, hi = (float(_hz_to_mel(torch.tensor(f, dtype=torch.float64))) for f in (f_min, f_max))
    centre_mel = torch.linspace(lo, hi, n_mels + 2, dtype=torch.float64)[1:-1]
    centre_hz = 700.0 * (10.0 ** (centre_mel / 2595.0) - 1.0)
    a = warps.detach().to("cpu", torch.float64)[:, None]
    knee = 0.8 * f_max * torch.clamp(a, max=1.0)  # below it the source of frequency f is f / a
    f = centre_hz[None, :]
    source = torch.where(
        f <= knee, f / a, knee / a + (f - knee) * (f_max - knee / a) / (f_max - knee)
    )  # (batch, n_mels) Hz each output band reads
    spacing = (hi - lo) / (n_mels + 1)
    pos = ((_hz_to_mel(source) - centre_mel[0]) / spacing).clamp(0, n_mels - 1)  # fractional band index
    below = pos.floor().long().clamp(max=n_mels - 2)
    frac = (pos - below).to(device, features.dtype)[:, None, :]
    below = below.to(device)[:, None, :].expand(-1, log_mel.shape[1], -1)
    warped = (1 - frac) * log_mel.gather(2, below) + frac * log_mel.gather(2, below + 1)
    return warped @ dct


def random_vocal_tract_warp(
    features: torch.Tensor,
    generator: torch.Generator | None,
    prob: float,
    warp_range: tuple[float, float],
    config: FeatureConfig,
) -> torch.Tensor:
    """`vocal_tract_warp` of each clip with chance `prob`, its factor uniform in `warp_range`."""
    batch = features.shape[0]
    gen_device = generator.device if generator is not None else "cpu"
    u = torch.rand(batch, 2, generator=generator, dtype=torch.float64, device=gen_device).cpu()
    warps = torch.where(u[:, 0] < prob, warp_range[0] + u[:, 1] * (warp_range[1] - warp_range[0]), 1.0)
    if bool((warps == 1.0).all()):
        return features
    return vocal_tract_warp(features, warps, config)
