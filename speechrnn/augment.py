"""Training augmentation: make clean (often synthetic) speech sound like many rooms, microphones and people.

Waveform transforms run per item inside Dataset workers. Each `random_*` transform is a pure function
`(audio, rng, config) -> audio` on a float32 `(samples,)` array: it keeps the length, never returns NaN, and
gives the same output for the same generator state. Their deterministic cores (`time_shift`, `change_speed`,
`pitch_shift`, `reverberate`, `mix_at_snr`, `equalise`, ...) take explicit parameters and are what the tests
measure. `augment` chains them in the order sound travels: the talker (speed, pitch, timing), the room
(reverberation, background noise), then the microphone and channel (band limits, EQ, gain, clipping).

Filtering is done in the FFT domain with one transform pair per effect, at FFT sizes whose prime factors are
all small: with the default config a 1 s clip costs about 1.5 ms of CPU on average (the pitch shift, the
dearest effect, about 1.2 ms when drawn).

The augmentation of batched features (SpecAugment, vocal-tract warping) is `feature_augment`.
"""

from __future__ import annotations

import math
import os
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from numpy.lib.stride_tricks import sliding_window_view

from . import noise as noise_gen
from .audio import SAMPLE_RATE, load_audio
from .errors import SpeechRNNError

NYQUIST = SAMPLE_RATE / 2
TELEPHONE_BAND = (300.0, 3400.0)  # Hz; the classic narrow-band telephone channel
_LOWPASS_ORDER = 10  # Butterworth-like magnitude: steep, like a codec's or ADC's anti-alias filter
_HIGHPASS_ORDER = 4  # gentler, like a microphone's low-frequency roll-off
_FILTER_PAD = 4096  # zero padding that keeps the zero-phase filters' ringing from wrapping around
_ACTIVITY_FRAME = SAMPLE_RATE // 100  # 10 ms frames for finding where the sound is
_ACTIVITY_DB = -30.0  # frames this far below the loudest one count as quiet
_PV_FFT = 512  # phase-vocoder window (32 ms)
_PV_HOP = _PV_FFT // 4  # 75 % overlap: periodic Hann squared then sums to 1.5
_PV_WINDOW = (0.5 - 0.5 * np.cos(2 * np.pi * np.arange(_PV_FFT) / _PV_FFT)).astype(np.float32)
_EPS = 1e-12


def _check_range(name: str, pair: tuple[float, float], lo: float, hi: float) -> None:
    a, b = pair
    if not (lo <= a <= b <= hi):
        raise SpeechRNNError(f"AugmentConfig.{name}: expected lo <= hi within [{lo}, {hi}], got {pair}")


