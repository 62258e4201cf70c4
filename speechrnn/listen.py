"""`speechrnn listen`: spot keywords live, from a microphone or from a file replayed as a live stream.

One path for both sources: the source queues blocks of audio (the microphone's callback, or a thread that
replays a file at real time or as fast as possible); a worker thread takes them off the queue with a timeout,
runs the streaming recogniser and the spotter, and prints each detection as it happens. The main thread only
waits, draws the status line on a terminal, and turns Ctrl-C into a clean stop with a summary.
"""

from __future__ import annotations

import dataclasses
import json
import os
import queue
import sys
import threading
import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Protocol, TextIO

import numpy as np

from .audio import SAMPLE_RATE, audio_duration, read_blocks
from .checkpoint import load_model
from .config import END_SILENCE_S, RESET_AFTER_SILENCE_MS
from .errors import SpeechRNNError
from .microphone import Block, Microphone, list_devices
from .spotter import Detection, KeywordSpotter, SpotterConfig
from .streaming import LIVE_CHUNK_MS, LIVE_LOOKAHEAD_MS, StreamingRecognizer

BLOCK_MS = 100.0  # audio per block from either source
READ_TIMEOUT_S = 0.25  # the worker never waits longer than this for audio before checking for a stop
STATUS_INTERVAL_S = 0.1  # status line refresh period
OVERRUN_WARNING_S = 5.0  # without a terminal, report new overruns at most this often


# Pause after which the live recogniser forgets its recurrent state and the label head's window (session 8:
# correct detections on the held-out test stream 72.6 -> 78.0 %, false positives 12.6 -> 8.8 %). Since the
# window is forgotten too (session 19), 300 ms is best on the validation stream at 20 dB, level with 500 and
# 800 (correct minus false positives 92.2, 92.1, 92.1 % at 0.5; 200 ms 91.9, 1000 ms 91.6).
# The value lives in config (RESET_AFTER_SILENCE_MS), where the command line reads it.
# A file ends where a room would go on: this much silence follows its last sample through the recogniser, so
# that a word at its very end is decided as it would be live (events come a median ~150 ms, and nine in ten
# within ~250 ms, after the word's end). A person's "left" ending 0.25 s before the end of its file was
# missed without it. The value lives in config (END_SILENCE_S), where the command line reads it.


class Source(Protocol):
    """Where blocks come from: `Microphone` or `FileSource`."""

    done: bool  # no more audio will come (a file's end); a live device is never done
    description: str

    @property
    def overruns(self) -> int: ...

    def open(self) -> None: ...

    def read(self, timeout: float) -> Block | None: ...

    def close(self) -> None: ...


class FileSource:
    """Replays an audio file as a live source: blocks queued by a thread, at real time or as fast as possible.

    Args:
        path: any audio file `load_audio` reads (resampled to 16 kHz mono, block by block).
        realtime: deliver each block when its last sample would have been recorded; False = at once.
        block_ms: audio per block.
    """

    def __init__(self, path: str | os.PathLike, realtime: bool = True, block_ms: float = BLOCK_MS):
        self.path, self.realtime, self.block_ms = path, realtime, block_ms
        self.duration = audio_duration(path)  # raises SpeechRNNError for a missing or unreadable file
        pace = "real time" if realtime else "as fast as possible"
        self.description = f"file {os.fspath(path)} ({self.duration:.1f} s, {pace})"
        self._queue: queue.Queue = queue.Queue(maxsize=20)
        self._stop = threading.Event()
        self._ended = threading.Event()
        self._error: BaseException | None = None
        self._thread: threading.Thread | None = None
        self.overruns = 0  # a file never overruns: its reader waits for the consumer

    @property
    def done(self) -> bool:
        return self._ended.is_set() and self._queue.empty()

    def open(self) -> None:
        self._thread = threading.Thread(target=self._produce, name="speechrnn-file-source", daemon=True)
        self._thread.start()

    def _produce(self) -> None:
        try:
            start, sent = time.monotonic(), 0
            for block in read_blocks(self.path, block_seconds=self.block_ms / 1000):
                sent += block.size
                if self.realtime and self._stop.wait(max(0.0, start + sent / SAMPLE_RATE - time.monotonic())):
                    return
                while not self._stop.is_set():
                    try:
                        self._queue.put((block, time.monotonic()), timeout=READ_TIMEOUT_S)
                        break
                    except queue.Full:
                        continue
                if self._stop.is_set():
                    return
        except SpeechRNNError as err:
            self._error = err
        finally:
            self._ended.set()

    def read(self, timeout: float) -> Block | None:
        try:
            audio, arrived = self._queue.get(timeout=timeout)
        except queue.Empty:
            if self._error is not None:
                raise self._error from None
            return None
        return Block(audio, arrived)

    def close(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=2.0)


