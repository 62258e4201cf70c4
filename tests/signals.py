"""Test signals shared by several test modules."""

from __future__ import annotations

import numpy as np


def chirp_audio(seconds: float, seed: int = 0, noise: float = 0.05) -> np.ndarray:
    """A rising tone gated on and off 1.5 times a second, over white noise: outputs change along the
    stream, and the gaps are pauses for the reset logic."""
    rng = np.random.default_rng(seed)
    n = int(seconds * 16000)
    t = np.arange(n) / 16000
    tone = 0.3 * np.sin(2 * np.pi * (200 + 300 * t) * t) * (np.sin(2 * np.pi * 1.5 * t) > 0)
    return (tone + noise * rng.standard_normal(n)).astype(np.float32)


def tone(freq: float, seconds: float = 1.0, start: float = 0.0, stop: float | None = None, amp: float = 0.5):
    """A sine at `freq` Hz, sounding from `start` to `stop` seconds of a `seconds`-long 16 kHz clip."""
    t = np.arange(int(seconds * 16000)) / 16000
    x = amp * np.sin(2 * np.pi * freq * t)
    stop = seconds if stop is None else stop
    return (x * ((t >= start) & (t < stop))).astype(np.float32)
