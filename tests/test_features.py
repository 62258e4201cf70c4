"""MFCC features: the same frames whole, batched or chunk by chunk, and the same numbers as librosa."""

from __future__ import annotations

import math

import librosa
import numpy as np
import pytest
import torch
from hypothesis import given, settings
from hypothesis import strategies as st

from speechrnn.audio import SAMPLE_RATE
from speechrnn.features import (
    CPU_SAMPLES_PER_CALL,
    DB_PER_NEPER,
    MFCC,
    FeatureConfig,
    StreamingMFCC,
    frame_lengths,
    librosa_mfcc,
    mfcc,
)

CONFIG = FeatureConfig()


def speechlike(samples: int, seed: int = 0) -> np.ndarray:
    """Loud noise plus two tones: every mel band holds energy far above the log floor."""
    rng = np.random.default_rng(seed)
    t = np.arange(samples) / SAMPLE_RATE
    tones = 0.2 * np.sin(2 * np.pi * 300 * t) + 0.1 * np.sin(2 * np.pi * 2500 * t)
    return (0.2 * rng.standard_normal(samples) + tones).astype(np.float32)


# --- configuration and frame counts ------------------------------------------------------------------------


def test_default_config_derives_window_hop_and_context():
    assert (CONFIG.win_length, CONFIG.hop_length, CONFIG.frame_span) == (400, 160, 512)
    assert CONFIG.context_samples == 512 - 160
    assert CONFIG.to_dict()["n_mfcc"] == 40
    assert math.isclose(DB_PER_NEPER, 4.342944819, rel_tol=1e-9)


@pytest.mark.parametrize(
    ("samples", "frames"), [(0, 0), (1, 0), (511, 0), (512, 1), (671, 1), (672, 2), (16_000, 97)]
)
def test_num_frames(samples, frames):
    assert CONFIG.num_frames(samples) == frames
    assert mfcc(np.zeros(samples, np.float32)).shape == (frames, CONFIG.n_mfcc)


def test_frame_lengths_is_num_frames_vectorised():
    lengths = torch.tensor([0, 100, 511, 512, 513, 671, 672, 8_000, 16_000, 16_001])
    expected = [CONFIG.num_frames(int(n)) for n in lengths]
    assert frame_lengths(lengths, CONFIG).tolist() == expected


@pytest.mark.parametrize("samples", [600, 1234, 16_000])
def test_frame_count_matches_the_transform(samples):
    assert mfcc(speechlike(samples)).shape[0] == CONFIG.num_frames(samples)


@pytest.mark.parametrize(
    "bad",
    [
        dict(win_ms=40.0),  # 640-sample window, 512-point FFT
        dict(hop_ms=0.01),
        dict(f_max=9000.0),
        dict(f_min=8000.0, f_max=7000.0),
        dict(n_mfcc=41),
    ],
)
def test_inconsistent_configs_are_refused(bad):
    with pytest.raises(ValueError):
        FeatureConfig(**bad)


# --- batches and shapes -------------------------------------------------------------------------------------


def test_batched_equals_per_clip():
    # Enough clips that the CPU path splits the batch into several transform calls.
    count = CPU_SAMPLES_PER_CALL // 8_000 + 3
    clips = np.stack([speechlike(8_000, seed) for seed in range(count)])
    batched = mfcc(clips)
    assert batched.shape == (count, CONFIG.num_frames(8_000), CONFIG.n_mfcc)
    for clip, features in zip(clips, batched, strict=True):
        torch.testing.assert_close(mfcc(clip), features, atol=1e-4, rtol=0)


def test_padded_batch_equals_per_clip_within_frame_lengths():
    lengths = [16_000, 9_000, 700, 300]
    batch = np.zeros((len(lengths), max(lengths)), np.float32)
    for i, n in enumerate(lengths):
        batch[i, :n] = speechlike(n, seed=i)
    features = mfcc(batch)
    valid = frame_lengths(torch.tensor(lengths), CONFIG)
    for i, n in enumerate(lengths):
        alone = mfcc(batch[i, :n])
        assert alone.shape[0] == valid[i]
        torch.testing.assert_close(features[i, : valid[i]], alone, atol=1e-4, rtol=0)


def test_module_shapes_and_dtypes():
    module = MFCC(CONFIG)
    one = module(torch.from_numpy(speechlike(2_000)))
    assert one.shape == (CONFIG.num_frames(2_000), CONFIG.n_mfcc) and one.dtype == torch.float32
    assert module(torch.zeros(3, 2_000)).shape == (3, CONFIG.num_frames(2_000), CONFIG.n_mfcc)
    assert module(torch.zeros(3, 100)).shape == (3, 0, CONFIG.n_mfcc)
    # float64 numpy input is taken as float32
    assert mfcc(speechlike(2_000).astype(np.float64)).dtype == torch.float32


