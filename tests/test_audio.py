"""Reading audio: every rate, channel layout and sample format becomes float32 mono 16 kHz, and bad input
becomes a SpeechRNNError that names the file and the problem, never a library traceback."""

from __future__ import annotations

import io
import math
import os
import re
import struct
import tracemalloc
from pathlib import Path

import numpy as np
import pytest
import soundfile as sf
import torch
import torchaudio.functional as AF
from hypothesis import HealthCheck, given, reject, settings
from hypothesis import strategies as st

import speechrnn.audio as audio_module
from speechrnn.audio import (
    SAMPLE_RATE,
    audio_duration,
    list_audio_files,
    load_audio,
    read_blocks,
    resample,
    save_audio,
)
from speechrnn.errors import SpeechRNNError

COMMON_RATES = (8_000, 11_025, 22_050, 32_000, 44_100, 48_000, 96_000)
# Rates whose ratio to 16 kHz does not reduce: torchaudio's resampling kernel for them takes gigabytes.
ODD_RATES = (12_347, 44_111)
# Formats and subtypes with the largest error of one sample after decoding.
SUBTYPES = [
    ("WAV", "PCM_U8", 2**-7),
    ("WAV", "PCM_16", 2**-15),
    ("WAV", "PCM_24", 2**-23),
    ("WAV", "PCM_32", 2**-31),
    ("WAV", "FLOAT", 0.0),
    ("WAV", "DOUBLE", 0.0),
    ("FLAC", "PCM_16", 2**-15),
    ("FLAC", "PCM_24", 2**-23),
]


def sine(freq: float, rate: int, seconds: float, amp: float = 0.5) -> np.ndarray:
    return (amp * np.sin(2 * np.pi * freq * np.arange(round(rate * seconds)) / rate)).astype(np.float32)


def noise(rate: int, seconds: float, channels: int | None = None, seed: int = 0) -> np.ndarray:
    shape = (round(rate * seconds),) if channels is None else (round(rate * seconds), channels)
    return np.random.default_rng(seed).uniform(-0.5, 0.5, shape).astype(np.float32)


def wav_bytes(data: np.ndarray, rate: int, subtype: str = "PCM_16", fmt: str = "WAV") -> bytes:
    buf = io.BytesIO()
    sf.write(buf, data, rate, format=fmt, subtype=subtype)
    return buf.getvalue()


def write(path: Path, data: np.ndarray, rate: int, subtype: str = "FLOAT") -> Path:
    sf.write(path, data, rate, subtype=subtype)
    return path


def resampled_length(frames: int, rate: int) -> int:
    return math.ceil(frames * SAMPLE_RATE / rate)


def peak_frequency(x: np.ndarray, rate: int = SAMPLE_RATE) -> float:
    """Frequency of the strongest spectral peak, refined by parabolic interpolation (error << 1 Hz)."""
    spectrum = np.abs(np.fft.rfft(x * np.hanning(x.size)))
    k = int(np.argmax(spectrum[1:-1])) + 1
    a, b, c = np.log(spectrum[k - 1 : k + 2])
    return (k + 0.5 * (a - c) / (a - 2 * b + c)) * rate / x.size


# --- sample rates ---------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", (SAMPLE_RATE, *COMMON_RATES, *ODD_RATES))
def test_any_rate_becomes_16k_with_duration_and_pitch_kept(tmp_path, rate):
    seconds, freq = 1.5, 1000.0
    x = sine(freq, rate, seconds)
    y = load_audio(write(tmp_path / "sine.wav", x, rate))
    assert y.dtype == np.float32 and y.ndim == 1
    assert y.size == resampled_length(x.size, rate)
    assert abs(y.size / SAMPLE_RATE - x.size / rate) < 1 / SAMPLE_RATE
    middle = y[2000:-2000]  # away from the edges, where the filter sees the zeros beyond the signal
    assert peak_frequency(middle) == pytest.approx(freq, abs=0.5)
    assert np.sqrt(np.mean(middle**2)) == pytest.approx(0.5 / np.sqrt(2), rel=0.01)


@pytest.mark.parametrize("rate", COMMON_RATES)
def test_resampling_is_torchaudios_filter(rate):
    # Our resampler evaluates torchaudio's default filter output by output; the kernels differ only in
    # float32 rounding. (We do not call torchaudio: its kernel grows with rate / gcd(rate, 16000).)
    x = noise(rate, 1.3)
    ours = resample(x, rate)
    theirs = AF.resample(torch.from_numpy(x), rate, SAMPLE_RATE).numpy()
    assert ours.shape == theirs.shape
    np.testing.assert_allclose(ours, theirs, atol=1e-4)


