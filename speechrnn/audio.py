"""Reading audio: any file soundfile understands becomes float32 mono at 16 kHz.

Everything downstream assumes `SAMPLE_RATE`; this module is the only place that resamples or mixes down.

A damaged file is an error, never a quiet part of one: a file shorter than its header says (a copy or a
recording cut off) raises a SpeechRNNError naming both lengths, rather than giving the audio that is there,
because an answer about part of a file read as if it were the whole is a wrong answer given without a word.
Only regular files are read: a pipe or a device (`/dev/stdin`) is refused by name, as they cannot be read
twice (its length, then its samples).
"""

from __future__ import annotations

import contextlib
import functools
import io
import math
import os
import re
import stat
import sys
from collections.abc import Generator, Iterator
from pathlib import Path
from typing import BinaryIO

import numpy as np
import soundfile as sf

from .errors import SpeechRNNError

SAMPLE_RATE = 16_000  # Hz; the rate of Speech Commands and of every model here
AUDIO_EXTENSIONS = (".wav", ".flac", ".ogg", ".aiff", ".aif", ".au", ".mp3")
MIN_RATE = 1_000  # Hz; a lower rate in a header means a corrupt file, not audio
MAX_RATE = 768_000  # Hz; the highest rate audio interfaces record at
MAX_PEAK = 1e6  # float samples are nominally in [-1, 1]; far beyond, the data is garbage

# The resampling filter is torchaudio.functional.resample's default (a Hann-windowed sinc), evaluated per
# output sample: its memory grows with the filter length, where torchaudio's kernel grows with
# rate / gcd(rate, 16000) (4 GB and 10 s for one second at 12347 Hz).
LOWPASS_WIDTH = 6  # zero crossings of the sinc on each side of an output sample
ROLLOFF = 0.99  # cut-off as a fraction of the lower of the two Nyquist frequencies
_CHUNK_ELEMENTS = 1 << 20  # outputs x taps computed at once: bounds the temporary arrays
_READ_ELEMENTS = 1 << 22  # samples (frames x channels) read from a file at once

_FILE_ERRORS = (sf.LibsndfileError, RuntimeError, TypeError, ValueError, OSError)

AudioSource = str | os.PathLike | bytes | BinaryIO


def _reason(err: Exception) -> str:
    """The library's own words, without soundfile's 'Error opening <object repr>:' prefix."""
    return getattr(err, "error_string", None) or str(err)


def _describe(source: AudioSource) -> str:
    if isinstance(source, bytes):
        return f"<{len(source)} bytes>"
    if isinstance(source, str | os.PathLike):
        return str(source)
    return str(getattr(source, "name", None) or "<file-like object>")


class _Bytes(io.BytesIO):
    """In-memory file whose seek before the start fails quietly, like a disk file's.

    io.BytesIO raises there, and soundfile would print the traceback from inside its libsndfile callback.
    """

    def seek(self, offset: int, whence: int = io.SEEK_SET) -> int:
        try:
            return super().seek(offset, whence)
        except ValueError:
            return self.tell()


@contextlib.contextmanager
def _quiet_decoder():
    """Keep a C decoder's own messages off stderr (libmpg123 prints its complaints about a damaged MP3
    there); what went wrong reaches the user as the SpeechRNNError."""
    fd = 2  # the C library's stderr, whatever Python's sys.stderr is now
    with contextlib.suppress(AttributeError, OSError, ValueError):
        sys.stderr.flush()
    saved = os.dup(fd)
    devnull = os.open(os.devnull, os.O_WRONLY)
    try:
        os.dup2(devnull, fd)
        yield
    finally:
        os.dup2(saved, fd)
        os.close(saved)
        os.close(devnull)


# libsndfile's log of a header whose data chunk is longer than the file ("data : 64000 (should be 10636)").
_SHORT_CHUNK = re.compile(r"^(?:data|SSND)\s*:\s*(\d+)\s*\(should be (\d+)\)", re.MULTILINE)
_UNKNOWN_LENGTHS = (0, 0xFFFFFFFF, 0x7FFFFFFF)  # what streaming writers put where the length is not known