def test_silence_gives_finite_constant_frames():
    features = mfcc(np.zeros(4_000, np.float32))
    assert torch.isfinite(features).all()
    torch.testing.assert_close(features, features[:1].expand_as(features))


# --- librosa -----------------------------------------------------------------------------------------------


def librosa_reference(x: np.ndarray) -> np.ndarray:
    """librosa configured as our front end: `(frames, n_mfcc)` in nepers (librosa works in dB)."""
    return librosa_mfcc(x, CONFIG).T / DB_PER_NEPER


@pytest.mark.parametrize("seconds", [0.25, 1.0])
def test_matches_librosa(seconds):
    # The two differ only in the floor of the log: ln(E + 1e-6) here, 10 log10(max(E, 1e-10)) in
    # librosa, a difference of about 1e-6 / E nepers per mel band. The clip is loud enough that every band
    # has E > 0.1, so that difference is below 1e-5 and what remains is float32 rounding.
    x = speechlike(round(seconds * SAMPLE_RATE))
    mel_power = librosa.feature.melspectrogram(
        y=x, sr=SAMPLE_RATE, n_fft=512, hop_length=160, win_length=400, center=False, n_mels=40,
        fmin=20, fmax=7600, htk=True, norm=None,
    )  # fmt: skip
    assert mel_power.min() > 0.1
    ours = mfcc(x).numpy()
    theirs = librosa_reference(x)
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-3, rtol=0)


def test_quiet_bands_differ_from_librosa_only_by_the_log_floor():
    # Silence: our floor is ln(1e-6) per band, librosa's 10 log10(1e-10) dB = ln(1e-10) nepers. c0 of the
    # orthonormal DCT is the band sum over sqrt(n_mels), and the other coefficients of a constant are 0.
    x = np.zeros(2_000, np.float32)
    ours, theirs = mfcc(x).numpy(), librosa_reference(x)
    scale = math.sqrt(CONFIG.n_mels)
    np.testing.assert_allclose(ours[:, 0], math.log(1e-6) * scale, rtol=1e-5)
    np.testing.assert_allclose(theirs[:, 0], math.log(1e-10) * scale, rtol=1e-5)
    np.testing.assert_allclose(ours[:, 1:], 0, atol=1e-4)


# --- streaming ---------------------------------------------------------------------------------------------


def stream(x: np.ndarray, sizes: list[int], streamer: StreamingMFCC | None = None) -> torch.Tensor:
    """Feed `x` in chunks of the given sizes (cycled), then return all frames the stream produced."""
    streamer = streamer or StreamingMFCC(CONFIG)
    out, pos, i = [], 0, 0
    while pos < x.size:
        size = sizes[i % len(sizes)]
        frames = streamer(x[pos : pos + size])
        assert frames.shape[1:] == (CONFIG.n_mfcc,) and frames.dtype == torch.float32
        out.append(frames)
        pos, i = pos + size, i + 1
    return torch.cat(out) if out else torch.zeros(0, CONFIG.n_mfcc)


@pytest.mark.parametrize(
    "sizes",
    [[16_000], [160], [1], [512], [0, 1, 0, 7, 333, 0, 2_048, 1, 159], [100_000]],
    ids=["whole", "hop", "one-sample", "frame", "mixed-with-empty", "larger-than-clip"],
)
def test_streaming_equals_whole_clip(sizes):
    x = speechlike(4_000 if sizes == [1] else 16_000)
    whole = mfcc(x)
    streamed = stream(x, sizes)
    assert streamed.shape == whole.shape
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=0)


@settings(max_examples=50, deadline=None)
@given(
    samples=st.integers(0, 6_000),
    sizes=st.lists(st.integers(0, 1_500), min_size=1, max_size=20).filter(any),
    seed=st.integers(0, 2**16),
)
def test_streaming_equals_whole_clip_for_random_chunks(samples, sizes, seed):
    x = speechlike(samples, seed)
    whole = mfcc(x)
    streamed = stream(x, sizes)
    assert streamed.shape == whole.shape == (CONFIG.num_frames(samples), CONFIG.n_mfcc)
    torch.testing.assert_close(streamed, whole, atol=1e-4, rtol=0)


def test_stream_keeps_less_than_one_frame_and_reset_starts_over():
    x = speechlike(10_000)
    streamer = StreamingMFCC(CONFIG)
    first = stream(x, [777], streamer)
    assert streamer._buffer.size < CONFIG.frame_span  # memory does not grow with the stream
    streamer.reset()
    torch.testing.assert_close(stream(x, [1_000], streamer), first, atol=1e-4, rtol=0)