@pytest.mark.parametrize("rate", ODD_RATES)
def test_odd_rates_resample_in_little_memory(rate):
    x = noise(rate, 2.0)
    tracemalloc.start()
    try:
        y = resample(x, rate)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert y.size == resampled_length(x.size, rate)
    assert peak < 64 * 2**20, f"{peak / 2**20:.0f} MiB"


def test_resample_at_16k_is_identity():
    x = noise(SAMPLE_RATE, 0.1)
    np.testing.assert_array_equal(resample(x, SAMPLE_RATE), x)


@pytest.mark.parametrize(
    ("audio", "rate"), [(np.zeros((2, 100)), 8_000), (np.zeros(100), 0), (np.zeros(100), 44.1)]
)
def test_resample_refuses_bad_arguments(audio, rate):
    with pytest.raises(ValueError):
        resample(audio, rate)


# --- channels and sample formats --------------------------------------------------------------------------


@pytest.mark.parametrize("channels", [1, 2, 3, 6])
def test_channels_are_mixed_down_to_their_mean(tmp_path, channels):
    x = noise(SAMPLE_RATE, 0.5, channels)
    y = load_audio(write(tmp_path / "multi.wav", x, SAMPLE_RATE))
    np.testing.assert_allclose(y, x.mean(axis=1), atol=1e-7)


def test_opposite_stereo_channels_cancel(tmp_path):
    x = sine(440, 44_100, 0.5)
    y = load_audio(write(tmp_path / "stereo.wav", np.stack([x, -x], axis=1), 44_100))
    assert y.size == resampled_length(x.size, 44_100)
    assert np.abs(y).max() == 0.0


@pytest.mark.parametrize(("fmt", "subtype", "step"), SUBTYPES)
def test_sample_formats_decode_to_the_signal(tmp_path, fmt, subtype, step):
    x = noise(SAMPLE_RATE, 0.25, 2)
    path = tmp_path / f"clip.{fmt.lower()}"
    sf.write(path, x, SAMPLE_RATE, format=fmt, subtype=subtype)
    y = load_audio(path)
    assert y.dtype == np.float32
    # Quantisation moves each channel by at most one step; their mean moves no further.
    np.testing.assert_allclose(y, x.mean(axis=1), atol=step + 1e-7)