@dataclass(frozen=True)
class AugmentConfig:
    """Probabilities and ranges of the waveform augmentation. A probability of 0 switches an effect off."""

    shift_prob: float = 0.8  # chance of a random time shift
    shift_ms: float = 100.0  # largest shift either way (reduced so that no sound leaves the clip)
    speed_prob: float = 0.5  # chance of speed perturbation (tempo and pitch change together)
    speed_range: tuple[float, float] = (0.85, 1.15)  # speed factors; above 1 is faster
    pitch_prob: float = 0.3  # chance of a pitch shift at constant tempo
    pitch_semitones: float = 3.0  # largest pitch shift either way
    reverb_prob: float = 0.4  # chance of room reverberation
    rt60_range: tuple[float, float] = (0.1, 0.8)  # reverberation time (60 dB decay), seconds
    wet_range: tuple[float, float] = (0.2, 1.0)  # level of the reverberant tail relative to the direct sound
    noise_prob: float = 0.8  # chance of mixing in background noise
    snr_db_range: tuple[float, float] = (0.0, 30.0)  # SNR of the mix, dB (whole-clip powers)
    coloured_noise_prob: float = 0.3  # chance the noise is generated 1/f^a noise instead of a corpus file
    # Babbles of the split's own sentences (3 to 8 talkers) beside the corpus's noise files, whose one babble
    # is six talkers: babble of unheard people loses the most words live (docs/training-streams.md).
    babble_recordings: int = 6
    lowpass_prob: float = 0.3  # chance of a band limit at the top (cheap microphones, codecs)
    lowpass_hz: tuple[float, float] = (3000.0, 8000.0)  # its cut-off frequency
    highpass_prob: float = 0.3  # chance of a low-frequency roll-off
    highpass_hz: tuple[float, float] = (50.0, 400.0)  # its cut-off frequency
    eq_prob: float = 0.5  # chance of random peaking EQ (microphone and room colouring)
    eq_bands: int = 2  # peaking bands when EQ is applied
    eq_gain_db: float = 8.0  # largest boost or cut of one band
    eq_width_octaves: tuple[float, float] = (0.3, 1.5)  # bandwidth (Gaussian sigma in octaves) of a band
    telephone_prob: float = 0.05  # chance of the 300-3400 Hz telephone band (on top of other filters)
    gain_db_range: tuple[float, float] = (-12.0, 6.0)  # random level change (peaks above 1 are scaled down)
    clip_prob: float = 0.05  # chance of hard clipping, as from an overdriven input
    clip_level_range: tuple[float, float] = (0.5, 0.9)  # clipping threshold as a fraction of the peak

    def __post_init__(self) -> None:
        for name in (
            "shift_prob", "speed_prob", "pitch_prob", "reverb_prob", "noise_prob", "coloured_noise_prob",
            "lowpass_prob", "highpass_prob", "eq_prob", "telephone_prob", "clip_prob",
        ):  # fmt: skip
            p = getattr(self, name)
            if not 0.0 <= p <= 1.0:
                raise SpeechRNNError(f"AugmentConfig.{name}: expected a probability in [0, 1], got {p}")
        _check_range("speed_range", self.speed_range, 0.5, 2.0)
        _check_range("rt60_range", self.rt60_range, 0.0, 3.0)
        _check_range("wet_range", self.wet_range, 0.0, 10.0)
        _check_range("snr_db_range", self.snr_db_range, -30.0, 100.0)
        _check_range("lowpass_hz", self.lowpass_hz, 100.0, NYQUIST)
        _check_range("highpass_hz", self.highpass_hz, 0.0, NYQUIST)
        _check_range("eq_width_octaves", self.eq_width_octaves, 0.01, 10.0)
        _check_range("gain_db_range", self.gain_db_range, -60.0, 40.0)
        _check_range("clip_level_range", self.clip_level_range, 0.01, 1.0)
        if self.babble_recordings < 0:
            raise SpeechRNNError(
                f"AugmentConfig.babble_recordings: expected >= 0, got {self.babble_recordings}"
            )
        if self.shift_ms < 0 or self.pitch_semitones < 0 or self.eq_gain_db < 0 or self.eq_bands < 0:
            raise SpeechRNNError(
                "AugmentConfig: expected shift_ms, pitch_semitones, eq_gain_db and eq_bands >= 0, got "
                f"{self.shift_ms}, {self.pitch_semitones}, {self.eq_gain_db}, {self.eq_bands}"
            )


# ---------------------------------------------------------------------------------------------- helpers


def _f32(x: np.ndarray) -> np.ndarray:
    return np.ascontiguousarray(x, dtype=np.float32)


def fast_length(n: int) -> int:
    """Smallest length >= n with prime factors all <= 13 (pocketfft is fast there, slow on large primes)."""
    m = max(1, int(n))
    while True:
        k = m
        for p in (2, 3, 5, 7, 11, 13):
            while k % p == 0:
                k //= p
        if k == 1:
            return m
        m += 1


def _fit_length(x: np.ndarray, n: int) -> np.ndarray:
    """Pad evenly, or cut the n-sample window holding the most energy (nearest the centre among equals)."""
    m = x.size
    if m == n:
        return x
    if m < n:
        left = (n - m) // 2
        return np.pad(x, (left, n - m - left))
    energy = np.concatenate([[0.0], np.cumsum(x.astype(np.float64) ** 2)])
    window = energy[n:] - energy[: m - n + 1]
    best = np.flatnonzero(window >= window.max() - 1e-9 * (energy[-1] + _EPS))
    start = best[np.argmin(np.abs(best - (m - n) / 2))]
    return x[start : start + n]