def _check_complete(f: sf.SoundFile, name: str) -> None:
    """Raise a SpeechRNNError if the file holds fewer samples than its header says."""
    match = _SHORT_CHUNK.search(f.extra_info or "")
    if not match:
        return
    claimed, present = int(match.group(1)), int(match.group(2))
    if claimed in _UNKNOWN_LENGTHS or claimed <= present:
        return
    frame_bytes = max(1, present // max(1, f.frames)) if f.frames else 0
    promised = f" ({claimed // frame_bytes} samples)" if frame_bytes else ""
    raise SpeechRNNError(
        f"{name}: truncated: its header promises {claimed} bytes of audio{promised}, the file holds {present} "
        f"({f.frames} samples); expected a complete file"
    )


def _open(source: AudioSource) -> sf.SoundFile:
    """Open `source` with soundfile, turning every failure into a SpeechRNNError naming the source."""
    name = _describe(source)
    if isinstance(source, str | os.PathLike):
        path = Path(source)
        if not path.exists():
            raise SpeechRNNError(f"{name}: no such file")
        if path.is_dir():
            raise SpeechRNNError(f"{name}: is a directory, expected an audio file")
        if not stat.S_ISREG(path.stat().st_mode):
            raise SpeechRNNError(
                f"{name}: is a pipe or a device, expected a regular audio file (save the stream to a file first)"
            )
        if path.stat().st_size == 0:
            raise SpeechRNNError(f"{name}: empty file (0 bytes), expected audio")
        try:
            os.close(os.open(path, os.O_RDONLY))
        except OSError as err:
            raise SpeechRNNError(f"{name}: cannot be read ({err.strerror})") from None
    else:
        if not isinstance(source, bytes):
            if not callable(getattr(source, "read", None)):
                # soundfile would take an int for a file descriptor and read whatever that is.
                raise TypeError(
                    f"expected a path, bytes or a binary file object, got {type(source).__name__}"
                )
            try:
                source = source.read()  # whole files are read anyway; bytes make seeking errors quiet
            except _FILE_ERRORS as err:
                raise SpeechRNNError(f"{name}: cannot be read ({_reason(err)})") from None
            if not isinstance(source, bytes):
                raise SpeechRNNError(f"{name}: opened in text mode, expected a binary file object")
        if not source:
            raise SpeechRNNError(f"{name}: empty input (0 bytes), expected audio")
        source = _Bytes(source)
    try:
        with _quiet_decoder():
            f = sf.SoundFile(source)
    except _FILE_ERRORS as err:
        reason = _reason(err)
        if "possibly a pipe" in reason:  # libsndfile's words for a format it does not recognise
            reason = "unknown format, or damaged data"
        raise SpeechRNNError(f"{name}: not a readable audio file ({reason})") from None
    try:
        if not MIN_RATE <= f.samplerate <= MAX_RATE:
            raise SpeechRNNError(
                f"{name}: sample rate {f.samplerate} Hz is outside {MIN_RATE}-{MAX_RATE} Hz; the file is corrupt"
            )
        _check_complete(f, name)
    except SpeechRNNError:
        f.close()
        raise
    return f


def _read(f: sf.SoundFile, frames: int, name: str) -> np.ndarray:
    """Up to `frames` frames (-1: all) from the current position as `(frames, channels)` float32.

    Reads in pieces: soundfile allocates the full request up front, and a corrupt header can claim
    terabytes.
    """
    piece = max(1, _READ_ELEMENTS // f.channels)
    parts = []
    remaining = frames if frames >= 0 else math.inf
    while remaining > 0:
        want = int(min(piece, remaining))
        try:
            with _quiet_decoder() if f.format == "MPEG" else contextlib.nullcontext():
                data = f.read(want, dtype="float32", always_2d=True)
        except _FILE_ERRORS as err:
            raise SpeechRNNError(f"{name}: audio data could not be decoded ({_reason(err)})") from None
        parts.append(data)
        remaining -= data.shape[0]
        if data.shape[0] < want:
            break
    if len(parts) == 1:
        return parts[0]
    return np.concatenate(parts) if parts else np.zeros((0, f.channels), dtype=np.float32)


def _mix_down(data: np.ndarray, name: str) -> np.ndarray:
    """`(frames, channels)` float array -> `(frames,)` float32, the mean of the channels."""
    peak = float(np.abs(data).max()) if data.size else 0.0
    if not math.isfinite(peak):
        raise SpeechRNNError(f"{name}: audio contains NaN or infinite samples")
    if peak > MAX_PEAK:
        raise SpeechRNNError(f"{name}: a sample of magnitude {peak:.3g}, expected audio near [-1, 1]")
    return np.ascontiguousarray(data.mean(axis=1, dtype=np.float32) if data.shape[1] > 1 else data[:, 0])


class _Resampler:
    """Band-limited resampling from `rate` to SAMPLE_RATE, computable piece by piece.

    Output sample j lies at source position `j * rate / SAMPLE_RATE` and is a weighted sum of the
    `2 * half + 1` source samples around it, with zeros outside the signal. Any span of the output can
    therefore be computed from the matching span of the source, and pieces join exactly.
    """

    def __init__(self, rate: int):
        g = math.gcd(rate, SAMPLE_RATE)
        self.up, self.down = SAMPLE_RATE // g, rate // g  # output j <-> source position j * down / up
        cutoff = min(rate, SAMPLE_RATE) * ROLLOFF / rate  # filter cut-off over the source's Nyquist frequency
        self.half = math.ceil(LOWPASS_WIDTH / cutoff)
        # Output j reads source samples floor(j * down / up) + k, k in [-half, half], with weights that
        # depend only on j mod up: one row per phase.
        frac = (np.arange(self.up, dtype=np.int64) * self.down % self.up) / self.up
        t = (np.arange(-self.half, self.half + 1)[None, :] - frac[:, None]) * cutoff
        t = np.clip(t, -LOWPASS_WIDTH, LOWPASS_WIDTH)
        window = np.cos(t * math.pi / LOWPASS_WIDTH / 2) ** 2
        self.kernel = (np.sinc(t) * window * cutoff).astype(np.float32)  # (up, 2 * half + 1)

    def num_outputs(self, num_source: int) -> int:
        """Output length for a whole signal of `num_source` samples (as torchaudio's: ceil)."""
        return -(-num_source * self.up // self.down)

    def first_source(self, out_index: int) -> int:
        """Index of the first source sample that output `out_index` reads."""
        return out_index * self.down // self.up - self.half

    def __call__(self, x: np.ndarray, x_start: int, out_start: int, out_stop: int) -> np.ndarray:
        """Outputs `[out_start, out_stop)` from `x`, which holds source samples `[x_start, x_start + len(x))`.

        Source samples outside `x` count as zero: right at the ends of the signal, and never read elsewhere
        when `x` covers `first_source(out_start)` up to `first_source(out_stop - 1) + 2 * half`.
        """
        taps = self.kernel.shape[1]
        padded = np.concatenate([np.zeros(1, np.float32), x, np.zeros(1, np.float32)])
        offsets = np.arange(taps, dtype=np.int64)
        out = np.empty(max(0, out_stop - out_start), dtype=np.float32)
        step = max(1, _CHUNK_ELEMENTS // taps)
        for a in range(out_start, out_stop, step):
            j = np.arange(a, min(a + step, out_stop), dtype=np.int64)
            first = j * self.down // self.up - self.half - x_start + 1  # +1: the leading zero of `padded`
            # Indices past either end land on the zero at that end.
            idx = np.clip(first[:, None] + offsets, 0, padded.size - 1)
            out[a - out_start : a - out_start + j.size] = np.einsum(
                "ij,ij->i", padded[idx], self.kernel[j % self.up]
            )
        return out


@functools.lru_cache(maxsize=8)
def _resampler(rate: int) -> _Resampler:
    return _Resampler(rate)


def resample(audio: np.ndarray, rate: int) -> np.ndarray:
    """Resample `(samples,)` float audio at `rate` Hz to `(ceil(samples * SAMPLE_RATE / rate),)` float32."""
    x = np.ascontiguousarray(audio, dtype=np.float32)
    if x.ndim != 1:
        raise ValueError(f"expected (samples,) audio, got shape {x.shape}")
    if rate <= 0 or int(rate) != rate:
        raise ValueError(f"expected a positive whole number of Hz, got {rate}")
    if rate == SAMPLE_RATE:
        return x
    r = _resampler(int(rate))
    return r(x, 0, 0, r.num_outputs(x.size))


def load_audio(source: AudioSource) -> np.ndarray:
    """Read a whole audio file as float32 mono at 16 kHz.

    Args:
        source: a path, the bytes of a file, or a binary file-like object. Any sample rate (resampled),
            any channel count (mixed down), integer or float samples.

    Returns:
        `(samples,)` float32 array at `SAMPLE_RATE`, nominally in [-1, 1].

    Raises:
        SpeechRNNError: the source is missing, empty, not a regular file, unreadable, not audio, truncated
            (shorter than its header says), or holds no or non-finite samples.
        TypeError: `source` is neither a path, nor bytes, nor a file object.
    """
    name = _describe(source)
    with _open(source) as f:
        rate = f.samplerate
        data = _read(f, -1, name)
    if data.shape[0] == 0:
        raise SpeechRNNError(f"{name}: expected {SAMPLE_RATE // 1000} kHz mono audio, got 0 samples")
    return resample(_mix_down(data, name), rate)


def audio_duration(source: str | os.PathLike) -> float:
    """Duration of an audio file in seconds, read from its header."""
    with _open(source) as f:
        return f.frames / f.samplerate


def read_blocks(source: str | os.PathLike, block_seconds: float = 30.0) -> Iterator[np.ndarray]:
    """Yield a long file as consecutive float32 mono 16 kHz blocks, in bounded memory.

    The blocks joined are `load_audio(source)`: resampling reads a filter's length of source beyond each
    block, so block boundaries leave no trace.

    Args:
        source: path of an audio file of any length.
        block_seconds: length of each block; all but the last hold `round(block_seconds * SAMPLE_RATE)`
            samples (at least one).

    Yields:
        `(samples,)` float32 arrays at `SAMPLE_RATE`; the last one may be shorter.

    Raises:
        SpeechRNNError: as `load_audio`, when the file is opened or when a bad stretch of it is reached.
    """
    name = _describe(source)
    out_block = max(1, round(block_seconds * SAMPLE_RATE))
    with _open(source) as f:
        rate = f.samplerate
        if rate == SAMPLE_RATE:
            produced = 0
            while (data := _read(f, out_block, name)).shape[0]:
                produced += data.shape[0]
                yield _mix_down(data, name)
        else:
            produced = yield from _resample_blocks(f, _resampler(rate), out_block, name)
    if produced == 0:
        raise SpeechRNNError(f"{name}: expected {SAMPLE_RATE // 1000} kHz mono audio, got 0 samples")


def _resample_blocks(
    f: sf.SoundFile, r: _Resampler, out_block: int, name: str
) -> Generator[np.ndarray, None, int]:
    """Blocks of `out_block` output samples from an open file; returns how many samples were yielded."""
    read_size = max(1, out_block * r.down // r.up)  # about one block of source at a time
    buf = np.zeros(0, dtype=np.float32)  # source samples [buf_start, buf_start + buf.size)
    buf_start = 0
    produced = 0
    eof = False
    while True:
        stop = produced + out_block
        need = r.first_source(stop - 1) + 2 * r.half + 1  # source samples that output stop - 1 reads
        while not eof and buf_start + buf.size < need:
            data = _read(f, read_size, name)
            eof = data.shape[0] < read_size
            if data.shape[0]:
                buf = np.concatenate([buf, _mix_down(data, name)])
        if eof:
            stop = min(stop, r.num_outputs(buf_start + buf.size))
        if stop <= produced:
            return produced
        yield r(buf, buf_start, produced, stop)
        produced = stop
        drop = r.first_source(produced) - buf_start  # samples no later output reads
        if drop > 0:
            buf, buf_start = buf[drop:], buf_start + drop


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
            out.extend(
                sorted(q for q in p.rglob("*") if q.suffix.lower() in AUDIO_EXTENSIONS and q.is_file())
            )
        else:
            out.append(p)
    return out
