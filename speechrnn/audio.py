"""Reading audio: any file soundfile understands becomes float32 mono at 16 kHz.

Everything downstream assumes `SAMPLE_RATE`; this module is the only place that resamples or mixes down.
"""

from __future__ import annotations

import io
import os
from collections.abc import Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf
import torch
import torchaudio.functional as AF

from .errors import SpeechRNNError

SAMPLE_RATE = 16_000  # Hz; the rate of Speech Commands and of every model here
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3")

AudioSource = str | os.PathLike | bytes | BinaryIO


def _describe(source: AudioSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, str | os.PathLike):
        return str(source)
    return getattr(source, "name", None) or "<file-like object>"


def _open(source: AudioSource) -> sf.SoundFile:
    """Open `source` with soundfile, turning every failure into a SpeechRNNError naming the source."""
    name = _describe(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise SpeechRNNError(f"{name}: no such file")
        if path.is_dir():
            raise SpeechRNNError(f"{name}: is a directory, expected an audio file")
        if path.stat().st_size == 0:
            raise SpeechRNNError(f"{name}: empty file (0 bytes), expected audio")
    elif isinstance(source, bytes):
        if not source:
            raise SpeechRNNError(f"{name}: empty input (0 bytes), expected audio")
        source = io.BytesIO(source)
    try:
        return sf.SoundFile(source)
    except (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError) as err:
        raise SpeechRNNError(f"{name}: not a readable audio file ({err})") from None


def _to_mono_16k(data: np.ndarray, rate: int, name: str) -> np.ndarray:
    """(frames, channels) float array at `rate` -> (samples,) float32 at SAMPLE_RATE."""
    if data.ndim == 2:
        data = data.mean(axis=1)
    data = np.asarray(data, dtype=np.float32)
    if not np.isfinite(data).all():
        raise SpeechRNNError(f"{name}: audio contains NaN or infinite samples")
    if rate != SAMPLE_RATE and data.size:
        data = AF.resample(torch.from_numpy(data), rate, SAMPLE_RATE).numpy()
    return np.ascontiguousarray(data, dtype=np.float32)


def load_audio(source: AudioSource) -> np.ndarray:
    """Read a whole audio file as float32 mono at 16 kHz.

    Args:
        source: a path, the bytes of a file, or a binary file-like object. Any sample rate (resampled),
            any channel count (mixed down), integer or float samples.

    Returns:
        `(samples,)` float32 array at `SAMPLE_RATE`, nominally in [-1, 1].

    Raises:
        SpeechRNNError: the source is missing, empty, not audio, truncated, or holds no or non-finite samples.
    """
    name = _describe(source)
    with _open(source) as f:
        rate = f.samplerate
        try:
            data = f.read(dtype="float32", always_2d=True)
        except (sf.LibsndfileError, RuntimeError, ValueError) as err:
            raise SpeechRNNError(f"{name}: audio data could not be decoded ({err})") from None
    if data.shape[0] == 0:
        raise SpeechRNNError(f"{name}: expected {SAMPLE_RATE // 1000} kHz mono audio, got 0 samples")
    return _to_mono_16k(data, rate, name)


def audio_duration(source: str | os.PathLike) -> float:
    """Duration of an audio file in seconds, read from its header."""
    with _open(source) as f:
        return f.frames / f.samplerate


def read_blocks(source: str | os.PathLike, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive float32 mono 16 kHz blocks, in bounded memory.

    Resampling is done per block with a few hundred samples of overlap so that the concatenated blocks
    match resampling the whole file closely (boundary differences are far below the MFCC's sensitivity).

    Args:
        source: path of an audio file of any length.
        block_seconds: length of each block at the file's own rate.

    Yields:
        `(samples,)` float32 arrays at `SAMPLE_RATE`; the last one may be shorter.
    """
    name = _describe(source)
    with _open(source) as f:
        rate = f.samplerate
        block = max(1, int(block_seconds * rate))
        if rate == SAMPLE_RATE:
            for data in f.blocks(blocksize=block, dtype="float32", always_2d=True):
                if data.shape[0]:
                    yield _to_mono_16k(data, rate, name)
            return
        # Resample with overlap: keep `pad` source samples either side and cut the matching output span.
        pad = int(0.02 * rate)
        prev_tail = np.zeros((0, f.channels), dtype=np.float32)
        produced = 0  # output samples emitted so far
        consumed = 0  # source samples fully accounted for
        total = f.frames
        while True:
            data = f.read(block, dtype="float32", always_2d=True)
            end = data.shape[0] == 0 or f.tell() >= total
            span = np.concatenate([prev_tail, data])
            mono = _to_mono_16k(span, rate, name)
            start_src = consumed - prev_tail.shape[0]
            stop_src = start_src + span.shape[0] if end else start_src + span.shape[0] - pad
            want_stop = round(stop_src * SAMPLE_RATE / rate)
            offset = round(start_src * SAMPLE_RATE / rate)
            piece = mono[produced - offset : want_stop - offset]
            if piece.size:
                yield piece
            produced = want_stop
            consumed = start_src + span.shape[0]
            prev_tail = span[-2 * pad :] if not end else prev_tail
            if end:
                return


def save_audio(path: str | os.PathLike, audio: np.ndarray, rate: int = SAMPLE_RATE) -> None:
    """Write float audio as 16-bit PCM WAV (the Speech Commands format)."""
    sf.write(str(path), np.clip(audio, -1.0, 1.0), rate, subtype="PCM_16")


def list_audio_files(paths: list[str | os.PathLike]) -> list[Path]:
    """Expand files and directories (walked recursively, sorted) into a list of audio file paths.

    Files named explicitly are kept whatever their extension, so that a bad one is reported, not skipped.
    """
    out: list[Path] = []
    for p in map(Path, paths):
        if p.is_dir():
            out.extend(sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file()))
        else:
            out.append(p)
    return out
