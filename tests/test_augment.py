"""Waveform augmentation: shape, determinism, and that each effect does what it says."""

from __future__ import annotations

from dataclasses import replace

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from signals import tone

from speechrnn.audio import SAMPLE_RATE
from speechrnn.augment import (
    BABBLE_SECONDS,
    AugmentConfig,
    activity_bounds,
    augment,
    change_speed,
    coloured_noise,
    draw_time_shift,
    equalise,
    fast_length,
    load_noises,
    mix_at_snr,
    noise_recordings,
    pitch_shift,
    random_channel,
    random_gain,
    random_noise,
    random_pitch,
    random_reverb,
    random_speed,
    random_time_shift,
    reverberate,
    room_impulse_response,
    speech_babble,
    time_shift,
)
from speechrnn.errors import SpeechRNNError

FAST = settings(max_examples=20, deadline=None, suppress_health_check=[HealthCheck.too_slow])
OFF = AugmentConfig(
    shift_prob=0, speed_prob=0, pitch_prob=0, reverb_prob=0, noise_prob=0, lowpass_prob=0, highpass_prob=0,
    eq_prob=0, telephone_prob=0, clip_prob=0, gain_db_range=(0.0, 0.0),
)  # fmt: skip
ALWAYS = AugmentConfig(
    shift_prob=1, speed_prob=1, pitch_prob=1, reverb_prob=1, noise_prob=1, lowpass_prob=1, highpass_prob=1,
    eq_prob=1, telephone_prob=0.5, clip_prob=0.5,
)  # fmt: skip
NOISES = (np.random.default_rng(5).standard_normal(3 * SAMPLE_RATE).astype(np.float32) * 0.1,)


def _band_power(x: np.ndarray, lo: float, hi: float) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64))) ** 2
    freqs = np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)
    return float(spec[(freqs >= lo) & (freqs < hi)].sum())


def _peak_hz(x: np.ndarray) -> float:
    spec = np.abs(np.fft.rfft(x.astype(np.float64) * np.hanning(x.size)))
    return float(np.fft.rfftfreq(x.size, 1 / SAMPLE_RATE)[np.argmax(spec)])


def _power(x: np.ndarray) -> float:
    return float(np.mean(np.square(x.astype(np.float64))))


def _db(ratio: float) -> float:
    return 10 * np.log10(ratio)


# Every transform with its effect always on, as (name, function(audio, rng)).
TRANSFORMS = [
    ("shift", lambda a, r: random_time_shift(a, r, ALWAYS)),
    ("speed", lambda a, r: random_speed(a, r, ALWAYS)),
    ("pitch", lambda a, r: random_pitch(a, r, ALWAYS)),
    ("reverb", lambda a, r: random_reverb(a, r, ALWAYS)),
    ("noise", lambda a, r: random_noise(a, r, ALWAYS, NOISES)),
    ("coloured noise", lambda a, r: random_noise(a, r, ALWAYS)),
    ("channel", lambda a, r: random_channel(a, r, ALWAYS)),
    ("gain", lambda a, r: random_gain(a, r, ALWAYS)),
    ("chain", lambda a, r: augment(a, r, ALWAYS, NOISES)),
    ("default chain", lambda a, r: augment(a, r, AugmentConfig(), NOISES)),
]