@dataclass
class ListenStats:
    """What the worker has done so far (read by the status line and the summary)."""

    samples: int = 0  # audio consumed
    level_db: float = -120.0  # RMS level of the last block, dBFS
    lag_s: float = 0.0  # time from a block's arrival to the end of its processing
    compute_s: float = 0.0  # total compute
    detections: list[Detection] = field(default_factory=list)

    @property
    def seconds(self) -> float:
        return self.samples / SAMPLE_RATE


@dataclass(frozen=True)
class ListenSummary:
    """The result of a `listen` session."""

    seconds: float  # audio heard
    detections: tuple[Detection, ...]
    overruns: int
    interrupted: bool  # stopped by Ctrl-C
    compute_s: float  # processing time spent

    def line(self) -> str:
        counts = Counter(d.keyword for d in self.detections)
        words = ", ".join(f"{k} x{n}" for k, n in counts.most_common())
        how = "stopped" if self.interrupted else "done"
        rtf = self.compute_s / self.seconds if self.seconds else 0.0
        return (
            f"{how}: {self.seconds:.1f} s of audio, {len(self.detections)} detections"
            + (f" ({words})" if words else "")
            + f", {self.overruns} overruns, real-time factor {rtf:.3f}"
        )


class _Printer:
    """Writes detections to `out` and the status line to `err`, never interleaving them."""

    def __init__(self, out: TextIO, err: TextIO, as_json: bool, live_status: bool):
        self.out, self.err, self.as_json, self.live_status = out, err, as_json, live_status
        self._lock = threading.Lock()
        self._status = ""

    def detection(self, d: Detection) -> None:
        with self._lock:
            self._clear()
            if self.as_json:
                self.out.write(json.dumps(d.to_dict()) + "\n")
            else:
                self.out.write(f"{d.time:9.2f} s  {d.keyword:<12} {d.score:.2f}\n")
            self.out.flush()
            self._draw()

    def message(self, text: str) -> None:
        with self._lock:
            self._clear()
            self.err.write(f"listen: {text}\n")
            self.err.flush()
            self._draw()

    def status(self, text: str) -> None:
        if not self.live_status:
            return
        with self._lock:
            self._status = text
            self._draw()

    def end_status(self) -> None:
        with self._lock:
            self._clear()
            self._status = ""

    def _clear(self) -> None:
        if self.live_status and self._status:
            self.err.write("\r\x1b[K")

    def _draw(self) -> None:
        if self.live_status and self._status:
            self.err.write("\r" + self._status + "\x1b[K")
            self.err.flush()


def _status_text(stats: ListenStats, overruns: int, delay_s: float) -> str:
    bars = int(np.clip((stats.level_db + 60) / 6, 0, 10))
    meter = "#" * bars + "." * (10 - bars)
    return (
        f"listening {stats.seconds:7.1f} s | level {stats.level_db:6.1f} dBFS [{meter}] | "
        f"latency {1000 * (delay_s + stats.lag_s):5.0f} ms | overruns {overruns}"
    )


def _consume(
    source: Source,
    stream: StreamingRecognizer,
    spotter: KeywordSpotter,
    printer: _Printer,
    stats: ListenStats,
    stop: threading.Event,
) -> None:
    """The worker: queued blocks -> recogniser -> spotter -> printed detections, until the end or a stop."""
    while not stop.is_set():
        block = source.read(timeout=READ_TIMEOUT_S)
        if block is None:
            if source.done:
                break
            continue
        t0 = time.perf_counter()
        events = spotter.update(stream.accept(block.audio))
        stats.compute_s += time.perf_counter() - t0
        stats.samples += block.audio.size
        if block.audio.size:
            rms = float(np.sqrt(np.mean(np.square(block.audio, dtype=np.float64))))
            stats.level_db = 20 * np.log10(max(rms, 1e-6))
        stats.lag_s = time.monotonic() - block.arrived
        for event in events:
            stats.detections.append(event)
            printer.detection(event)
    ending = []
    if source.done:  # not after a stop: a live stream ends where the listener stopped it
        ending = spotter.update(stream.accept(np.zeros(round(END_SILENCE_S * SAMPLE_RATE), np.float32)))
    for event in ending + spotter.update(stream.flush()):
        stats.detections.append(event)
        printer.detection(event)