@pytest.mark.parametrize("dtype", [np.int16, np.int32])
def test_integer_arrays_are_scaled_to_unit_range(tmp_path, dtype):
    full = np.iinfo(dtype).max
    ints = np.array([0, full // 2, -full // 2, full], dtype=dtype)
    subtype = {np.int16: "PCM_16", np.int32: "PCM_32"}[dtype]
    y = load_audio(write(tmp_path / "ints.wav", np.tile(ints, 100), SAMPLE_RATE, subtype))
    np.testing.assert_allclose(y[:4], ints / (full + 1), atol=1e-6)


@pytest.mark.parametrize("rate", [SAMPLE_RATE, 44_100])
def test_path_str_bytes_and_file_objects_read_the_same(tmp_path, rate):
    path = write(tmp_path / "clip.flac", noise(rate, 0.3), rate, "PCM_24")
    data = path.read_bytes()
    expected = load_audio(path)
    with open(path, "rb") as f:
        from_file = load_audio(f)
    for y in (load_audio(str(path)), load_audio(data), load_audio(io.BytesIO(data)), from_file):
        np.testing.assert_array_equal(y, expected)


# --- bad input --------------------------------------------------------------------------------------------


def wav_header_patched(offset: int, fmt: str, value: int) -> bytes:
    """A valid 16 kHz PCM_16 WAV with one field of its 44-byte header overwritten."""
    data = bytearray(wav_bytes(noise(SAMPLE_RATE, 0.1), SAMPLE_RATE))
    data[offset : offset + struct.calcsize(fmt)] = struct.pack(fmt, value)
    return bytes(data)


BAD_FILES = {
    # name: (file contents, words the error must contain)
    "empty.wav": (b"", "empty file"),
    "no-frames.wav": (wav_bytes(np.zeros(0, np.float32), SAMPLE_RATE), "0 samples"),
    "truncated-header.wav": (
        wav_bytes(noise(SAMPLE_RATE, 0.1), SAMPLE_RATE)[:30],
        "not a readable audio file",
    ),
    "bad-magic.wav": (
        b"RIFX" + wav_bytes(noise(SAMPLE_RATE, 0.1), SAMPLE_RATE)[4:],
        "not a readable audio file",
    ),
    "zero-channels.wav": (wav_header_patched(22, "<H", 0), "not a readable audio file"),
    "zero-rate.wav": (wav_header_patched(24, "<I", 0), "not a readable audio file"),
    "rate-5-hz.wav": (wav_header_patched(24, "<I", 5), "sample rate 5 Hz"),
    "notes.wav": (b"these are my notes, not audio\n" * 20, "not a readable audio file"),
    "nan.wav": (wav_bytes(np.array([0.1, np.nan, 0.2], np.float32), SAMPLE_RATE, "FLOAT"), "NaN or infinite"),
    "inf.wav": (wav_bytes(np.array([0.1, -np.inf] * 9, np.float32), 44_100, "DOUBLE"), "NaN or infinite"),
    "huge.wav": (wav_bytes(np.array([0.1, 3e30], np.float32), SAMPLE_RATE, "FLOAT"), "magnitude 3e+30"),
}


@pytest.mark.parametrize("name", sorted(BAD_FILES))
def test_bad_file_raises_error_naming_file_and_problem(tmp_path, capfd, name):
    contents, problem = BAD_FILES[name]
    path = tmp_path / name
    path.write_bytes(contents)
    with pytest.raises(SpeechRNNError, match=re.escape(problem)) as exc:
        load_audio(path)
    assert str(path) in str(exc.value)
    # No library exception chained on: the message is all a user sees.
    assert exc.value.__cause__ is None
    assert exc.value.__context__ is None or exc.value.__suppress_context__
    with pytest.raises(SpeechRNNError, match=re.escape(problem)):
        next(read_blocks(path))
    if contents:
        with pytest.raises(SpeechRNNError, match=re.escape(problem)):
            load_audio(contents)
    assert "Traceback" not in capfd.readouterr().err


def test_missing_file(tmp_path):
    with pytest.raises(SpeechRNNError, match=r"missing\.wav: no such file"):
        load_audio(tmp_path / "missing.wav")
    with pytest.raises(SpeechRNNError, match="no such file"):
        next(read_blocks(tmp_path / "missing.wav"))


def test_directory(tmp_path):
    with pytest.raises(SpeechRNNError, match="is a directory"):
        load_audio(tmp_path)


def test_empty_bytes_and_file_objects():
    with pytest.raises(SpeechRNNError, match=r"<0 bytes>: empty input"):
        load_audio(b"")
    with pytest.raises(SpeechRNNError, match="file-like object.*empty input"):
        load_audio(io.BytesIO())


def test_text_mode_file_is_refused(tmp_path, capfd):
    path = write(tmp_path / "clip.wav", noise(SAMPLE_RATE, 0.1), SAMPLE_RATE)
    with (
        open(path, encoding="latin-1") as f,
        pytest.raises(SpeechRNNError, match="clip.wav: opened in text mode"),
    ):
        load_audio(f)
    assert "Traceback" not in capfd.readouterr().err


def test_objects_that_are_not_files_are_a_type_error():
    # soundfile would take the int for a file descriptor and read from it.
    with pytest.raises(TypeError, match="got int"):
        load_audio(0)


def test_truncated_data_is_an_error_naming_both_lengths(tmp_path):
    # A file cut short answered for the part that is there as if it were the whole: now it is refused.
    data = wav_bytes(noise(SAMPLE_RATE, 2.0), SAMPLE_RATE)
    path = tmp_path / "cut.wav"
    path.write_bytes(data[: 44 + 2 * 5318])
    message = "cut.wav: truncated: its header promises 64000 bytes of audio [(]32000 samples[)].*5318 samples"
    with pytest.raises(SpeechRNNError, match=message):
        load_audio(path)
    with pytest.raises(SpeechRNNError, match="truncated"):
        list(read_blocks(path))
    with pytest.raises(SpeechRNNError, match="truncated"):
        load_audio(data[: 44 + 2 * 1000 + 1])  # header, 1000 samples and half of the next
    assert load_audio(data).shape == (32000,)  # the whole file is fine


def test_a_stream_without_a_length_in_its_header_is_read_whole():
    # Writers that stream (ffmpeg to a pipe) put 0xFFFFFFFF where the length is not yet known.
    data = bytearray(wav_bytes(noise(SAMPLE_RATE, 0.1), SAMPLE_RATE))
    data[40:44] = struct.pack("<I", 0xFFFFFFFF)
    assert load_audio(bytes(data)).shape == (1600,)


def test_header_claiming_terabytes_is_truncated_and_nothing_is_allocated():
    data = bytearray(wav_bytes(noise(SAMPLE_RATE, 0.1), SAMPLE_RATE))
    data[40:44] = struct.pack("<I", 0xFFFFFFF0)
    with pytest.raises(SpeechRNNError, match="truncated"):
        load_audio(bytes(data))


def test_a_pipe_is_named_not_called_empty(tmp_path):
    fifo = tmp_path / "stream"
    os.mkfifo(fifo)
    with pytest.raises(SpeechRNNError, match="stream: is a pipe or a device, expected a regular audio file"):
        load_audio(fifo)


def test_permission_denied_is_said(tmp_path, monkeypatch):
    path = write(tmp_path / "locked.wav", noise(SAMPLE_RATE, 0.1), SAMPLE_RATE)
    real_open = os.open

    def refuse(p, flags, *args):
        if str(p) == str(path):
            raise PermissionError(13, "Permission denied", str(p))
        return real_open(p, flags, *args)

    monkeypatch.setattr(audio_module.os, "open", refuse)  # root may read anything: refuse it here
    with pytest.raises(SpeechRNNError, match="locked.wav: cannot be read [(]Permission denied[)]"):
        load_audio(path)


def test_a_damaged_mp3_is_one_error_and_nothing_on_stderr(tmp_path, capfd):
    path = tmp_path / "random.mp3"
    path.write_bytes(b"ID3" + np.random.default_rng(2).bytes(5000))
    with pytest.raises(SpeechRNNError, match="random.mp3: not a readable audio file [(]unknown format"):
        load_audio(path)
    assert capfd.readouterr().err == ""  # libmpg123 printed its own complaints here


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.binary(max_size=2048))
def test_random_bytes_are_audio_or_speechrnn_error(data):
    check_is_audio_or_error(data)


SEED_FILES = [
    wav_bytes(noise(SAMPLE_RATE, 0.05, 2), SAMPLE_RATE, "PCM_16"),
    wav_bytes(noise(22_050, 0.05), 22_050, "FLOAT"),
    wav_bytes(noise(SAMPLE_RATE, 0.05), SAMPLE_RATE, "PCM_16", "FLAC"),
    wav_bytes(noise(SAMPLE_RATE, 0.05), SAMPLE_RATE, "VORBIS", "OGG"),
    wav_bytes(noise(SAMPLE_RATE, 0.05), SAMPLE_RATE, "PCM_24", "AIFF"),
]


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(
    st.sampled_from(SEED_FILES),
    st.lists(st.tuples(st.integers(0, 200), st.integers(0, 255)), min_size=1, max_size=8),
    st.integers(0, 10_000),
)
def test_corrupted_files_are_audio_or_speechrnn_error(seed, edits, cut):
    # Random bytes rarely get past the first check; damaged headers of real files reach much further.
    data = bytearray(seed[: max(1, len(seed) - cut)])
    for offset, value in edits:
        data[offset % len(data)] = value
    check_is_audio_or_error(bytes(data))


def check_is_audio_or_error(data: bytes) -> None:
    try:
        y = load_audio(data)
    except SpeechRNNError as err:
        assert str(err).startswith(f"<{len(data)} bytes>: ")
        return
    assert y.dtype == np.float32 and y.ndim == 1 and y.size > 0
    assert np.isfinite(y).all()


RANDOM_SUBTYPES = [(fmt, subtype) for fmt, subtype, _ in SUBTYPES]


@settings(max_examples=60, deadline=None)
@given(
    rate=st.one_of(st.sampled_from(COMMON_RATES + (SAMPLE_RATE,)), st.integers(4_000, 96_000)),
    channels=st.integers(1, 4),
    format_subtype=st.sampled_from(RANDOM_SUBTYPES),
    frames=st.integers(1, 5_000),
)
def test_random_valid_files_give_the_right_length(rate, channels, format_subtype, frames):
    fmt, subtype = format_subtype
    x = noise(rate, frames / rate, channels, seed=frames)
    try:
        data = wav_bytes(x, rate, subtype, fmt)
    except sf.LibsndfileError:  # a combination libsndfile cannot write (FLAC at some rates above 65535 Hz)
        reject()
    y = load_audio(data)
    assert y.dtype == np.float32
    assert y.shape == (resampled_length(frames, rate),)
    assert np.isfinite(y).all()


# --- reading in blocks ------------------------------------------------------------------------------------


@pytest.mark.parametrize("rate", [SAMPLE_RATE, 44_100, 48_000, 8_000, 22_050, 12_347])
@pytest.mark.parametrize("block_seconds", [0.37, 1.0, 0.0123, 1 / SAMPLE_RATE])
def test_blocks_join_into_the_whole_file(tmp_path, rate, block_seconds):
    seconds = 3.3 if block_seconds > 0.01 else 0.2  # one-sample blocks take a Python loop per sample
    path = write(tmp_path / "long.wav", noise(rate, seconds, 2), rate)
    whole = load_audio(path)
    blocks = list(read_blocks(path, block_seconds))
    size = max(1, round(block_seconds * SAMPLE_RATE))
    assert all(b.shape == (size,) for b in blocks[:-1])
    assert 0 < blocks[-1].size <= size
    joined = np.concatenate(blocks)
    assert joined.shape == whole.shape
    if rate == SAMPLE_RATE:
        np.testing.assert_array_equal(joined, whole)
    else:
        # Each block is resampled from a filter's length of source either side, so the join is exact
        # up to float rounding (far inside the 1e-3 that would already be invisible to the MFCC).
        np.testing.assert_allclose(joined, whole, atol=1e-6)


@settings(max_examples=40, deadline=None)
@given(
    rate=st.one_of(st.sampled_from((SAMPLE_RATE, 8_000, 44_100, 48_000)), st.integers(4_000, 50_000)),
    frames=st.integers(1, 20_000),
    block=st.integers(1, 9_000),
)
def test_blocks_join_for_random_lengths_and_block_sizes(tmp_path_factory, rate, frames, block):
    path = write(tmp_path_factory.mktemp("blocks") / "x.wav", noise(rate, frames / rate, seed=frames), rate)
    joined = np.concatenate(list(read_blocks(path, block / SAMPLE_RATE)))
    np.testing.assert_allclose(joined, load_audio(path), atol=1e-6)


def peak_memory_reading(path: Path, block_seconds: float) -> int:
    tracemalloc.start()
    try:
        for block in read_blocks(path, block_seconds):
            del block
        return tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()


@pytest.mark.parametrize("rate", [SAMPLE_RATE, 48_000])
def test_blocks_read_in_memory_independent_of_file_length(tmp_path, rate):
    short = write(tmp_path / "short.wav", noise(rate, 5, 2), rate, "PCM_16")
    long = write(tmp_path / "long.wav", noise(rate, 90, 2), rate, "PCM_16")
    decoded_whole = sf.info(long).frames * 2 * 4  # bytes of float32 stereo
    peak = peak_memory_reading(long, 0.5)
    assert peak < 1.2 * peak_memory_reading(short, 0.5) + 2**20
    assert peak < decoded_whole / 4


def test_nan_in_a_later_block_is_reported_when_reached(tmp_path):
    x = noise(SAMPLE_RATE, 1.0)
    x[12_000] = np.nan
    blocks = read_blocks(write(tmp_path / "late-nan.wav", x, SAMPLE_RATE), 0.25)
    assert next(blocks).size == 4000
    with pytest.raises(SpeechRNNError, match="late-nan.wav: audio contains NaN"):
        list(blocks)


# --- the rest of the module ---------------------------------------------------------------------------------


def test_duration_comes_from_the_header(tmp_path):
    assert audio_duration(write(tmp_path / "a.wav", noise(44_100, 2.5), 44_100)) == pytest.approx(2.5)


def test_save_audio_writes_clipped_16_bit_speech_commands_wav(tmp_path):
    x = np.array([0.0, 0.5, -0.25, 1.7, -3.0], np.float32)
    path = tmp_path / "out.wav"
    save_audio(path, x)
    info = sf.info(path)
    assert (info.samplerate, info.channels, info.subtype) == (SAMPLE_RATE, 1, "PCM_16")
    np.testing.assert_allclose(load_audio(path), np.clip(x, -1, 1), atol=2**-15)


def test_list_audio_files_walks_directories_and_keeps_named_files(tmp_path):
    for rel in ["b/two.wav", "a/one.FLAC", "a/deeper/three.ogg", "a/readme.txt", "c.mp3"]:
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_bytes(b"")
    named = tmp_path / "a" / "readme.txt"
    found = list_audio_files([tmp_path, named])
    assert [p.relative_to(tmp_path).as_posix() for p in found] == [
        "a/deeper/three.ogg",
        "a/one.FLAC",
        "b/two.wav",
        "c.mp3",
        "a/readme.txt",
    ]
