"""A tiny Speech Commands corpus made of tones, for tests (no synthesiser, no download).

Every "word" is a sequence of three harmonic chirps whose frequencies and sweep come from a hash of the
word, so different words are acoustically distinct and a tiny model can learn them; speakers differ in
pitch, timing and level. The layout is the full synthetic one: word folders, split lists holding out whole
speakers, `_background_noise_`, `_unknown_`, `_phrases_`, `_sentences_`, `_utterances_` (words said with no
pause between them) and `_meta_/clips.jsonl`.
"""

from __future__ import annotations

import json
import os
import zlib
from pathlib import Path

import numpy as np

from speechrnn.audio import SAMPLE_RATE, save_audio

COMMANDS = ("yes", "no", "up", "down", "left", "right", "on", "off", "stop", "go", "cat", "dog")
UNKNOWN_WORDS = ("apple", "water", "paper", "table", "window")  # for `_unknown_/`
SENTENCE_WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "lazy", "river", "today", "maybe")
WORD_SECONDS = 0.45  # duration of one spoken word
_SEGMENTS = 3  # chirps per word


def speaker_id(k: int) -> str:
    """Eight hex digits, like the real corpus's speaker hashes."""
    return f"{zlib.crc32(f'speaker-{k}'.encode()):08x}"


def word_audio(word: str, pitch: float = 1.0, seconds: float = WORD_SECONDS) -> np.ndarray:
    """The word's tone pattern: three harmonic chirps (frequencies 250-3000 Hz from a hash of the word)."""
    g = np.random.default_rng(zlib.crc32(word.encode()))
    grid = np.geomspace(250.0, 3000.0, 24)
    starts = grid[g.choice(grid.size, _SEGMENTS, replace=False)] * pitch
    sweeps = g.choice([0.7, 1.0, 1.4], _SEGMENTS)
    n = int(seconds * SAMPLE_RATE) // _SEGMENTS
    t = np.arange(n) / SAMPLE_RATE
    envelope = np.hanning(n)
    parts = []
    for f0, sweep in zip(starts, sweeps, strict=True):
        freq = f0 * sweep ** (t / t[-1])  # exponential chirp from f0 to f0 * sweep
        phase = 2 * np.pi * np.cumsum(freq) / SAMPLE_RATE
        parts.append(envelope * (np.sin(phase) + 0.4 * np.sin(2 * phase) + 0.2 * np.sin(3 * phase)))
    out = np.concatenate(parts)
    return (out / np.max(np.abs(out))).astype(np.float32)


def _speak(
    words: list[str],
    rng: np.random.Generator,
    pitch: float,
    min_seconds: float,
    gap_s: tuple[float, float] = (0.08, 0.2),
) -> tuple[np.ndarray, list]:
    """Words in a row with `gap_s` between them and margins; returns audio and [{word, start, end}]."""
    pieces, spans, t = [np.zeros(int(rng.uniform(0.1, 0.25) * SAMPLE_RATE))], [], 0.0
    t = pieces[0].size / SAMPLE_RATE
    for k, w in enumerate(words):
        if k:
            gap = np.zeros(int(rng.uniform(*gap_s) * SAMPLE_RATE))
            pieces.append(gap)
            t += gap.size / SAMPLE_RATE
        a = word_audio(w, pitch) * rng.uniform(0.3, 0.6)
        spans.append({"word": w, "start": round(t, 3), "end": round(t + a.size / SAMPLE_RATE, 3)})
        pieces.append(a)
        t += a.size / SAMPLE_RATE
    audio = np.concatenate(pieces)
    total = max(int(min_seconds * SAMPLE_RATE), audio.size + int(0.15 * SAMPLE_RATE))
    return np.pad(audio, (0, total - audio.size)).astype(np.float32), spans


