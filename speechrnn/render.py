"""Synthesiser output -> a finished corpus clip: the speaker's warp, trimmed to the speech, levelled, placed
in the clip over a faint noise floor, with the time of each word measured on the file as written.

Word clips last 1 s with the word placed as Speech Commands places it; a phrase's words are spoken apart
with short gaps, each measured between the middles of the gaps around it; a sentence is kept whole.
"""

from __future__ import annotations

import functools

import numpy as np
import torch
import torchaudio

from .audio import SAMPLE_RATE
from .corpus import CLIP_SAMPLES, PHRASE, SENTENCE, UTTERANCE, Clip
from .errors import SpeechRNNError
from .voices import Voice

MAX_WORD_S = 0.94  # longer words are time-compressed to fit the clip with a little room


@functools.lru_cache(maxsize=512)
def _resampler(orig: int, new: int) -> torchaudio.transforms.Resample:
    return torchaudio.transforms.Resample(orig, new)


def _speed(audio: np.ndarray, rate: int, speed: float) -> np.ndarray:
    """Resample `audio` at `rate` so that, read at 16 kHz, it plays `speed` times faster.

    Pitch and formants shift with it (a shorter or longer vocal tract). The target rate is rounded to
    50 Hz to keep the resampling kernels small.
    """
    new = int(round(SAMPLE_RATE / speed / 50.0)) * 50
    if new == rate:
        return audio
    with torch.no_grad():
        return _resampler(rate, new)(torch.from_numpy(audio)).numpy()


PHRASE_GAP_S = (0.08, 0.3)  # silence between a phrase's words (seconds, drawn uniformly)
PHRASE_EDGE_S = (0.1, 0.4)  # silence before and after a phrase


