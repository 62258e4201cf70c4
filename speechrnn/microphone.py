"""Live audio input through PortAudio (the `sounddevice` package): the only module that imports it.

The stream's callback runs on PortAudio's thread and only queues a copy of each block (with the time it
arrived and whether PortAudio reported an overflow); the consumer reads the queue with a timeout, mixes down
and resamples. Faults become `SpeechRNNError`s with a clear message: no input device, an unknown device, a
sample rate the device refuses, a stream that stops or goes silent (a device unplugged). Overruns (PortAudio
overflows and blocks dropped because the consumer fell behind) are counted while the stream goes on.
"""

from __future__ import annotations

import contextlib
import math
import queue
import threading
import time
from dataclasses import dataclass
from types import ModuleType
from typing import Any

import numpy as np

from .audio import SAMPLE_RATE, resample
from .errors import SpeechRNNError

START_GRACE_S = 5.0  # extra time a sound server may take to deliver the first block


@dataclass(frozen=True)
class Block:
    """A block of live audio."""

    audio: np.ndarray  # (samples,) float32 mono at SAMPLE_RATE
    arrived: float  # time.monotonic() when the block was queued by the capture side


def _sounddevice() -> ModuleType:
    """Import sounddevice, turning a missing PortAudio library into a clear error."""
    try:
        import sounddevice
    except OSError as err:  # sounddevice raises OSError when libportaudio cannot be loaded
        raise SpeechRNNError(
            f"audio devices are unavailable: the PortAudio library is missing ({err}); install libportaudio2"
        ) from None
    return sounddevice


def list_devices(backend: Any = None) -> str:
    """A readable list of the audio devices ('>' marks the default input, '<' the default output)."""
    sd = backend or _sounddevice()
    try:
        devices = sd.query_devices()
    except sd.PortAudioError as err:
        raise SpeechRNNError(f"could not list audio devices ({err})") from None
    text = str(devices).rstrip()
    if not text:
        return "no audio devices found (is a sound server running, or a sound card present?)"
    return text