@pytest.mark.parametrize("name,fn", TRANSFORMS, ids=[t[0] for t in TRANSFORMS])
@FAST
@given(
    n=st.integers(0, 40_000),
    kind=st.sampled_from(["tone", "noise", "zeros", "impulse", "loud"]),
    seed=st.integers(0, 2**32 - 1),
)
def test_transforms_keep_length_stay_finite_and_are_deterministic(name, fn, n, kind, seed):
    g = np.random.default_rng(seed)
    audio = {
        "tone": tone(300 + seed % 3000, n / SAMPLE_RATE)[:n],
        "noise": (0.2 * g.standard_normal(n)).astype(np.float32),
        "zeros": np.zeros(n, np.float32),
        "impulse": np.eye(1, n, n // 2, dtype=np.float32).ravel(),
        "loud": np.clip(3 * g.standard_normal(n), -1, 1).astype(np.float32),
    }[kind]
    before = audio.copy()
    a = fn(audio, np.random.default_rng(seed))
    b = fn(audio, np.random.default_rng(seed))
    assert a.shape == audio.shape and a.dtype == np.float32
    assert np.isfinite(a).all()
    np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(audio, before)  # inputs are never modified
    if a.size:
        # No transform blows the level up. The loosest case: noise at 0 dB SNR on a full-scale input, where
        # a short crop of coloured noise can peak at 4-5x its RMS (hypothesis found 4.5).
        assert np.max(np.abs(a)) <= 8.0
    if name in ("chain", "default chain", "gain") and a.size:
        assert np.max(np.abs(a)) <= 1.0


def test_chain_differs_between_generators_and_leaves_silence_silent():
    x = tone(700, start=0.3, stop=0.7)
    a = augment(x, np.random.default_rng(1), ALWAYS, NOISES)
    b = augment(x, np.random.default_rng(2), ALWAYS, NOISES)
    assert not np.allclose(a, b)
    zeros = np.zeros(SAMPLE_RATE, np.float32)
    np.testing.assert_array_equal(augment(zeros, np.random.default_rng(3), ALWAYS, NOISES), zeros)


def test_disabled_effects_return_the_input():
    x = tone(700, start=0.3, stop=0.7)
    np.testing.assert_allclose(augment(x, np.random.default_rng(0), OFF, NOISES), x, atol=1e-7)


@FAST
@given(seed=st.integers(0, 2**32 - 1))
def test_time_shift_moves_the_onset_by_the_drawn_amount(seed):
    x = np.zeros(SAMPLE_RATE, np.float32)
    x[6400:9600] = 0.5  # 0.4-0.6 s, far from the edges
    cfg = replace(OFF, shift_prob=1.0)
    drawn = draw_time_shift(x, np.random.default_rng(seed), cfg)
    y = random_time_shift(x, np.random.default_rng(seed), cfg)
    assert abs(drawn) <= SAMPLE_RATE // 10
    assert np.flatnonzero(y)[0] == 6400 + drawn
    assert np.flatnonzero(y)[-1] == 9599 + drawn


def test_time_shift_never_pushes_sound_out_of_the_clip():
    x = np.zeros(SAMPLE_RATE, np.float32)
    x[15_000:15_800] = 0.5  # ends 200 samples before the clip does
    cfg = replace(OFF, shift_prob=1.0)
    shifts = [draw_time_shift(x, np.random.default_rng(s), cfg) for s in range(200)]
    assert max(shifts) <= 200 and min(shifts) < -1000  # later is limited, earlier is free
    for s in range(20):
        assert np.sum(random_time_shift(x, np.random.default_rng(s), cfg)) == pytest.approx(np.sum(x))
    np.testing.assert_array_equal(time_shift(x, -100)[:-100], x[100:])
    first, end = activity_bounds(x)  # 10 ms resolution, never cutting into the sound
    assert 15_000 - 160 < first <= 15_000 and 15_800 <= end < 15_800 + 160


@pytest.mark.parametrize("factor", [0.85, 0.93, 1.07, 1.15])
def test_speed_scales_frequency_and_keeps_length(factor):
    x = tone(1000, start=0.25, stop=0.75)
    y = change_speed(x, factor)
    assert y.shape == x.shape
    assert _peak_hz(y) == pytest.approx(1000 * factor, rel=0.01)
    # The burst lasts 1/factor as long.
    loud = np.flatnonzero(np.abs(y) > 0.25)
    assert (loud[-1] - loud[0]) / SAMPLE_RATE == pytest.approx(0.5 / factor, abs=0.01)


@pytest.mark.parametrize("semitones", [-3.0, -1.0, 2.0, 3.0])
def test_pitch_shift_scales_frequency_at_constant_duration(semitones):
    x = tone(500, start=0.25, stop=0.75)
    y = pitch_shift(x, semitones)
    assert y.shape == x.shape
    assert _peak_hz(y) == pytest.approx(500 * 2 ** (semitones / 12), rel=0.015)
    envelope = np.convolve(np.abs(y), np.ones(160) / 160, mode="same")
    loud = np.flatnonzero(envelope > 0.5 * envelope.max())
    assert (loud[-1] - loud[0]) / SAMPLE_RATE == pytest.approx(0.5, abs=0.04)


def test_reverb_adds_a_decaying_tail_after_the_sound_stops():
    rng = np.random.default_rng(0)
    x = np.zeros(SAMPLE_RATE, np.float32)
    x[1600:4800] = 0.3 * rng.standard_normal(3200)  # noise burst 0.1-0.3 s
    rt60 = 0.5
    y = reverberate(x, room_impulse_response(rt60, rng), wet=1.0)
    burst = _power(y[1600:4800])
    early, late = _power(y[5600:7200]), _power(y[8800:10400])  # 0.35-0.45 s, 0.55-0.65 s
    assert _power(x[5600:]) == 0.0
    assert _db(early / burst) > -30  # sound goes on after the source stopped
    decay = _db(early / late)  # 0.2 s apart: 60 dB per rt60 predicts 24 dB
    assert 16 < decay < 32
    longer = reverberate(x, room_impulse_response(0.8, np.random.default_rng(0)), wet=1.0)
    assert _power(longer[8800:10400]) > 3 * _power(y[8800:10400])
    assert _power(y) == pytest.approx(_power(x), rel=1e-3)  # level is kept


@FAST
@given(snr=st.floats(-5.0, 40.0), seed=st.integers(0, 1000), coloured=st.booleans())
def test_noise_is_mixed_at_the_drawn_snr(snr, seed, coloured):
    x = tone(440, start=0.2, stop=0.8)
    cfg = replace(OFF, noise_prob=1.0, snr_db_range=(snr, snr), coloured_noise_prob=1.0 if coloured else 0.0)
    y = random_noise(x, np.random.default_rng(seed), cfg, NOISES)
    measured = _db(_power(x) / _power(y - x))
    assert measured == pytest.approx(snr, abs=1.0)


def test_mix_at_snr_checks_lengths_and_leaves_silence_alone():
    with pytest.raises(SpeechRNNError, match="expected noise of 10 samples, got 5"):
        mix_at_snr(np.ones(10, np.float32), np.ones(5, np.float32), 10.0)
    zeros = np.zeros(100, np.float32)
    np.testing.assert_array_equal(mix_at_snr(zeros, np.ones(100, np.float32), 0.0), zeros)


@FAST
@given(cutoff=st.floats(2500.0, 5000.0), seed=st.integers(0, 1000))
def test_the_low_pass_removes_energy_above_the_cutoff(cutoff, seed):
    x = (0.1 * np.random.default_rng(seed).standard_normal(SAMPLE_RATE)).astype(np.float32)
    y = equalise(x, lowpass_hz=cutoff)
    assert _db(_band_power(y, 1.5 * cutoff, 8001) / _band_power(x, 1.5 * cutoff, 8001)) < -30
    assert _db(_band_power(y, 100, 0.7 * cutoff) / _band_power(x, 100, 0.7 * cutoff)) == pytest.approx(
        0, abs=0.5
    )


def test_highpass_telephone_and_peaking_eq_shape_the_spectrum():
    x = (0.1 * np.random.default_rng(1).standard_normal(SAMPLE_RATE)).astype(np.float32)
    high = equalise(x, highpass_hz=400.0)
    assert _db(_band_power(high, 20, 200) / _band_power(x, 20, 200)) < -20
    assert _db(_band_power(high, 1000, 4000) / _band_power(x, 1000, 4000)) == pytest.approx(0, abs=0.5)
    peak = equalise(x, peaks=[(1000.0, 6.0, 0.2)])
    assert _db(_band_power(peak, 970, 1030) / _band_power(x, 970, 1030)) == pytest.approx(6.0, abs=0.5)
    assert _db(_band_power(peak, 4000, 6000) / _band_power(x, 4000, 6000)) == pytest.approx(0, abs=0.2)
    phone = random_channel(x, np.random.default_rng(0), replace(OFF, telephone_prob=1.0))
    inside = _band_power(phone, 500, 3000) / _band_power(x, 500, 3000)
    assert _db(_band_power(phone, 5000, 8001) / _band_power(x, 5000, 8001)) < -30
    assert _db(_band_power(phone, 20, 120) / _band_power(x, 20, 120)) < -25
    assert _db(inside) == pytest.approx(0, abs=0.5)


def test_gain_and_clipping_keep_peaks_at_most_full_scale():
    x = tone(300, amp=0.9)
    loud = random_gain(x, np.random.default_rng(0), replace(OFF, gain_db_range=(20.0, 20.0)))
    assert np.max(np.abs(loud)) == pytest.approx(1.0, rel=1e-6)
    clipped = random_gain(
        x, np.random.default_rng(0), replace(OFF, clip_prob=1.0, clip_level_range=(0.5, 0.5))
    )
    assert np.max(np.abs(clipped)) == pytest.approx(0.45, rel=1e-5)
    assert np.mean(np.abs(clipped) >= 0.45 - 1e-6) > 0.3  # flat tops


def test_coloured_noise_slope_and_fast_lengths():
    rng = np.random.default_rng(0)
    white, brown = coloured_noise(SAMPLE_RATE, 0.0, rng), coloured_noise(SAMPLE_RATE, 2.0, rng)
    assert _power(white) == pytest.approx(1.0, rel=1e-3)
    ratio_white = _band_power(white, 50, 500) / _band_power(white, 4000, 4450)
    ratio_brown = _band_power(brown, 50, 500) / _band_power(brown, 4000, 4450)
    assert ratio_white == pytest.approx(1.0, rel=0.3)
    assert ratio_brown > 100
    for n in (1, 16_000, 16_001, 17_389, 28_799):
        m = fast_length(n)
        assert m >= n and m - n < n * 0.02 + 2
        for p in (2, 3, 5, 7, 11, 13):
            while m % p == 0:
                m //= p
        assert m == 1


def test_noises_are_loaded_once(tmp_path):
    from speechrnn.audio import save_audio

    path = tmp_path / "n.wav"
    save_audio(path, NOISES[0])
    first = load_noises([path])
    assert load_noises([str(path)]) is first
    assert first[0].shape == NOISES[0].shape


def test_babble_is_made_of_the_given_speech_once(tmp_path):
    from speechrnn.audio import save_audio

    rng = np.random.default_rng(0)
    paths = []
    for i in range(4):  # "talkers": bursts of tone at different pitches
        t = np.arange(SAMPLE_RATE) / SAMPLE_RATE
        paths.append(tmp_path / f"s{i}.wav")
        save_audio(paths[-1], (0.3 * np.sin(2 * np.pi * (150 + 60 * i) * t) * (rng.random(1)[0] + 0.5)))
    made = speech_babble(paths, 3)
    assert len(made) == 3 and speech_babble([str(p) for p in paths], 3) is made  # made once
    for b in made:
        assert b.size == int(BABBLE_SECONDS * SAMPLE_RATE) and np.isfinite(b).all()
        spectrum = np.abs(np.fft.rfft(b[: 10 * SAMPLE_RATE]))
        tones = spectrum[[150 * 10, 210 * 10, 270 * 10, 330 * 10]]  # 0.1 Hz bins
        assert (tones > 20 * np.median(spectrum)).all()  # every talker is in the crowd
    assert speech_babble(paths, 0) == () and speech_babble([], 2) == ()
    files = load_noises([paths[0]])
    assert noise_recordings([paths[0]], paths, None) == files  # not augmenting: the files alone
    assert noise_recordings([paths[0]], paths, AugmentConfig(babble_recordings=3)) == files + made


def test_config_rejects_bad_values():
    with pytest.raises(SpeechRNNError, match="noise_prob.*probability in \\[0, 1\\], got 1.5"):
        AugmentConfig(noise_prob=1.5)
    with pytest.raises(SpeechRNNError, match="speed_range.*got \\(1.2, 0.9\\)"):
        AugmentConfig(speed_range=(1.2, 0.9))
    with pytest.raises(SpeechRNNError, match="babble_recordings: expected >= 0, got -1"):
        AugmentConfig(babble_recordings=-1)