def _frame_energy(audio: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Mean square of 10 ms frames every 5 ms: `(frame start samples, energies)`."""
    hop, win = SAMPLE_RATE // 200, SAMPLE_RATE // 100
    if len(audio) < win:
        return np.zeros(0, dtype=int), np.zeros(0)
    c = np.concatenate([[0.0], np.cumsum(audio.astype(np.float64) ** 2)])
    starts = np.arange(0, len(audio) - win + 1, hop)
    return starts, (c[starts + win] - c[starts]) / win


def speech_span(
    audio: np.ndarray, rel_db: float = -45.0, floor_db: float = -80.0, reference: float | None = None
) -> tuple[int, int]:
    """Where the speech is: first and last sample of the 10 ms frames (5 ms hop) above the energy threshold.

    The threshold is `rel_db` below the loudest frame (or below the frame energy `reference`, to measure
    a part of a longer clip as in the whole), and never below `floor_db` dBFS.
    Returns `(start, end)` sample indices (end exclusive); `(0, 0)` for silence.
    """
    win = SAMPLE_RATE // 100
    starts, energy = _frame_energy(audio)
    if energy.size == 0:
        return 0, 0
    peak = float(energy.max()) if reference is None else reference
    threshold = max(peak * 10 ** (rel_db / 10), 10 ** (floor_db / 10))
    loud = np.nonzero(energy > threshold)[0]
    if loud.size == 0:
        return 0, 0
    return int(starts[loud[0]]), int(starts[loud[-1]] + win)


def _fit(audio: np.ndarray, max_samples: int) -> np.ndarray:
    """Time-compress (pitch kept) audio longer than `max_samples`, then trim again."""
    if len(audio) <= max_samples:
        return audio
    import librosa

    out = _trim(librosa.effects.time_stretch(audio, rate=len(audio) / (max_samples * 0.95)), "")
    return out[:max_samples]


def _trim(x: np.ndarray, text: str) -> np.ndarray:
    """Cut silence to a 15 ms margin around the speech and fade in and out inside the margins, so that
    the measured speech span is untouched.

    Some voices (flite's awb and slt) hiss 45-50 dB under their peak before and after the word; the
    threshold then rises to 10 dB over that floor (never above 35 dB under the peak) so the hiss goes.
    """
    _, energy = _frame_energy(x)
    if energy.size == 0:
        raise SpeechRNNError(f"synthesiser produced no audible speech for {text!r}")
    peak_db = 10 * np.log10(float(energy.max()) + 1e-30)
    floor_db = 10 * np.log10(float(np.percentile(energy, 10)) + 1e-30)
    s, e = speech_span(x, rel_db=max(-45.0, min(floor_db + 10.0 - peak_db, -35.0)))
    if e - s < SAMPLE_RATE // 50:
        raise SpeechRNNError(f"synthesiser produced no audible speech for {text!r}")
    margin = int(0.015 * SAMPLE_RATE)
    x = x[max(0, s - margin) : e + margin].astype(np.float64)
    fade = min(margin, len(x) // 4)
    ramp = np.linspace(0.0, 1.0, fade, endpoint=False)
    x[:fade] *= ramp
    x[len(x) - fade :] *= ramp[::-1]
    return x


def trimmed(audio: np.ndarray, rate: int, speed: float, text: str) -> np.ndarray:
    """Synthesiser output -> 16 kHz at `speed` (float64), trimmed by `_trim`."""
    return _trim(_speed(audio, rate, speed), text)


def _as_pcm16(audio: np.ndarray) -> np.ndarray:
    """Exactly what the clip reads back as from a PCM_16 file (libsndfile scales by 32768), so that word
    times are measured on the file itself."""
    return np.clip(np.round(audio * 32768.0), -32768, 32767) / 32768.0


def _word_times(word: str, clip: np.ndarray, lo: int, hi: int) -> dict:
    """Start and end (seconds) of the speech in `clip[lo:hi]`, by energy against the whole clip's peak."""
    _, energy = _frame_energy(clip)
    lo, hi = max(0, lo), min(len(clip), hi)
    s, e = speech_span(clip[lo:hi], reference=float(energy.max()))
    if e <= s:  # a word quieter than the threshold: fall back to where it was placed
        s, e = 0, hi - lo
    return {"word": word, "start": round((lo + s) / SAMPLE_RATE, 3), "end": round((lo + e) / SAMPLE_RATE, 3)}


def _level(x: np.ndarray, peak_db: float) -> np.ndarray:
    return x * (10 ** (peak_db / 20) / (np.abs(x).max() + 1e-12))


def _noise_floor(n: int, rng: np.random.Generator, peak_db: float) -> np.ndarray:
    """A faint white floor, 62-78 dB below the speech peak (a real microphone is never silent).

    It stays well under `speech_span`'s threshold so the measured word times do not move.
    """
    return rng.standard_normal(n) * 10 ** ((peak_db - rng.uniform(62.0, 78.0)) / 20)


def render(clip: Clip, voice: Voice, audio: list[tuple[np.ndarray, int]], rng: np.random.Generator):
    """Turn synthesiser output into the final clip.

    Args:
        clip: the planned clip.
        voice: its speaker.
        audio: the synthesiser output: one utterance, or one per word for a phrase.
        rng: the clip's own generator.

    Returns:
        `(samples, words)`: float64 audio at 16 kHz and `[{"word", "start", "end"}]` (seconds; empty for
        sentences and utterances, whose word boundaries energy cannot tell).
    """
    speed = voice.warp * rng.uniform(0.96, 1.04)
    peak_db = rng.uniform(-30.0, -6.0)
    if clip.label == PHRASE:
        parts = [
            _level(trimmed(a, r, speed * rng.uniform(0.97, 1.03), w), peak_db + rng.uniform(-3.0, 1.0))
            for (a, r), w in zip(audio, clip.text.split(), strict=True)
        ]
        gaps = [int(rng.uniform(*PHRASE_GAP_S) * SAMPLE_RATE) for _ in parts[1:]]
        lead, trail = (int(rng.uniform(*PHRASE_EDGE_S) * SAMPLE_RATE) for _ in range(2))
        room = int(4.0 * SAMPLE_RATE) - lead - trail - sum(gaps)
        speech = sum(len(p) for p in parts)
        if speech > room:
            parts = [_fit(p, int(len(p) * room / speech)) for p in parts]
        body = sum(len(p) for p in parts) + sum(gaps)
        extra = max(0, int(1.5 * SAMPLE_RATE) - body - lead - trail)
        lead += extra // 2
        trail += extra - extra // 2
        out = np.zeros(lead + body + trail)
        places, pos = [], lead
        for i, p in enumerate(parts):
            out[pos : pos + len(p)] += p
            places.append((pos, pos + len(p)))
            pos += len(p) + (gaps[i] if i < len(gaps) else 0)
        out = _as_pcm16(out + _noise_floor(len(out), rng, peak_db))
        # Each word is measured between the middles of the gaps around it.
        bounds = [0] + [(places[i][1] + places[i + 1][0]) // 2 for i in range(len(places) - 1)] + [len(out)]
        words = [_word_times(w, out, bounds[i], bounds[i + 1]) for i, w in enumerate(clip.text.split())]
        return out, words
    ((a, r),) = audio
    x = _level(trimmed(a, r, speed, clip.text), peak_db)
    if clip.label == UTTERANCE:  # said as one: its word times come from `utterances.Aligner`
        lead, trail = (int(rng.uniform(0.15, 0.5) * SAMPLE_RATE) for _ in range(2))
        out = np.zeros(lead + len(x) + trail)
        out[lead : lead + len(x)] = x
        return _as_pcm16(out + _noise_floor(len(out), rng, peak_db)), []
    if clip.label == SENTENCE:
        lead, trail = (int(rng.uniform(0.1, 0.4) * SAMPLE_RATE) for _ in range(2))
        x = _level(_fit(x, 5 * SAMPLE_RATE - lead - trail), peak_db)
        extra = max(0, 2 * SAMPLE_RATE - len(x) - lead - trail)
        out = np.zeros(len(x) + lead + trail + extra)
        start = lead + extra // 2
        out[start : start + len(x)] = x
        return out + _noise_floor(len(out), rng, peak_db), []
    x = _level(_fit(x, int(MAX_WORD_S * SAMPLE_RATE)), peak_db)
    room = CLIP_SAMPLES - len(x)
    if rng.random() < 0.6:  # most Speech Commands words sit near the middle
        offset = int(np.clip(room / 2 + rng.normal(0.0, 0.2) * room / 2, 0, room))
    else:
        offset = int(rng.integers(0, room + 1))
    out = np.zeros(CLIP_SAMPLES)
    out[offset : offset + len(x)] = x
    out = _as_pcm16(out + _noise_floor(CLIP_SAMPLES, rng, peak_db))
    return out, [_word_times(clip.text, out, 0, CLIP_SAMPLES)]