class StreamResampler:
    """Resamples a stream block by block, matching a resampling of the whole signal.

    Each call resamples the retained context plus the new block and emits only the output samples whose
    input neighbourhood (`context` samples either side, wider than the sinc kernel) is complete; the
    retained span always starts on a multiple of the rate ratio's numerator, so output samples fall on the
    same grid as for the whole signal. Holds back about `context` input samples (a few milliseconds).
    """

    def __init__(self, rate: int, context_ms: float = 5.0):
        target = SAMPLE_RATE  # `audio.resample`'s rate (torchaudio's filter, in numpy: no torch on a device)
        g = math.gcd(rate, target)
        self.rate, self.target = rate, target
        self._num, self._den = rate // g, target // g  # input samples per `_den` output samples
        self.context = max(64, math.ceil(rate * context_ms / 1000))
        self.reset()

    def reset(self) -> None:
        self._buffer = np.zeros(0, dtype=np.float32)
        self._base = 0  # absolute input index of _buffer[0], a multiple of _num
        self._emitted = 0  # absolute output samples emitted so far

    def __call__(self, audio: np.ndarray) -> np.ndarray:
        """Args: `(samples,)` float32 at `rate`. Returns `(samples,)` float32 at `target` (possibly none)."""
        if self.rate == self.target:
            return np.asarray(audio, dtype=np.float32)
        buf = np.concatenate([self._buffer, np.asarray(audio, dtype=np.float32)])
        end = (self._base + buf.size - self.context) * self._den // self._num  # outputs with full context
        if end <= self._emitted:
            self._buffer = buf
            return np.zeros(0, dtype=np.float32)
        out = resample(buf, self.rate)
        offset = self._base * self._den // self._num
        piece = out[self._emitted - offset : end - offset]
        self._emitted = end
        keep = (end * self._num // self._den - self.context) // self._num * self._num
        keep = max(keep, self._base)
        self._buffer, self._base = buf[keep - self._base :], keep
        return np.ascontiguousarray(piece, dtype=np.float32)


class Microphone:
    """An input device delivering `Block`s of float32 mono audio at SAMPLE_RATE.

    Args:
        device: PortAudio device index or name substring; None = the default input device.
        block_ms: audio per callback.
        max_queued_s: audio the queue holds before blocks are dropped (counted as overruns).
        stall_seconds: no audio for this long means the device is gone: `read` raises.
        backend: the sounddevice module, or a stand-in with the same functions (tests).
    """

    def __init__(
        self,
        device: int | str | None = None,
        block_ms: float = 100.0,
        max_queued_s: float = 10.0,
        stall_seconds: float = 3.0,
        backend: Any = None,
    ):
        if isinstance(device, str) and device.strip().isdigit():
            device = int(device)
        self.device, self.block_ms, self.stall_seconds = device, block_ms, stall_seconds
        self._backend = backend
        self._queue: queue.Queue = queue.Queue(maxsize=max(1, round(max_queued_s * 1000 / block_ms)))
        self._stream: Any = None
        self._resampler: StreamResampler | None = None
        self._finished = threading.Event()
        self._last_audio = 0.0
        self._heard = False  # whether any block has arrived yet
        self.overflows = 0  # PortAudio reported lost input
        self.dropped = 0  # blocks dropped because the consumer fell behind
        self.rate = SAMPLE_RATE  # the rate the device runs at
        self.name = "default input" if device is None else str(device)
        self.done = False  # a live device never runs out (see FileSource)

    @property
    def overruns(self) -> int:
        return self.overflows + self.dropped

    @property
    def description(self) -> str:
        rate = f"{self.rate} Hz" + (f", resampled to {SAMPLE_RATE} Hz" if self.rate != SAMPLE_RATE else "")
        return f"microphone {self.name} ({rate})"

    def open(self) -> None:
        """Open and start the input stream.

        Raises:
            SpeechRNNError: no such device or no input device at all, a refused rate, or a failed start.
        """
        sd = self._backend or _sounddevice()
        self._backend = sd
        which = "the default input device" if self.device is None else f"input device {self.device!r}"
        try:
            info = sd.query_devices(self.device, kind="input")
        except (ValueError, sd.PortAudioError) as err:
            msg = f"no audio input device found ({err})" if self.device is None else f"no {which} ({err})"
            raise SpeechRNNError(
                f"{msg}; see `speechrnn listen --list-devices`, or use --input FILE"
            ) from None
        self.name = f"{info['name']!r}" if self.device is None else f"{self.device!r} ({info['name']})"
        self.rate = self._choose_rate(sd, info, which)
        self._resampler = StreamResampler(self.rate)
        try:
            self._stream = sd.InputStream(
                device=self.device,
                channels=1,
                samplerate=self.rate,
                dtype="float32",
                blocksize=max(1, round(self.rate * self.block_ms / 1000)),
                callback=self._callback,
                finished_callback=self._finished.set,
            )
            self._last_audio = time.monotonic()
            self._stream.start()
        except (ValueError, sd.PortAudioError) as err:
            self.close()
            raise SpeechRNNError(
                f"could not start recording from {which} at {self.rate} Hz ({err})"
            ) from None

    def _choose_rate(self, sd: Any, info: dict, which: str) -> int:
        """SAMPLE_RATE if the device takes it, else its own default rate (resampled here)."""
        try:
            sd.check_input_settings(device=self.device, channels=1, samplerate=SAMPLE_RATE, dtype="float32")
            return SAMPLE_RATE
        except (ValueError, sd.PortAudioError) as first:
            fallback = int(info.get("default_samplerate") or 0)
            if fallback <= 0 or fallback == SAMPLE_RATE:
                raise SpeechRNNError(
                    f"{which} refuses mono float audio at {SAMPLE_RATE} Hz ({first})"
                ) from None
            try:
                sd.check_input_settings(device=self.device, channels=1, samplerate=fallback, dtype="float32")
            except (ValueError, sd.PortAudioError) as second:
                raise SpeechRNNError(
                    f"{which} refuses mono audio at {SAMPLE_RATE} Hz ({first}) "
                    f"and at its default {fallback} Hz ({second})"
                ) from None
            return fallback

    def _callback(self, indata: np.ndarray, frames: int, time_info: Any, status: Any) -> None:
        """PortAudio's thread: queue a copy of the block, count overflows. Nothing else."""
        if getattr(status, "input_overflow", False):
            self.overflows += 1
        try:
            self._queue.put_nowait((indata.copy(), time.monotonic()))
        except queue.Full:
            self.dropped += 1

    def read(self, timeout: float) -> Block | None:
        """The next block, or None if none arrived within `timeout` seconds.

        Raises:
            SpeechRNNError: the stream stopped or delivered nothing for `stall_seconds` (device gone).
        """
        if self._stream is None:
            raise SpeechRNNError("the microphone is not open")
        try:
            data, arrived = self._queue.get(timeout=timeout)
        except queue.Empty:
            self._check_alive()
            return None
        self._last_audio, self._heard = time.monotonic(), True
        mono = data.mean(axis=1) if data.ndim == 2 else data
        return Block(self._resampler(mono.astype(np.float32, copy=False)), arrived)

    def _check_alive(self) -> None:
        if self._finished.is_set() or not getattr(self._stream, "active", True):
            raise SpeechRNNError(f"the input stream from {self.name} stopped (device disconnected or failed)")
        silent = time.monotonic() - self._last_audio
        limit = self.stall_seconds + (0.0 if self._heard else START_GRACE_S)
        if silent > limit:
            raise SpeechRNNError(
                f"no audio from {self.name} for {silent:.1f} s (device disconnected or stalled)"
            )

    def close(self) -> None:
        """Stop and close the stream (safe to call twice)."""
        stream, self._stream = self._stream, None
        if stream is None:
            return
        for step in (stream.stop, stream.close):
            # A vanished device may fail to stop (with any PortAudio error); closing must still finish.
            with contextlib.suppress(Exception):
                step()

    def __enter__(self) -> Microphone:
        self.open()
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