def _resample(x: np.ndarray, ratio: float) -> np.ndarray:
    """Band-limited resampling by about `ratio` (output/input length), via one rfft/irfft pair.

    Lengths are rounded to fast FFT sizes, so the achieved ratio is within a fraction of a percent of the
    requested one; the input is zero-padded to its fast size first, which also keeps the wrap-around quiet.
    """
    n_in = fast_length(x.size)
    n_out = fast_length(max(2, round(n_in * ratio)))
    spec = np.fft.rfft(x, n_in)
    keep = min(spec.size, n_out // 2 + 1)
    out_spec = np.zeros(n_out // 2 + 1, dtype=spec.dtype)
    out_spec[:keep] = spec[:keep]
    y = np.fft.irfft(out_spec, n_out) * np.float32(n_out / n_in)
    return y[: round(x.size * n_out / n_in)]


def activity_bounds(audio: np.ndarray) -> tuple[int, int]:
    """(first, end) sample of the span holding sound: 10 ms frames within 30 dB of the loudest frame.

    Returns `(0, 0)` for a clip without energy.
    """
    n = audio.size // _ACTIVITY_FRAME * _ACTIVITY_FRAME
    if n == 0:
        return (0, 0) if not np.any(audio) else (0, audio.size)
    power = np.square(audio[:n].astype(np.float64)).reshape(-1, _ACTIVITY_FRAME).mean(axis=1)
    if audio.size > n:
        power = np.append(power, np.mean(np.square(audio[n:].astype(np.float64))))
    top = power.max()
    if top <= _EPS**2:
        return (0, 0)
    loud = np.flatnonzero(power >= top * 10 ** (_ACTIVITY_DB / 10))
    return int(loud[0]) * _ACTIVITY_FRAME, min(audio.size, (int(loud[-1]) + 1) * _ACTIVITY_FRAME)


def _limit_peak(x: np.ndarray, peak: float = 1.0) -> np.ndarray:
    top = float(np.max(np.abs(x))) if x.size else 0.0
    return x * np.float32(peak / top) if top > peak else x


# --------------------------------------------------------------------------------------- time shifting


def time_shift(audio: np.ndarray, samples: int) -> np.ndarray:
    """Delay (samples > 0) or advance (< 0) the signal, zero-filling; the length is kept."""
    out = np.zeros_like(audio)
    s = int(samples)
    if abs(s) >= audio.size:
        return out
    if s >= 0:
        out[s:] = audio[: audio.size - s]
    else:
        out[:s] = audio[-s:]
    return out


def draw_time_shift(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> int:
    """The shift `random_time_shift` applies: uniform in ±`shift_ms`, limited to the quiet margins."""
    if rng.random() >= config.shift_prob:
        return 0
    most = int(round(config.shift_ms * SAMPLE_RATE / 1000))
    s = int(rng.integers(-most, most + 1))
    first, end = activity_bounds(audio)
    if end == 0:
        return 0
    return int(np.clip(s, -first, audio.size - end))


def random_time_shift(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Move the sound earlier or later by up to `shift_ms`, never pushing it out of the clip."""
    return time_shift(audio, draw_time_shift(audio, rng, config))


# ------------------------------------------------------------------------------------ speed and pitch


def speed_up(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch): the result is about `audio.size / factor` samples long."""
    if audio.size < 2 or factor == 1.0:
        return _f32(audio).copy()
    return _f32(_resample(audio, 1.0 / factor))


def change_speed(audio: np.ndarray, factor: float) -> np.ndarray:
    """Play `factor` times faster (tempo and pitch); pad, or cut keeping the loudest part, to the length."""
    if audio.size < 2 or factor == 1.0:
        return audio.copy()
    return _f32(_fit_length(speed_up(audio, factor), audio.size))


def random_speed(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Speed perturbation with a factor uniform in `speed_range`."""
    if rng.random() >= config.speed_prob:
        return audio
    return change_speed(audio, float(rng.uniform(*config.speed_range)))


def _stft(x: np.ndarray) -> np.ndarray:
    padded = np.pad(x, (_PV_FFT, _PV_FFT))
    frames = sliding_window_view(padded, _PV_FFT)[::_PV_HOP] * _PV_WINDOW
    return np.fft.rfft(frames, axis=1)  # (frames, bins)


def _istft(spec: np.ndarray, length: int) -> np.ndarray:
    frames = np.fft.irfft(spec, _PV_FFT, axis=1) * _PV_WINDOW
    overlap = _PV_FFT // _PV_HOP
    blocks = frames.reshape(frames.shape[0], overlap, _PV_HOP)
    out = np.zeros((frames.shape[0] + overlap - 1, _PV_HOP), dtype=np.float32)
    for j in range(overlap):
        out[j : j + frames.shape[0]] += blocks[:, j]
    out = out.ravel()[_PV_FFT : _PV_FFT + length] / np.float32(1.5)
    return np.pad(out, (0, length - out.size))


def time_stretch(audio: np.ndarray, factor: float) -> np.ndarray:
    """Phase-vocoder time stretch: `factor` times longer at the same pitch."""
    spec = _stft(audio)
    frames = spec.shape[0]
    if frames < 3:
        return _fit_length(audio, round(audio.size * factor))
    pos = np.arange(0.0, frames - 1, 1.0 / factor)
    i0 = np.minimum(pos.astype(np.int64), frames - 2)
    frac = (pos - i0)[:, None].astype(np.float32)
    mag = np.abs(spec)
    magnitude = (1 - frac) * mag[i0] + frac * mag[i0 + 1]
    angle = np.angle(spec)
    expected = (2 * np.pi * _PV_HOP / _PV_FFT) * np.arange(spec.shape[1], dtype=np.float32)
    delta = angle[i0 + 1] - angle[i0] - expected
    delta = delta - 2 * np.pi * np.round(delta / (2 * np.pi)) + expected  # instantaneous phase advance
    phase = angle[0] + np.concatenate(
        [np.zeros((1, spec.shape[1]), np.float32), np.cumsum(delta[:-1], axis=0)]
    )
    out = np.empty(magnitude.shape, dtype=np.complex64)
    out.real = magnitude * np.cos(phase)  # cos/sin: several times faster than a complex exp
    out.imag = magnitude * np.sin(phase)
    return _istft(out, round(audio.size * factor))


def pitch_shift(audio: np.ndarray, semitones: float) -> np.ndarray:
    """Shift pitch (and formants) by `semitones` at constant tempo: stretch in time, then resample back."""
    if audio.size < _PV_FFT or semitones == 0:
        return audio.copy()
    ratio = 2.0 ** (semitones / 12)
    stretched = time_stretch(audio, ratio)
    return _f32(_fit_length(_resample(stretched, 1.0 / ratio), audio.size))


def random_pitch(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Pitch shift uniform within ±`pitch_semitones`."""
    if rng.random() >= config.pitch_prob:
        return audio
    return pitch_shift(audio, float(rng.uniform(-config.pitch_semitones, config.pitch_semitones)))


# ---------------------------------------------------------------------------------------------- reverb


def room_impulse_response(rt60: float, rng: np.random.Generator) -> np.ndarray:
    """A synthetic late reverberation tail: Gaussian noise under a 60 dB-per-`rt60` exponential decay.

    Starts after a short pre-delay (1-5 ms, the first reflections) and has unit energy; the direct sound
    is added by `reverberate`.
    """
    length = max(2, int(rt60 * SAMPLE_RATE))
    t = np.arange(length, dtype=np.float32) / SAMPLE_RATE
    tail = rng.standard_normal(length).astype(np.float32) * np.exp(-3 * math.log(10) * t / max(rt60, 1e-3))
    tail[: int(rng.uniform(0.001, 0.005) * SAMPLE_RATE)] = 0.0
    return _f32(tail / (np.sqrt(np.sum(np.square(tail, dtype=np.float64))) + _EPS))


def reverberate(audio: np.ndarray, rir: np.ndarray, wet: float) -> np.ndarray:
    """Direct sound plus `wet` times the signal convolved with `rir`, at the input's RMS; length kept."""
    n = audio.size
    if n == 0:
        return audio.copy()
    size = fast_length(n + rir.size - 1)
    tail = np.fft.irfft(np.fft.rfft(audio, size) * np.fft.rfft(rir, size), size)[:n]
    out = audio + np.float32(wet) * tail
    rms_in = np.sqrt(np.mean(np.square(audio, dtype=np.float64)))
    rms_out = np.sqrt(np.mean(np.square(out, dtype=np.float64)))
    return _f32(out * (rms_in / rms_out) if rms_out > _EPS else out)


def random_reverb(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """Room reverberation with RT60 and wet level uniform in their ranges."""
    if rng.random() >= config.reverb_prob:
        return audio
    rir = room_impulse_response(float(rng.uniform(*config.rt60_range)), rng)
    return reverberate(audio, rir, float(rng.uniform(*config.wet_range)))


# ----------------------------------------------------------------------------------------------- noise

_NOISE_CACHE: dict[tuple[str, ...], tuple[np.ndarray, ...]] = {}


def load_noises(paths: Sequence[str | os.PathLike]) -> tuple[np.ndarray, ...]:
    """Read background-noise files once per process (each DataLoader worker keeps its own cache)."""
    key = tuple(str(p) for p in paths)
    if key not in _NOISE_CACHE:
        _NOISE_CACHE[key] = tuple(load_audio(p) for p in key)
    return _NOISE_CACHE[key]


BABBLE_SECONDS = 120.0  # length of each babble recording made for training
_BABBLE_CACHE: dict[tuple, tuple[np.ndarray, ...]] = {}


def speech_babble(paths: Sequence[str | os.PathLike], count: int) -> tuple[np.ndarray, ...]:
    """`count` babble recordings of BABBLE_SECONDS made of the speech in `paths`, crowds of 3 to 8 talkers.

    Made once per process from a fixed seed (every DataLoader worker makes the same ones); none without
    speech.
    """
    key = (tuple(str(p) for p in paths), count)
    if key not in _BABBLE_CACHE:
        speech = [load_audio(p) for p in key[0]] if count else []
        rng = np.random.default_rng(0)
        talkers = np.linspace(3, 8, count).round().astype(int).tolist()
        n = int(BABBLE_SECONDS * SAMPLE_RATE)
        _BABBLE_CACHE[key] = tuple(noise_gen.babble(n, rng, speech, t) for t in talkers) if speech else ()
    return _BABBLE_CACHE[key]


def noise_recordings(
    background: Sequence[str | os.PathLike], speech: Sequence[str | os.PathLike], config: AugmentConfig | None
) -> tuple[np.ndarray, ...]:
    """What noise is cropped from: the corpus's noise files, and (when augmenting) babbles of `speech`."""
    files = load_noises(background) if background else ()
    return files + (speech_babble(speech, config.babble_recordings) if config is not None else ())


def coloured_noise(samples: int, exponent: float, rng: np.random.Generator) -> np.ndarray:
    """Noise with power spectrum ~ 1/f^exponent (0 white, 1 pink, 2 brown), unit RMS."""
    if samples <= 0:
        return np.zeros(0, dtype=np.float32)
    bins = samples // 2 + 1
    spec = (rng.standard_normal(bins) + 1j * rng.standard_normal(bins)).astype(np.complex64)
    f = np.maximum(np.arange(bins, dtype=np.float32), 1.0)
    noise = np.fft.irfft(spec * f ** np.float32(-exponent / 2), samples)
    return _f32(noise / (np.sqrt(np.mean(np.square(noise, dtype=np.float64))) + _EPS))


def noise_crop(noises: Sequence[np.ndarray], samples: int, rng: np.random.Generator) -> np.ndarray:
    """A random `samples`-long stretch of a random noise recording (looped when shorter)."""
    noise = noises[int(rng.integers(len(noises)))]
    if noise.size == 0:
        return np.zeros(samples, dtype=np.float32)
    if noise.size < samples:
        noise = np.tile(noise, -(-samples // noise.size) + 1)
    start = int(rng.integers(noise.size - samples + 1))
    return noise[start : start + samples]


def mix_at_snr(audio: np.ndarray, noise: np.ndarray, snr_db: float) -> np.ndarray:
    """`audio + g * noise` with g chosen so that power(audio) / power(g * noise) is `snr_db`.

    A silent signal or silent noise is returned unchanged (there is no level to set).
    """
    if noise.size != audio.size:
        raise SpeechRNNError(f"mix_at_snr: expected noise of {audio.size} samples, got {noise.size}")
    p_signal = float(np.mean(np.square(audio, dtype=np.float64))) if audio.size else 0.0
    p_noise = float(np.mean(np.square(noise, dtype=np.float64))) if noise.size else 0.0
    if p_signal <= _EPS**2 or p_noise <= _EPS**2:
        return audio.copy()
    gain = math.sqrt(p_signal / (p_noise * 10 ** (snr_db / 10)))
    return _f32(audio + np.float32(gain) * noise)


def random_noise(
    audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig, noises: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """Mix in a crop of `noises` (or generated coloured noise) at an SNR uniform in `snr_db_range`."""
    if rng.random() >= config.noise_prob:
        return audio
    if not noises or rng.random() < config.coloured_noise_prob:
        noise = coloured_noise(audio.size, float(rng.uniform(0.0, 2.0)), rng)
    else:
        noise = noise_crop(noises, audio.size, rng)
    return mix_at_snr(audio, noise, float(rng.uniform(*config.snr_db_range)))


# ----------------------------------------------------------------------------------- channel and gain


def equalise(
    audio: np.ndarray,
    lowpass_hz: float | None = None,
    highpass_hz: float | None = None,
    peaks: Sequence[tuple[float, float, float]] = (),
) -> np.ndarray:
    """Zero-phase filtering in the FFT domain: band limits and peaking bands in one transform pair.

    Args:
        audio: `(samples,)` float32.
        lowpass_hz: cut-off of a steep (10th-order Butterworth magnitude) low-pass, or None.
        highpass_hz: cut-off of a 4th-order high-pass, or None.
        peaks: `(centre_hz, gain_db, width_octaves)` Gaussian bumps on a log-frequency axis.

    Returns:
        The filtered audio, same length.
    """
    n = audio.size
    if n == 0 or (lowpass_hz is None and highpass_hz is None and not peaks):
        return audio.copy()
    size = fast_length(n + _FILTER_PAD)
    freqs = np.maximum(np.arange(size // 2 + 1, dtype=np.float64) * (SAMPLE_RATE / size), 1.0)
    db = np.zeros_like(freqs)
    for centre, gain_db, width in peaks:
        db += gain_db * np.exp(-0.5 * (np.log2(freqs / centre) / width) ** 2)
    gains = 10 ** (db / 20)
    if lowpass_hz is not None:
        gains /= np.sqrt(1 + (freqs / lowpass_hz) ** (2 * _LOWPASS_ORDER))
    if highpass_hz is not None and highpass_hz > 0:
        gains /= np.sqrt(1 + (highpass_hz / freqs) ** (2 * _HIGHPASS_ORDER))
        gains[0] = 0.0
    out = np.fft.irfft(np.fft.rfft(audio, size) * gains.astype(np.float32), size)[:n]
    return _f32(out)


def random_channel(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """A random microphone/transmission channel: low-pass, high-pass, peaking EQ, sometimes telephone band."""
    low = float(rng.uniform(*config.lowpass_hz)) if rng.random() < config.lowpass_prob else None
    high = float(rng.uniform(*config.highpass_hz)) if rng.random() < config.highpass_prob else None
    peaks = []
    if rng.random() < config.eq_prob:
        for _ in range(config.eq_bands):
            centre = float(np.exp(rng.uniform(math.log(150.0), math.log(6000.0))))
            gain = float(rng.uniform(-config.eq_gain_db, config.eq_gain_db))
            peaks.append((centre, gain, float(rng.uniform(*config.eq_width_octaves))))
    if rng.random() < config.telephone_prob:
        low = min(low or NYQUIST, TELEPHONE_BAND[1])
        high = max(high or 0.0, TELEPHONE_BAND[0])
    if low is not None and low >= NYQUIST:
        low = None
    return equalise(audio, low, high, peaks)


def random_gain(audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig) -> np.ndarray:
    """A random level change, sometimes hard clipping; peaks above full scale are scaled back to 1."""
    out = audio * np.float32(10 ** (rng.uniform(*config.gain_db_range) / 20))
    if rng.random() < config.clip_prob and out.size:
        level = float(np.max(np.abs(out))) * float(rng.uniform(*config.clip_level_range))
        out = np.clip(out, -level, level)
    return _f32(_limit_peak(out))


# ---------------------------------------------------------------------------------------------- chain


def augment(
    audio: np.ndarray, rng: np.random.Generator, config: AugmentConfig, noises: Sequence[np.ndarray] = ()
) -> np.ndarray:
    """The whole waveform chain: speed, pitch, shift, reverb, noise, channel, gain.

    Args:
        audio: `(samples,)` float audio at `SAMPLE_RATE`.
        rng: the item's generator; the same state gives the same output.
        config: probabilities and ranges.
        noises: background recordings to mix in (generated coloured noise is used when empty).

    Returns:
        `(samples,)` float32, finite, peak at most 1.
    """
    x = _f32(audio)
    x = random_speed(x, rng, config)
    x = random_pitch(x, rng, config)
    x = random_time_shift(x, rng, config)
    x = random_reverb(x, rng, config)
    x = random_noise(x, rng, config, noises)
    x = random_channel(x, rng, config)
    x = random_gain(x, rng, config)
    if not np.isfinite(x).all():  # cannot happen for finite input; guards the training loop all the same
        raise SpeechRNNError(f"augment: expected finite output, got NaN/inf from {audio.size} input samples")
    return x