def listen(
    *,
    model: str | os.PathLike | None = None,
    onnx: str | os.PathLike | None = None,
    input: str | os.PathLike | None = None,
    fast: bool = False,
    as_json: bool = False,
    device: int | str | None = None,
    show_devices: bool = False,
    keywords: list[str] | None = None,
    threshold: float | None = None,
    chunk_ms: float = LIVE_CHUNK_MS,
    lookahead_ms: float = LIVE_LOOKAHEAD_MS,
    reset_after_silence_ms: float | None = RESET_AFTER_SILENCE_MS,
    out: TextIO | None = None,
    err: TextIO | None = None,
    source: Source | None = None,
) -> ListenSummary | None:
    """Spot keywords in a live stream and print each detection as it happens.

    Args:
        model: checkpoint path; None = the model shipped with the package.
        onnx: an exported streaming step (`speechrnn export`) to run with onnxruntime instead of a
            checkpoint; its chunk and look-ahead are those it was exported with (`chunk_ms` and
            `lookahead_ms` are then ignored).
        input: audio file to replay instead of the microphone.
        fast: replay `input` as fast as possible instead of at real time.
        as_json: print one JSON object per detection (`{"keyword", "time", "score"}`).
        device: input device index or name substring (None: the default input).
        show_devices: print the audio devices and return.
        keywords: only these labels fire (None: every keyword the model knows).
        threshold: smoothed probability a keyword must reach (None: `SpotterConfig`'s default).
        chunk_ms, lookahead_ms: latency control of the recogniser (multiples of its step, 20 ms by default).
        reset_after_silence_ms: forget the recurrent state after this long a pause (see
            `StreamingRecognizer`); None never resets.
        out: where detections go (default stdout); err: messages, the status line and the summary (stderr).
        source: an already built source (tests); overrides `input` and `device`.

    Returns:
        The session summary (None for `show_devices`).

    Raises:
        SpeechRNNError: a bad model, file, device, keyword or setting; a device fault during the session.
    """
    out = out or sys.stdout
    err = err or sys.stderr
    if show_devices:
        out.write(list_devices() + "\n")
        return None
    if fast and input is None and source is None:
        raise SpeechRNNError("--fast replays a file: give it with --input FILE")
    if onnx is not None and model is not None:
        raise SpeechRNNError("give a checkpoint (--model) or an exported ONNX step (--onnx), not both")
    if source is None:  # a missing input file is reported before the model is loaded
        source = FileSource(input, realtime=not fast) if input is not None else Microphone(device, BLOCK_MS)
    if onnx is not None:
        from .onnx_runner import OnnxStreamingRecognizer

        stream = OnnxStreamingRecognizer(onnx, reset_after_silence_ms=reset_after_silence_ms)
        labels, chunk_ms, lookahead_ms = stream.labels, stream.chunk_ms, stream.lookahead_ms
    else:
        recognizer = load_model(model)
        stream = StreamingRecognizer(
            recognizer,
            chunk_ms=chunk_ms,
            lookahead_ms=lookahead_ms,
            reset_after_silence_ms=reset_after_silence_ms,
        )
        labels = recognizer.labels
    config = SpotterConfig(keywords=tuple(keywords) if keywords else None)
    if threshold is not None:
        config = dataclasses.replace(config, threshold=threshold)
    spotter = KeywordSpotter(labels, stream.step_seconds, config)
    printer = _Printer(out, err, as_json, live_status=err.isatty())
    stats, stop = ListenStats(), threading.Event()
    failure: list[BaseException] = []

    def work() -> None:
        try:
            _consume(source, stream, spotter, printer, stats, stop)
        except Exception as exc:  # handed to the main thread, which reports it
            failure.append(exc)

    source.open()
    printer.message(
        f"{source.description}; chunk {chunk_ms:g} ms + look-ahead {lookahead_ms:g} ms; Ctrl-C stops"
    )
    worker = threading.Thread(target=work, name="speechrnn-listen", daemon=True)
    interrupted, warned, last_warning = False, 0, 0.0
    try:
        worker.start()
        while worker.is_alive():
            worker.join(STATUS_INTERVAL_S)
            overruns = source.overruns
            printer.status(_status_text(stats, overruns, stream.latency_seconds))
            now = time.monotonic()
            if overruns > warned and not printer.live_status and now - last_warning > OVERRUN_WARNING_S:
                printer.message(f"{overruns} input overruns so far (audio was lost); still listening")
                warned, last_warning = overruns, now
    except KeyboardInterrupt:
        interrupted = True
        stop.set()
        worker.join(timeout=5.0)
    finally:
        stop.set()
        source.close()
        printer.end_status()
    if failure:
        exc = failure[0]
        if isinstance(exc, SpeechRNNError):
            raise exc
        raise SpeechRNNError(f"listening failed: {type(exc).__name__}: {exc}") from exc
    summary = ListenSummary(
        stats.seconds, tuple(stats.detections), source.overruns, interrupted, stats.compute_s
    )
    printer.message(summary.line())
    return summary
