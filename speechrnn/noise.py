"""Background noises for the `_background_noise_` folder, generated rather than recorded.

Each generator takes a length in samples and a numpy Generator and returns float32 audio at SAMPLE_RATE,
normalised to the same RMS level, so that whoever mixes them sets the signal-to-noise ratio.
"""

from __future__ import annotations

import numpy as np

from .audio import SAMPLE_RATE

NOISE_RMS_DB = -20.0  # RMS level of every generated noise, in dBFS


def _normalise(x: np.ndarray) -> np.ndarray:
    x = x - x.mean()
    rms = float(np.sqrt(np.mean(x**2))) or 1.0
    out = x * (10 ** (NOISE_RMS_DB / 20) / rms)
    return np.clip(out, -1.0, 1.0).astype(np.float32)


def _shaped(n: int, rng: np.random.Generator, exponent: float) -> np.ndarray:
    """Gaussian noise whose power falls as 1/f**exponent (0 white, 1 pink, 2 brown), 20 Hz high-passed."""
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    gain = np.where(f >= 20.0, 1.0 / np.maximum(f, 20.0) ** (exponent / 2), 0.0)
    return np.fft.irfft(spectrum * gain, n)


def white(n: int, rng: np.random.Generator) -> np.ndarray:
    """Flat-spectrum Gaussian noise."""
    return _normalise(rng.standard_normal(n))


def pink(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f noise: equal power per octave, like rain or a distant crowd."""
    return _normalise(_shaped(n, rng, 1.0))


def brown(n: int, rng: np.random.Generator) -> np.ndarray:
    """1/f^2 noise: a low rumble, like traffic through a wall."""
    return _normalise(_shaped(n, rng, 2.0))


def hum(n: int, rng: np.random.Generator, mains: float = 50.0) -> np.ndarray:
    """Mains hum: the mains frequency and its harmonics with a slow drift, over a little white noise."""
    t = np.arange(n) / SAMPLE_RATE
    drift = 0.2 * np.sin(2 * np.pi * 0.05 * t + rng.uniform(0, 2 * np.pi))  # Hz of slow frequency wander
    phase = 2 * np.pi * np.cumsum(mains + drift) / SAMPLE_RATE
    x = np.zeros(n)
    for k in range(1, 12):
        amp = (1.0 / k) * rng.uniform(0.4, 1.0) * (1.6 if k % 2 else 0.7)  # odd harmonics dominate
        x += amp * np.sin(k * phase + rng.uniform(0, 2 * np.pi))
    x += 0.02 * rng.standard_normal(n)
    return _normalise(x)


def fan(n: int, rng: np.random.Generator) -> np.ndarray:
    """A fan or air conditioner: low-passed noise modulated at the blade rate, plus a motor tone."""
    t = np.arange(n) / SAMPLE_RATE
    spectrum = np.fft.rfft(rng.standard_normal(n))
    f = np.fft.rfftfreq(n, 1 / SAMPLE_RATE)
    corner = rng.uniform(400.0, 900.0)
    body = np.fft.irfft(spectrum / (1 + (f / corner) ** 2) * (f >= 30.0), n)
    blade = rng.uniform(18.0, 35.0)  # Hz
    body *= 1 + 0.25 * np.sin(2 * np.pi * blade * t)
    motor = rng.uniform(90.0, 160.0)
    tone = 0.05 * np.sin(2 * np.pi * motor * t) + 0.02 * np.sin(4 * np.pi * motor * t)
    return _normalise(body / (np.sqrt(np.mean(body**2)) + 1e-12) + tone / 0.05 * 0.15)


def babble(n: int, rng: np.random.Generator, utterances: list[np.ndarray], talkers: int = 6) -> np.ndarray:
    """Crowd babble: `talkers` streams of utterances (16 kHz float arrays) with short gaps, summed.

    Args:
        n: length in samples.
        rng: random generator for the order, gaps and levels.
        utterances: speech to draw from; each stream cycles through them in its own random order.
        talkers: simultaneous voices.

    Returns:
        `(n,)` float32 babble at NOISE_RMS_DB.
    """
    if not utterances:
        return pink(n, rng)
    x = np.zeros(n)
    for _ in range(talkers):
        stream = np.zeros(n)
        pos = int(rng.integers(0, SAMPLE_RATE))
        while pos < n:
            u = utterances[int(rng.integers(len(utterances)))]
            u = u / (np.sqrt(np.mean(u**2)) + 1e-9)
            take = min(len(u), n - pos)
            stream[pos : pos + take] += u[:take]
            pos += take + int(rng.uniform(0.1, 0.6) * SAMPLE_RATE)
        x += stream * rng.uniform(0.5, 1.0)
    room = _shaped(n, rng, 1.0)
    x += 0.05 * np.std(x) * room / (np.std(room) + 1e-9)
    return _normalise(x)


# name -> generator(n, rng) for the noises that need nothing but a generator
PLAIN_NOISES = {
    "white_noise": white,
    "pink_noise": pink,
    "brown_noise": brown,
    "hum_50hz": lambda n, rng: hum(n, rng, 50.0),
    "hum_60hz": lambda n, rng: hum(n, rng, 60.0),
    "fan": fan,
}
