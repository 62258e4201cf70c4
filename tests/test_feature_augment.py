"""Feature augmentation: SpecAugment's masks and the vocal-tract warp do what they say, repeatably."""

from __future__ import annotations

import numpy as np
import pytest
import torch
import torchaudio
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signals import tone

from speechrnn.errors import SpeechRNNError
from speechrnn.feature_augment import random_vocal_tract_warp, spec_augment, vocal_tract_warp
from speechrnn.features import FeatureConfig, mfcc

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])


# --------------------------------------------------------------------------------------------- SpecAugment


def _features(batch=4, frames=100, n=40, seed=0):
    g = torch.Generator().manual_seed(seed)
    return torch.randn(batch, frames, n, generator=g) + 5.0


@FAST
@given(width=st.integers(1, 15), seed=st.integers(0, 10_000))
def test_spec_augment_time_mask_covers_exactly_the_drawn_width_inside_the_clip(width, seed):
    x = _features()
    lengths = torch.tensor([100, 80, 40, 20])
    g = torch.Generator().manual_seed(seed)
    y = spec_augment(
        x, lengths, g, time_masks=1, time_width=(width, width), max_time_fraction=1.0, freq_masks=0
    )
    changed = (y != x).all(dim=2)  # (batch, frames): whole frames are masked
    assert torch.equal(changed, (y != x).any(dim=2))
    for b, length in enumerate(lengths.tolist()):
        frames = torch.nonzero(changed[b]).ravel()
        assert frames.numel() == min(width, length)
        assert (
            frames.max() < length and frames.max() - frames.min() + 1 == frames.numel()
        )  # one contiguous run
    # The fill is each clip's per-coefficient mean over its valid frames.
    mean = x[1, :80].mean(0)
    torch.testing.assert_close(y[1][changed[1]], mean.expand(int(changed[1].sum()), -1))


@FAST
@given(width=st.integers(1, 10), seed=st.integers(0, 10_000))
def test_spec_augment_frequency_mask_covers_exactly_the_drawn_width(width, seed):
    x = _features()
    lengths = torch.tensor([100, 60, 30, 1])
    g = torch.Generator().manual_seed(seed)
    y = spec_augment(x, lengths, g, time_masks=0, freq_masks=1, freq_width=(width, width), value=0.0)
    for b, length in enumerate(lengths.tolist()):
        bins = torch.nonzero((y[b, :length] == 0).all(dim=0)).ravel()
        assert bins.numel() == width and bins.max() - bins.min() + 1 == width
        assert torch.equal(y[b, length:], x[b, length:])  # padding untouched
        assert int((y[b] != x[b]).sum()) == width * length


def test_spec_augment_is_deterministic_and_bounded_by_the_time_fraction():
    x = _features(batch=8)
    lengths = torch.full((8,), 100)
    a = spec_augment(
        x, lengths, torch.Generator().manual_seed(3), time_masks=2, time_width=(0, 50), freq_masks=0
    )
    b = spec_augment(
        x, lengths, torch.Generator().manual_seed(3), time_masks=2, time_width=(0, 50), freq_masks=0
    )
    assert torch.equal(a, b)
    masked = (a != x).all(dim=2).sum(dim=1)
    assert int(masked.max()) <= 2 * 20  # each mask at most 20 % of 100 frames
    c = spec_augment(x, lengths, torch.Generator().manual_seed(4))
    assert not torch.equal(a, c)
    with pytest.raises(SpeechRNNError, match="expected features \\(batch, frames, n\\)"):
        spec_augment(x[0], lengths)


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_spec_augment_on_gpu_with_a_cpu_generator_matches_cpu():
    x = _features()
    lengths = torch.tensor([100, 80, 40, 20])
    cpu = spec_augment(x, lengths, torch.Generator().manual_seed(1))
    gpu = spec_augment(x.cuda(), lengths.cuda(), torch.Generator().manual_seed(1))
    assert gpu.device.type == "cuda"
    torch.testing.assert_close(gpu.cpu(), cpu)


# ------------------------------------------------------------------------------- vocal tract length warp
FEATS = FeatureConfig()


def _log_mel_peak_hz(features: torch.Tensor) -> float:
    """Centre frequency of the loudest log-mel band of `(frames, n_mfcc)` MFCCs, averaged over frames."""
    dct = torchaudio.functional.create_dct(FEATS.n_mfcc, FEATS.n_mels, norm="ortho")
    log_mel = (features.double() @ dct.T.double()).mean(0)
    mel = np.linspace(
        2595 * np.log10(1 + FEATS.f_min / 700), 2595 * np.log10(1 + FEATS.f_max / 700), FEATS.n_mels + 2
    )
    k = int(log_mel.argmax())
    # the peak between bands: a parabola through the loudest band and its neighbours
    a, b, c = (float(log_mel[j]) for j in (k - 1, k, k + 1))
    centre = k + 0.5 * (a - c) / (a - 2 * b + c)
    return float(700 * (10 ** (np.interp(centre, np.arange(FEATS.n_mels), mel[1:-1]) / 2595) - 1))


def test_vocal_tract_warp_of_one_leaves_features_alone():
    x = mfcc(tone(700.0) + tone(2300.0, amp=0.2))[None]
    torch.testing.assert_close(vocal_tract_warp(x, torch.ones(1), FEATS), x, atol=1e-4, rtol=1e-5)


@pytest.mark.parametrize("warp", [0.9, 1.1])
def test_vocal_tract_warp_moves_a_formant_by_its_factor_and_leaves_the_timing(warp):
    # A 1 kHz tone warped by `warp` sounds to the front end like a tone at `warp` kHz.
    x = mfcc(tone(1000.0, start=0.3, stop=0.7))
    y = vocal_tract_warp(x[None], torch.tensor([warp]), FEATS)[0]
    inside = slice(35, 65)  # frames well inside the tone
    assert _log_mel_peak_hz(x[inside]) == pytest.approx(1000.0, rel=0.03)
    assert _log_mel_peak_hz(y[inside]) == pytest.approx(1000.0 * warp, rel=0.03)
    assert _log_mel_peak_hz(y[inside]) == pytest.approx(
        _log_mel_peak_hz(mfcc(tone(1000.0 * warp))[inside]), rel=0.03
    )
    energy = y[:, 0]  # c0 follows loudness: the tone still starts and stops where it did
    assert energy[inside].min() > energy[:20].max() + 5 and energy[inside].min() > energy[-20:].max() + 5


def test_random_vocal_tract_warp_draws_per_clip_and_repeats_with_the_generator():
    x = mfcc(tone(1000.0))[None].repeat(6, 1, 1)
    a = random_vocal_tract_warp(x, torch.Generator().manual_seed(3), 1.0, (0.9, 1.1), FEATS)
    b = random_vocal_tract_warp(x, torch.Generator().manual_seed(3), 1.0, (0.9, 1.1), FEATS)
    torch.testing.assert_close(a, b)
    peaks = [_log_mel_peak_hz(clip) for clip in a]
    assert len({round(p) for p in peaks}) == 6 and all(880 < p < 1120 for p in peaks)
    assert random_vocal_tract_warp(x, torch.Generator().manual_seed(3), 0.0, (0.9, 1.1), FEATS) is x
    with pytest.raises(SpeechRNNError, match="warps"):
        vocal_tract_warp(x, torch.ones(2), FEATS)