def _noise_floor(audio: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    return (audio + 0.003 * rng.standard_normal(audio.size)).astype(np.float32)


def make_fake_corpus(
    root: str | os.PathLike,
    words: tuple[str, ...] = COMMANDS,
    speakers: int = 6,
    per_speaker: int = 2,
    phrases: bool = True,
    unknown: bool = True,
    sentences: bool = True,
    utterances: bool = True,
    meta: bool = True,
    seed: int = 0,
) -> Path:
    """Write a fake corpus under `root` and return `root`.

    The last speaker's clips are the test split and the one before it validation (so `speakers` >= 3);
    the rest are training. `_unknown_` clips with an even number get a transcript in clips.jsonl, odd ones
    get no record at all (the transcript-unknown case). Phrases and sentences are 1.5-4 s. Each speaker has
    two utterances said without pauses: command words inside sentence words, and sentence words alone.
    """
    if speakers < 3:
        raise ValueError(f"expected at least 3 speakers (train, validation, test), got {speakers}")
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(seed)
    records: list[dict] = []
    split_of: dict[str, str] = {}

    def write(rel: str, audio: np.ndarray, spk: str, k: int, record: dict | None) -> None:
        (root / rel).parent.mkdir(parents=True, exist_ok=True)
        save_audio(root / rel, audio)
        split_of[rel] = "test" if k == speakers - 1 else "validation" if k == speakers - 2 else "train"
        if record is not None and meta:
            records.append({"path": rel, "speaker": spk, "voice": f"tone-{k}", **record})

    for k in range(speakers):
        spk = speaker_id(k)
        pitch = 0.85 + 0.3 * k / max(1, speakers - 1)
        for w in words:
            for n in range(per_speaker):
                a = np.zeros(SAMPLE_RATE, dtype=np.float32)
                start = int(rng.uniform(0.12, 0.4) * SAMPLE_RATE)
                voice = word_audio(w, pitch) * rng.uniform(0.3, 0.7)
                a[start : start + voice.size] = voice
                span = {
                    "word": w,
                    "start": round(start / SAMPLE_RATE, 3),
                    "end": round((start + voice.size) / SAMPLE_RATE, 3),
                }
                write(
                    f"{w}/{spk}_nohash_{n}.wav",
                    _noise_floor(a, rng),
                    spk,
                    k,
                    {"label": w, "text": w, "words": [span]},
                )
        for n in range(per_speaker if unknown else 0):
            w = UNKNOWN_WORDS[(k + n) % len(UNKNOWN_WORDS)]
            audio, spans = _speak([w], rng, pitch, 1.0)
            record = {"label": "_unknown_", "text": w, "words": spans} if n % 2 == 0 else None
            write(f"_unknown_/{spk}_nohash_{n}.wav", _noise_floor(audio[:SAMPLE_RATE], rng), spk, k, record)
        for n in range(per_speaker if phrases else 0):
            said = [str(w) for w in rng.choice(words, int(rng.integers(2, 5)))]
            audio, spans = _speak(said, rng, pitch, 1.5)
            record = {"label": "_phrase_", "text": " ".join(said), "words": spans}
            write(f"_phrases_/{spk}_nohash_{n}.wav", _noise_floor(audio, rng), spk, k, record)
        for n in range(1 if sentences else 0):
            said = [str(w) for w in rng.choice(SENTENCE_WORDS, int(rng.integers(3, 6)), replace=False)]
            audio, spans = _speak(said, rng, pitch, 1.5)
            record = {"label": "_sentence_", "text": " ".join(said), "words": spans}
            write(f"_sentences_/{spk}_nohash_{n}.wav", _noise_floor(audio, rng), spk, k, record)
        for n in range(2 if utterances else 0):
            said = [str(w) for w in rng.choice(SENTENCE_WORDS, int(rng.integers(2, 4)), replace=False)]
            if n == 0:
                said[1:1] = [str(w) for w in rng.choice(words, 2)]
            audio, spans = _speak(said, rng, pitch, 1.5, gap_s=(0.0, 0.01))
            kind = "carrier" if n == 0 else "prose"
            record = {"label": "_utterance_", "text": " ".join(said), "words": spans, "kind": kind}
            write(f"_utterances_/{spk}_nohash_{n}.wav", _noise_floor(audio, rng), spk, k, record)

    noise_dir = root / "_background_noise_"
    noise_dir.mkdir(exist_ok=True)
    white = 0.1 * rng.standard_normal(3 * SAMPLE_RATE)
    save_audio(noise_dir / "white_noise.wav", white)
    brown = np.cumsum(rng.standard_normal(3 * SAMPLE_RATE))
    brown -= np.convolve(brown, np.ones(401) / 401, mode="same")  # remove the drift, keep the rumble
    save_audio(noise_dir / "brown_noise.wav", 0.3 * brown / np.max(np.abs(brown)))

    for name, split in (("validation_list.txt", "validation"), ("testing_list.txt", "test")):
        lines = sorted(rel for rel, s in split_of.items() if s == split)
        (root / name).write_text("".join(f"{rel}\n" for rel in lines))
    if meta:
        (root / "_meta_").mkdir(exist_ok=True)
        with open(root / "_meta_" / "clips.jsonl", "w") as f:
            for r in records:
                f.write(json.dumps(r) + "\n")
    return root
